"""Run folders: what a run leaves on disk and what reads it back without training anything.

Modules: `folders` (creation, the writer's lock, finding a run), `files` (atomic writes), `checkpoints` (what
they hold, their load and the Saver), `metrics_log` (metrics.csv), `plots` (the PNG plots), `listing` (`nntrain
runs` and `compare`, read without torch or pandas), `tracking` (MLflow).

May import: nntrain.errors, nntrain.metrics, nntrain.plaindata, nntrain.resources.
"""
