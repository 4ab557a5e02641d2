"""How much memory training a config takes, worked out from the config before anything is built, against what
the machine has (MemAvailable, or a GPU's free memory; a container's own limit is not read): a model that
cannot fit is refused with both figures rather than left to the kernel's OOM killer.

Imports no torch unless the device is a GPU, so `nntrain params CONFIG` can warn without it.
"""

from __future__ import annotations

from typing import Any

from nntrain.config.components import record
from nntrain.config.schema import Config
from nntrain.errors import UserError
from nntrain.model.mlp import planned_table
from nntrain.resources import available_bytes, gib

EVAL_ROWS = 65536  # the rows one evaluation forward holds at once (heads.forward_all's chunk)
ACTIVATION_COPIES = 4  # per unit and row in a step: pre-activation, activation, dropout mask, its gradient


def training_bytes(cfg: Config, n_inputs: int, n_out: int, batch: int, rows: int, numeric: list = ()) -> int:
    """float32 weights, their gradients and the optimizer's state, and the larger of a step's activations and an
    evaluation chunk's. An estimate: close for big models, where it matters. `numeric`: the matrix's numeric
    columns (inputs.numerics_of), which model.numeric_embedding widens."""
    table = planned_table(cfg.model, n_inputs, n_out, numeric=numeric)
    state = record("optimizer", cfg.optimizer["name"]).state
    widths = [n_inputs, *(layer.size for layer in cfg.model.resolved_layers()), n_out]
    spec = cfg.model.numeric_embedding
    if spec is not None and numeric:  # the per-column features, then the embedded width the first layer takes
        features = 2 * spec.frequencies if spec.name == "periodic" else spec.bins
        widths += [len(numeric) * features, n_inputs + len(numeric) * (spec.size - 1)]
    weights = 4 * ((2 + state) * table["total"] + table["buffers"])
    copies = cfg.model.shared_members  # shared members: each row goes through the layers once per member
    step = 4 * ACTIVATION_COPIES * batch * copies * sum(widths)
    evaluation = 4 * 2 * min(rows, EVAL_ROWS) * copies * max(widths)
    return weights + max(step, evaluation)


def too_big(
    cfg: Config, n_inputs: int, n_out: int, batch: int, rows: int, device: Any = "cpu", numeric: list = ()
) -> str | None:
    """Why the model cannot train here, in words, or None when it fits."""
    need, have = training_bytes(cfg, n_inputs, n_out, batch, rows, numeric), available_bytes(device)
    if have is None or need <= have:
        return None
    total = planned_table(cfg.model, n_inputs, n_out, numeric=numeric)["total"]
    return (
        f"{total:,} parameters need about {gib(need)} to train at batch {batch} (weights, gradients, "
        f"{cfg.optimizer['name']} state and activations); {device} has {gib(have)} available"
    )


def check_fits(cfg: Config, n_inputs: int, n_out: int, batch: int, rows: int, device: Any, numeric: list = ()) -> None:
    """Refuse, before any tensor is allocated, a model that the device cannot hold."""
    why = too_big(cfg, n_inputs, n_out, batch, rows, device, numeric)
    if why is not None:
        raise UserError(f"model: {why}; use smaller model.hidden sizes (or a smaller train.batch_size)")
