"""Activations torch does not have: the step of the course's activation lesson."""

from __future__ import annotations

import torch
from torch import nn


class Step(nn.Module):
    """1 where the input is above 0, else 0; its derivative is 0 everywhere (at 0 too), so no layer before it
    learns: the reason networks moved to smooth activations. The gradient is a real zero (0 * x), not a
    missing one, so optimizers, the diagnostics and exports see an ordinary layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0).to(x.dtype) + 0 * x
