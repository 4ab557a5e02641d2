"""The data stage: a table read, split, its preprocessing fitted on the training rows and applied.

Modules: `tables` (read a file), `dates` (date columns and their parts), `splits` (train / validation / test
rows), `encoding` (apply a fitted preprocessing: raw rows -> the float32 matrix), `prepare` (fit the
preprocessing; `load_data`, what `fit` trains on), `cache` (prepared data kept for the next fit).

May import: nntrain.errors, nntrain.metrics, nntrain.plaindata, nntrain.resources, nntrain.config.
"""
