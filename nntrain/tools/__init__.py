"""Tools built on trained runs and on the engine: evaluation and prediction, export, explanations, the
learning-rate range test, cross-validation and sweeps.

Modules: `inference` (eval and predict from a run folder), `explain` (permutation importance), `export_graph`,
`export_sidecar` and `export` (ONNX and TorchScript with the preprocessing folded in), `lr_find` (the range
test), `crossval` (k-fold cross-validation), `studies`, `sweep_space` and `sweep` (Optuna studies over config
keys), `linear_path`, `bagging` and `bag_inference` (a cross-fitted bag: trained, then read), `conformal`
(intervals and sets from held-out rows).

May import: nntrain.errors, nntrain.metrics, nntrain.plaindata, nntrain.resources, nntrain.config, nntrain.data,
nntrain.model, nntrain.runs, nntrain.engine.
"""
