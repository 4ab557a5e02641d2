"""Schedules torch lacks: `anneal`, which stops where learning stops and anneals from there.

The rate stays at the optimizer's until the monitored value has not improved for `patience` epochs; then it
falls along a half cosine to 0 over `fraction` of the epochs run so far (at least `min_epochs`), and the run
ends (the loop asks `finished`). The anneal's first rate is `start` times the optimizer's. With `from_best` it
starts from the best epoch's weights rather than from those `patience` epochs past it (the loop puts them
back, loop.py). Stepped with the monitored value, as plateau is.

On the real tables most fits overfit within their first epochs. An anneal at the full rate from where the
stall was found seldom found a better epoch: on 16 of 20 tables the best epoch fell in the first two thirds of
those trained. From the best weights at a tenth of the rate (the recipe's from_best and start 0.1) it falls in
the last third on 13 of the 20, at the same accuracy (docs/recipe.md, round six).
"""

from __future__ import annotations

import math
from typing import Any

import torch


class AnnealOnStall(torch.optim.lr_scheduler.LRScheduler):
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        patience: int = 8,
        fraction: float = 0.25,
        min_epochs: int = 5,
        mode: str = "min",
        min_delta: float = 0.0,
        from_best: bool = False,
        start: float = 1.0,
        last_epoch: int = -1,
    ):
        if patience < 1 or min_epochs < 1 or not 0 <= fraction <= 10 or mode not in ("min", "max"):
            raise ValueError("patience and min_epochs: 1 or more; fraction: 0 to 10; mode: min or max")
        if not 0 < start <= 1:
            raise ValueError("start: above 0, at most 1 (the anneal's first rate, a fraction of the optimizer's)")
        self.start = start
        self.patience, self.fraction, self.min_epochs = patience, fraction, min_epochs
        self.mode, self.min_delta, self.from_best = mode, min_delta, bool(from_best)
        self.best: float | None = None
        self.bad_epochs = 0
        self.anneal_start: int | None = None  # the epoch the anneal began after
        self.anneal_epochs = 0
        super().__init__(optimizer, last_epoch)

    def step(self, metrics: Any = None) -> None:  # type: ignore[override]
        """After an epoch, with its monitored value (None: the first call, from the constructor)."""
        if metrics is not None and self.anneal_start is None:
            value = float(metrics)
            better = self.best is None or (
                value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
            )
            self.best, self.bad_epochs = (value, 0) if better else (self.best, self.bad_epochs + 1)
            if self.bad_epochs >= self.patience:
                self.anneal_start = self.last_epoch + 1
                self.anneal_epochs = max(self.min_epochs, round(self.fraction * self.anneal_start))
        super().step()

    def get_lr(self) -> list[float]:
        if self.anneal_start is None:
            return list(self.base_lrs)
        t = min(self.last_epoch - self.anneal_start + 1, self.anneal_epochs)  # 1 .. anneal_epochs
        factor = self.start * 0.5 * (1 + math.cos(math.pi * t / (self.anneal_epochs + 1)))
        return [base * factor for base in self.base_lrs]

    @property
    def restarts(self) -> bool:
        """from_best, and the anneal begins after the epoch just stepped: the loop puts the best epoch's weights
        back before the next epoch trains."""
        return self.from_best and self.anneal_start == self.last_epoch

    @property
    def finished(self) -> bool:
        """The anneal has reached 0: the run ends here."""
        return self.anneal_start is not None and self.last_epoch - self.anneal_start >= self.anneal_epochs

    def describe(self) -> str:
        how = [f"from {self.start:g} times the optimizer's"] if self.start != 1 else []
        how += ["from the best epoch's weights"] if self.from_best else []
        return (
            f"had not improved for {self.patience} epochs at epoch {self.anneal_start}; the rate then annealed to 0 "
            f"over {self.anneal_epochs} epochs" + "".join(f", {h}" for h in how)
        )
