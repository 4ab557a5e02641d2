"""nntrain: train neural networks on tabular data from a YAML config.

    import nntrain
    run = nntrain.fit("configs/phone.yaml", {"optimizer.lr": 0.01})   # or a dict, and data=a DataFrame
    run.metrics.plot(x="epoch", y=["train_loss", "val_loss"])
    run.predict(frame)                                                 # nntrain.load("runs/phone") later

The API (fit, resume, load, Run) is imported on first use, so `import nntrain` costs no torch import; so are
the errors it raises (UserError, ConfigError and Stop from nntrain.errors; Diverged and Interrupted from
nntrain.engine.stopping), which import no torch either.
"""

__version__ = "0.1.0"
ERRORS = {
    "Stop": "nntrain.errors",
    "UserError": "nntrain.errors",
    "ConfigError": "nntrain.errors",
    "Diverged": "nntrain.engine.stopping",
    "Interrupted": "nntrain.engine.stopping",
}
__all__ = [
    *ERRORS,
    "Bag",
    "DataWarning",
    "Folds",
    "Run",
    "cv",
    "export",
    "fit",
    "fit_seeds",
    "load",
    "lr_find",
    "resume",
    "resume_together",
    "sweep",
]


def __getattr__(name: str):
    if name in ERRORS:
        import importlib

        return getattr(importlib.import_module(ERRORS[name]), name)
    if name in __all__:
        from nntrain import api

        return getattr(api, name)
    raise AttributeError(f"module 'nntrain' has no attribute {name!r}")
