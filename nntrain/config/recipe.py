"""The tabular recipe: the defaults a config gets for what it leaves out when it names no model.

A config file that names a `model` section is a lesson's (or a user's own design): it trains exactly what it
names, with the course's defaults (schema.py) for the rest. A file that names no model (`data.path`
and `data.target` are enough) gets this recipe instead, chosen from measurements on the real-table suite
(README, "Defaults"). `recipe: tabular` or `recipe: course` in the file (or as an override) decides it either
way. The resolved config.yaml shows every value, so a learner can read the recipe and change it key by key.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from nntrain.config.components import canonical
from nntrain.config.schema import (
    AUTO_BATCH,
    Config,
    to_plain,
)
from nntrain.errors import UserError
from nntrain.plaindata import flow

# Sections that are one component (a name and its arguments): the recipe gives the whole of one the config
# leaves out, and nothing inside one it names (its own arguments are the component's defaults).
WHOLE = ("loss", "optimizer", "scheduler")

TABULAR: dict[str, Any] = {
    "data": {"scale": "quantile"},
    "model": {
        "hidden": [256, 256, 256],
        "activation": {"name": "relu"},
        "dropout": 0.1,
        "numeric_embedding": {"name": "periodic", "frequencies": 16, "size": 8, "sigma": 0.1},
    },
    "loss": {"name": "auto", "label_smoothing": 0.1},
    "optimizer": {"name": "adamw", "lr": "auto", "weight_decay": 0.02, "betas": [0.9, 0.95]},
    "scheduler": {"name": "anneal", "patience": 8, "from_best": True, "start": 0.1},
    "train": {"epochs": "auto", "batch_size": "auto", "bag": "auto", "linear": True},
}


def chosen(raw: dict, overrides: list[str]) -> str:
    """The recipe of a config file and its overrides: as given, else tabular where the file names no model."""
    for item in reversed(list(overrides)):
        key, _, value = item.partition("=")
        if key.strip() == "recipe":
            return value.strip()
    if "recipe" in raw:
        return str(raw["recipe"])
    return "course" if "model" in raw else "tabular"


def with_recipe(raw: dict, overrides: list[str]) -> dict:
    """`raw` with `recipe` resolved and, for the tabular recipe, its values wherever the file has none (before
    the overrides apply, so an override changes one key of the recipe). An unknown recipe is left for the schema
    to refuse."""
    name = chosen(raw, overrides)
    out = {**raw, "recipe": name}
    if name != "tabular":
        return out
    for section, values in TABULAR.items():
        given = out.get(section)
        if section in WHOLE:
            out.setdefault(section, copy.deepcopy(values))
        elif isinstance(given, dict) or (given is None and section != "data"):  # no data: the schema says so
            out[section] = _merged(given or {}, values)
    return out


def _merged(given: dict, values: dict) -> dict:
    merged = dict(given)
    for key, value in values.items():
        if key == "hidden" and "layers" in given:
            continue  # model.layers says the hidden layers itself
        merged.setdefault(key, copy.deepcopy(value))
    return merged


def described(cfg: Any) -> str | None:
    """fit's header line for a tabular-recipe config: each key the recipe sets, with the value it trains with
    (an override or the file may have changed it)."""
    if cfg.recipe != "tabular":
        return None
    plain = to_plain(cfg)
    keys = []
    for section, values in TABULAR.items():
        keys += [section] if section in WHOLE else [f"{section}.{k}" for k in values]
    if cfg._bag:  # a bag's member trains alone, as one of the bag's
        plain["train"]["bag"] = cfg._bag
    shown = " ".join(f"{k}={flow(_at(plain, k))}" for k in keys)
    return f"recipe: tabular (recipe=course for the schema's defaults): {shown}"


def _at(plain: dict, key: str) -> Any:
    for part in key.split("."):
        plain = plain.get(part) if isinstance(plain, dict) else None
    return plain


# train.epochs auto: about this many training rows seen in all (small tables get the most epochs), clipped.
AUTO_EPOCH_ROWS = 1_000_000


AUTO_EPOCHS = (10, 100)


AUTO_LR, AUTO_LR_BATCH = 0.002, 256  # optimizer.lr auto: AUTO_LR x sqrt(batch / AUTO_LR_BATCH)


def fix_auto(cfg: Config, n_train: int) -> None:
    """train.epochs, train.batch_size and optimizer.lr auto -> their numbers for this many training rows, in place
    and said in notes, before anything is built from them; and onecycle's max_lr and total_steps (the run's
    steps)."""
    _fix_epochs(cfg, n_train)
    batch = cfg.train.batch_rows(n_train)
    if cfg.train.batch_size == "auto":  # the number trained with, in the header and config.yaml
        cfg.train.batch_size = batch
        low, high = AUTO_BATCH
        cfg._notes.append(
            f"train.batch_size auto: {batch} for {n_train:,} training rows (the power of 2 nearest rows / 32, "
            f"from {low} to {high})"
        )
    if cfg.optimizer.get("lr") == "auto":
        cfg.optimizer["lr"] = float(f"{AUTO_LR * math.sqrt(batch / AUTO_LR_BATCH):.3g}")
        cfg._notes.append(
            f"optimizer.lr auto: {cfg.optimizer['lr']:g} for batches of {batch} ({AUTO_LR:g} x sqrt(batch / "
            f"{AUTO_LR_BATCH}))"
        )
    if canonical("scheduler", cfg.scheduler["name"]) == "onecycle":
        cfg.scheduler.setdefault("max_lr", cfg.optimizer.get("lr", 0.001))
        steps = cfg.train.epochs * math.ceil(n_train / batch)
        if cfg.scheduler.setdefault("total_steps", steps) < steps:  # torch fails at the step past them
            raise UserError(
                f"scheduler.total_steps={cfg.scheduler['total_steps']}: fewer than the run's {steps:,} steps "
                f"({cfg.train.epochs} epochs of {math.ceil(n_train / batch):,} batches); leave it out to use the run's"
            )


def _fix_epochs(cfg: Config, n_train: int) -> None:
    if cfg.train.epochs != "auto":
        return
    low, high = AUTO_EPOCHS
    wanted = math.ceil(AUTO_EPOCH_ROWS / max(n_train, 1))
    cfg.train.epochs = min(max(low, wanted), high)
    if canonical("scheduler", cfg.scheduler["name"]) == "cosine":
        cfg.scheduler.setdefault("T_max", cfg.train.epochs - int(cfg.scheduler.get("warmup_epochs") or 0))
    rule = f"about {AUTO_EPOCH_ROWS:,} rows in all, from {low} to {high} epochs"
    why = rule if low <= wanted <= high else f"the {'most' if wanted > high else 'fewest'}: {rule}"
    cfg._notes.append(f"train.epochs auto: {cfg.train.epochs} for {n_train:,} training rows ({why})")
