"""The base of every config section: unknown keys, infinite and NaN numbers refused."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

MAX_SEED = 2**63 - 1  # what torch.manual_seed takes; numpy's generators take any non-negative int


class Strict(BaseModel):
    # allow_inf_nan: an infinite or NaN number is never a setting (l1: .inf would train on an infinite loss)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, coerce_numbers_to_str=True, allow_inf_nan=False)
