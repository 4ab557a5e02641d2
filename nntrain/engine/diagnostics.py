"""Per-layer signals that explain a network that stops learning: gradient norms, dead ReLU units and
saturated sigmoid/tanh units, logged per epoch into metrics.csv and put in words when they cross a line.

Their cost is kept small by sampling: gradient norms are read on at most GRAD_SAMPLES steps an epoch (kept
on the device, no sync), and activations on at most SAMPLE_ROWS validation rows, once an epoch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nntrain.config.components import ACTIVATIONS, canonical

# An activation's family (components.ACTIVATIONS) says what to measure: a unit of the relu family whose input
# is <= 0 on every row passes no gradient (it is dead); a saturating unit whose output is within NEAR of the
# range from a bound passes almost none. Leaky, smooth and linear units pass gradient everywhere.
NEAR = 0.01
GRAD_SAMPLES = 8
SAMPLE_ROWS = 2048
DEAD_WARN = 0.5
SATURATED_WARN = 0.5
VANISH_WARN = 1e-3  # first layer's gradient norm against the output layer's


class Diagnostics:
    """One per run: `after_step` on every step (it samples), `epoch_values` once an epoch."""

    def __init__(self, model: nn.Sequential, steps: int, X_val: torch.Tensor):
        self.model = model
        self.names = [layer.name for layer in model.hidden]
        self.acts = [canonical("activation", layer.activation["name"]) for layer in model.hidden]
        self.families = [ACTIVATIONS[a].family for a in self.acts]
        # the last hidden layer whose units are measured, or -1: no forward pass at all
        self.last_measured = max((k for k, f in enumerate(self.families) if f in ("relu", "saturating")), default=-1)
        self.weights = [layer.linear.weight for layer in model.hidden] + [model.out.weight]
        self.stride = max(1, math.ceil(steps / GRAD_SAMPLES))
        self.sums = torch.zeros(len(self.weights), device=X_val.device)
        self.count = 0
        n = len(X_val)
        rows = torch.linspace(0, n - 1, min(n, SAMPLE_ROWS), device=X_val.device).round().long() if n else None
        self.X = X_val[rows] if n else X_val
        self.warned: set[tuple[str, str]] = set()

    def columns(self) -> list[str]:
        cols = [f"grad_norm.{n}" for n in [*self.names, "out"]]
        cols += [f"dead_frac.{n}" for n, f in zip(self.names, self.families) if f == "relu"]
        cols += [f"saturated_frac.{n}" for n, f in zip(self.names, self.families) if f == "saturating"]
        return cols

    def after_step(self, s: int) -> None:
        if s % self.stride == 0:
            self.add_norms(torch.stack(torch._foreach_norm([w.grad for w in self.weights])))

    def add_norms(self, norms: torch.Tensor) -> None:
        """One sampled step's gradient norms, one per layer (stacked_runs.py works them out for all members at once)."""
        self.sums += norms
        self.count += 1

    def state(self) -> dict:
        return {"sums": self.sums.cpu().clone(), "count": self.count}

    def load_state(self, state: dict) -> None:
        if len(state["sums"]) == len(self.sums):
            self.sums.copy_(state["sums"])
            self.count = state["count"]

    def epoch_values(self) -> dict[str, float]:
        """The epoch's mean gradient norms, then the activation fractions on the sampled validation rows."""
        norms = (self.sums / max(self.count, 1)).tolist()
        self.sums.zero_()
        self.count = 0
        out = {f"grad_norm.{n}": v for n, v in zip([*self.names, "out"], norms)}
        out.update(self.activation_fractions())
        return {k: out[k] for k in self.columns()}

    @torch.no_grad()
    def activation_fractions(self) -> dict[str, float]:
        if self.last_measured < 0:
            return {}  # nothing to measure: no forward pass
        was_training = self.model.training
        self.model.eval()
        out: dict[str, float] = {}
        for k, (layer, pre, a) in enumerate(self.model.hidden_outputs(self.X)):
            if self.families[k] == "relu":
                out[f"dead_frac.{layer.name}"] = _mean((pre <= 0).all(dim=0)) if len(a) else math.nan
            elif self.families[k] == "saturating":
                lo, hi = ACTIVATIONS[self.acts[k]].bounds
                margin = NEAR * (hi - lo)
                near = (a <= lo + margin) | (a >= hi - margin)
                out[f"saturated_frac.{layer.name}"] = _mean(near.float().mean(dim=0) > 0.5) if len(a) else math.nan
            if k == self.last_measured:
                break  # the layers after the last measured one tell nothing
        self.model.train(was_training)
        return out

    def warnings(self, values: dict[str, float]) -> list[str]:
        """Each problem in words, once a run: the first epoch it crosses its line."""
        found = []
        for k, (name, act) in enumerate(zip(self.names, self.acts), start=1):
            dead = values.get(f"dead_frac.{name}", math.nan)
            if dead >= DEAD_WARN:
                found.append(
                    (
                        ("dead", name),
                        f"layer {k} ({name}): {dead:.0%} of its {act} units never activate on "
                        f"the validation rows; try leaky_relu or a smaller optimizer.lr",
                    )
                )
            sat = values.get(f"saturated_frac.{name}", math.nan)
            if sat >= SATURATED_WARN:
                found.append(
                    (
                        ("saturated", name),
                        f"layer {k} ({name}): {sat:.0%} of its {act} units are saturated "
                        f"(output within 1% of its bounds), so little gradient passes; try "
                        f"relu, xavier init, data.scale: standard or a smaller optimizer.lr",
                    )
                )
        first, last = values.get("grad_norm.fc1", math.nan), values.get("grad_norm.out", math.nan)
        if self.names and last > 0 and first < VANISH_WARN * last:
            found.append(
                (
                    ("vanishing", "fc1"),
                    f"vanishing gradients: layer 1's gradient norm is {first / last:.1e} of the "
                    f"output layer's, so the early layers barely learn; try relu, "
                    f"batch_norm or fewer layers",
                )
            )
        new = [(key, text) for key, text in found if key not in self.warned]
        self.warned.update(key for key, _ in new)
        return [text for _, text in new]


def _mean(mask: torch.Tensor) -> float:
    return float(mask.float().mean()) if mask.numel() else math.nan
