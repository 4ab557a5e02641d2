"""The learning-rate range test (Smith 2015, 2017; fastai's lr_find): one short run whose rate rises
exponentially from `start` to `end` over `steps` steps, the smoothed training loss against the rate, and the
rate where the loss falls fastest (steepest descent before the minimum) as the suggestion.

The model, loss and optimizer are the config's (any optimizer: only its groups' lr is set); the schedule,
the L1 penalty and gradient clipping are left out. Nothing is saved but lr_find.csv and lr_find.png.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nntrain.config.recipe import fix_auto
from nntrain.config.schema import Config
from nntrain.data.cache import cached_data
from nntrain.engine.device import select_device
from nntrain.engine.parts import build_parts
from nntrain.errors import UserError
from nntrain.model.embeddings import fit_edges
from nntrain.model.mlp import n_outputs
from nntrain.model.shared import step_loss
from nntrain.runs.files import write_output
from nntrain.runs.folders import create_run_dir

SMOOTHING = 0.98  # the loss's exponential moving average, bias-corrected (fastai's)
DIVERGED = 4.0  # the test stops once the smoothed loss is this many times its lowest


def lr_find(
    cfg: Config,
    config_dir: Path | None,
    steps: int = 200,
    start: float = 1e-7,
    end: float = 10.0,
    log: Callable[[str], None] = print,
) -> dict:
    """{"suggested", "lowest", "rows": DataFrame (step, lr, loss, smoothed), "files"}: see the module."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):  # from Python: "100" fails below
        raise UserError(f"lr-find: --steps: give a whole number of steps, 10 to 10000, not {type(steps).__name__}")
    for option, rate in (("--start", start), ("--end", end)):
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
            raise UserError(f"lr-find: {option}: give a learning rate as a number, not {type(rate).__name__}")
        if not math.isfinite(rate):
            raise UserError(
                f"lr-find: {option} {rate}: give a finite rate, e.g. {option} {1e-7 if option == '--start' else 10:g}"
            )
    if not (0 < start < end) or not 10 <= steps <= 10_000:
        raise UserError(f"lr-find: give 0 < --start < --end and 10 to 10000 --steps (got {start}, {end}, {steps})")
    data, _ = cached_data(cfg, config_dir)
    fix_auto(cfg, len(data.train))
    if getattr(cfg.model.numeric_embedding, "name", None) == "piecewise_linear":
        fit_edges(data.X, data.train, data.prep)
    device = select_device(cfg.device)
    n_out = n_outputs(cfg, data.task, data.n_outputs)
    parts = build_parts(cfg, data.X.shape[1], n_out, data.prep, device, weighted=data.loss_weights is not None)
    rows = _losses(cfg, data, parts, device, np.geomspace(start, end, steps))
    suggested, lowest = suggest(rows)
    folder = create_run_dir(cfg.runs_dir, f"{cfg.name}-lr-find")
    csv = folder / "lr_find.csv"
    write_output(csv, lambda f: rows.to_csv(f, index=False), str(csv))
    from nntrain.runs.plots import lr_find_png

    png = lr_find_png(rows, folder / "lr_find.png", suggested, f"{cfg.name}: training batches of its training rows")
    log(f"{len(rows)} steps from lr={start:g} to lr={rows['lr'].iloc[-1]:.3g}; lowest smoothed loss at lr={lowest:.3g}")
    return {"suggested": suggested, "lowest": lowest, "rows": rows, "files": [csv, png], "run_dir": folder}


def _losses(cfg: Config, data, parts, device: torch.device, lrs: np.ndarray) -> pd.DataFrame:
    """A step at each rate, on shuffled training batches (epoch after epoch), until the loss diverges."""
    X, y = torch.as_tensor(data.X, device=device), torch.as_tensor(data.y, device=device)
    w = None if data.loss_weights is None else torch.as_tensor(data.loss_weights, dtype=torch.float32, device=device)
    batch = cfg.train.batch_rows(len(data.train))
    gen = torch.Generator().manual_seed(cfg.seed)
    train = torch.as_tensor(data.train)
    order, at = train[torch.randperm(len(train), generator=gen)], 0
    model, opt, criterion = parts.model, parts.optimizer, parts.criterion
    model.train()
    out, avg, best = [], 0.0, math.inf
    for step, lr in enumerate(lrs, start=1):
        if at + batch > len(order):
            order, at = train[torch.randperm(len(train), generator=gen)], 0
        idx = order[at : at + batch].to(device)
        at += batch
        for group in opt.param_groups:
            group["lr"] = float(lr)
        opt.zero_grad(set_to_none=True)
        loss = step_loss(model, criterion, X[idx], y[idx], None if w is None else w[idx])
        loss.backward()
        opt.step()
        value = loss.detach().item()
        if not math.isfinite(value):
            break
        avg = SMOOTHING * avg + (1 - SMOOTHING) * value
        smoothed = avg / (1 - SMOOTHING**step)
        out.append({"step": step, "lr": float(lr), "loss": value, "smoothed": smoothed})
        best = min(best, smoothed)
        if smoothed > DIVERGED * best:
            break
    if len(out) < 10:
        raise UserError(f"lr-find: the loss diverged within {len(out)} steps; " + _advice(lrs, len(out)))
    return pd.DataFrame(out)


def _advice(lrs: np.ndarray, done: int) -> str:
    """What to change, from the rates tried: the first one too high, or the rate climbing too fast per step."""
    if done == 0:
        return f"lower --start (now {lrs[0]:g}): the loss was not finite at the very first rate"
    factor = lrs[1] / lrs[0]
    return (
        f"it blew up at lr={lrs[min(done, len(lrs) - 1)]:.3g}, the rate growing x{factor:.3g} per step; "
        f"lower --end (now {lrs[-1]:g}) or raise --steps (now {len(lrs)})"
    )


def suggest(rows: pd.DataFrame) -> tuple[float, float]:
    """(the rate of steepest descent of the smoothed loss before its minimum, the rate at the minimum). The
    slope is taken over windows of a tenth of the steps (a step's own slope is noise) and the first tenth of
    the steps is left out (the average is still settling there); the rate is the steepest window's middle."""
    smoothed, lr = rows["smoothed"].to_numpy(), rows["lr"].to_numpy()
    span = max(3, len(rows) // 10)
    low = span + int(np.argmin(smoothed[span:]))  # the minimum of the settled curve
    first, last = span, low - span  # windows [i, i + span] from the settled start up to the minimum
    if last < first:
        return float(lr[low] / 10), float(lr[low])
    i = np.arange(first, last + 1)
    logs = np.log10(lr)
    slopes = (smoothed[i + span] - smoothed[i]) / (logs[i + span] - logs[i])
    k = int(i[np.argmin(slopes)]) + span // 2
    return float(lr[k]), float(lr[low])
