"""The data stage: a table read, split, its preprocessing fitted on the training rows and applied.

Modules, in the order a config's table goes through them: `tables` (read a file), `dates` (date columns and
their parts), `splits` (train / validation / test rows), `columns` (a column's raw values, read alike when
fitting and applying), `encoding` (apply a fitted preprocessing: raw rows -> the float32 matrix), `fitting`
(fit it on the training rows), `prepare` (target, task, split, fit, apply: `load_data`, what `fit` trains on),
`reread` (a run's own table read again), `cache` (prepared data kept for the next fit), `frames` (a DataFrame
given through the API, stored as Parquet), `frame_runs` (a DataFrame trained on: stored, named as data.path).

May import: nntrain.errors, nntrain.metrics, nntrain.plaindata, nntrain.resources, nntrain.runs, nntrain.config.
"""
