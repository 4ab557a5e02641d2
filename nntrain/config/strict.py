"""The base of every config section: unknown keys, infinite and NaN numbers, and a yes/no where a number or a
name is expected refused."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

MAX_SEED = 2**63 - 1  # what torch.manual_seed takes; numpy's generators take any non-negative int


class Strict(BaseModel):
    # allow_inf_nan: an infinite or NaN number is never a setting (l1: .inf would train on an infinite loss)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, coerce_numbers_to_str=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_yes_no(cls, value: Any, info: ValidationInfo) -> Any:
        """YAML reads true as a yes/no, which pydantic would take as 1 (train.epochs=true trained one epoch)."""
        if (
            isinstance(value, bool)
            and info.field_name
            and not _takes_bool(cls.model_fields[info.field_name].annotation)
        ):
            raise ValueError(f"{str(value).lower()} is a yes/no, not a number or a name")
        return value


def _takes_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any or annotation is True or annotation is False:  # Literal[True]
        return True
    return any(_takes_bool(a) for a in typing.get_args(annotation))


def unknown_key(model: type[BaseModel], dotted: str) -> str | None:
    """Why `dotted` (optimizer.lr) names no key of `model`'s sections, else None. Keys below a section that is
    no Strict model (a component's arguments, a dict) are checked when the config is read, not here."""
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if part not in model.model_fields:
            where = ".".join(parts[:i]) or "the top level"
            return f"{'.'.join(parts[: i + 1])} is no config key; allowed in {where}: {', '.join(model.model_fields)}"
        kinds = typing.get_args(model.model_fields[part].annotation) or (model.model_fields[part].annotation,)
        sections = [k for k in kinds if isinstance(k, type) and issubclass(k, Strict)]
        if not sections:
            if typing.get_origin(model.model_fields[part].annotation) is dict:  # a component's arguments
                return None
            plain = all(_a_value(k) for k in kinds)
            return f"{'.'.join(parts[: i + 1])} is a value, not a section" if plain and i < len(parts) - 1 else None
        model = sections[0]
    return None


def _a_value(kind: Any) -> bool:
    """Whether a key typed `kind` holds a value (a number, text, a list, one of some words), not keys below it;
    by what the type is, not by isinstance(kind, type), which Python 3.10 answers otherwise for typing.Any and
    list[int]."""
    if kind is typing.Any or kind is dict or typing.get_origin(kind) is dict:
        return False
    return (
        typing.get_origin(kind) in (list, tuple, typing.Literal, typing.Annotated)
        or not isinstance(kind, type)
        or (kind in (int, float, str, bool, type(None)))
    )
