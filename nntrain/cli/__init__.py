"""The nntrain command line. Each command parses, calls library code and prints; no training logic here.

One module per group of commands: `training` (fit), `inspect` (what a run did: eval, params, predict, runs,
compare), `tools` (sweep, cv, lr-find, explain, export), `configs` (the shipped configs and the schema); `app`
holds the one error guard and the output helpers they share. torch, pandas and scikit-learn are imported
inside the commands, so `nntrain --help` stays fast.
"""

from __future__ import annotations

from nntrain.cli import configs, inspect, tools, training
from nntrain.cli.app import app, main

# Every command, in the order `nntrain --help` lists them.
COMMANDS = {
    "fit": training.fit,
    "eval": inspect.eval_,
    "params": inspect.params,
    "predict": inspect.predict,
    "sweep": tools.sweep,
    "cv": tools.cv,
    "lr-find": tools.lr_find,
    "explain": tools.explain,
    "export": tools.export,
    "runs": inspect.runs,
    "compare": inspect.compare,
    "schema": configs.schema,
}
for _name, _command in COMMANDS.items():
    app.command(_name)(_command)
app.add_typer(configs.configs_app, name="configs")

__all__ = ["app", "main"]
