"""Component arguments torch accepts that train wrong or fail later: a negative gamma (every other epoch a
gradient ascent), a step_size of 0 (a division by zero at the first epoch), betas of one number, an lr float32
cannot hold. components.spec_problems asks here once torch has built the component."""

from __future__ import annotations

from typing import Any

from nntrain.errors import Problem

FLOAT32_MAX = 3.4028234663852886e38


def _whole(low: int):
    return lambda v: (isinstance(v, int) and not isinstance(v, bool) and v >= low, f"a whole number, {low} or more")


def _positive(v: Any) -> tuple[bool, str]:
    values = v if isinstance(v, (list, tuple)) else [v]
    return all(isinstance(x, (int, float)) and x > 0 for x in values), "above 0"


def _not_negative(v: Any) -> tuple[bool, str]:
    values = v if isinstance(v, (list, tuple)) else [v]
    ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in values)
    return ok and any(x > 0 for x in values), "numbers 0 or more, one of them above 0"


def _fraction(v: Any) -> tuple[bool, str]:
    return isinstance(v, (int, float)) and 0 <= v < 1, "from 0 up to, not including, 1"


def _betas(v: Any) -> tuple[bool, str]:
    ok = isinstance(v, (list, tuple)) and len(v) == 2 and all(_fraction(b)[0] for b in v)
    return ok, "two numbers, each from 0 up to, not including, 1 (e.g. [0.9, 0.999])"


def _rising(v: Any) -> tuple[bool, str]:
    ok = isinstance(v, (list, tuple)) and all(_whole(1)(x)[0] for x in v) and list(v) == sorted(set(v))
    return ok, "epochs 1 or more, each later than the one before"


RULES = {
    ("scheduler", "step"): {"step_size": _whole(1), "gamma": _positive},
    ("scheduler", "multistep"): {"milestones": _rising, "gamma": _positive},
    ("scheduler", "exponential"): {"gamma": _positive},
    ("scheduler", "cosine"): {"T_max": _whole(1)},
    ("scheduler", "onecycle"): {"max_lr": _positive, "total_steps": _whole(1)},
    ("optimizer", "sgd"): {"momentum": _fraction},
    ("optimizer", "rmsprop"): {"momentum": _fraction},
    ("optimizer", "adam"): {"betas": _betas},
    ("optimizer", "adamw"): {"betas": _betas},
    ("loss", "cross_entropy"): {"weight": _not_negative},
    ("loss", "nll"): {"weight": _not_negative},
    ("loss", "bce"): {"pos_weight": _positive},
    ("activation", "softplus"): {"beta": _positive},  # beta 0 divides by 0: a run of NaN
    ("output_activation", "softplus"): {"beta": _positive},
}


def range_problems(kind: str, name: str, kwargs: dict[str, Any], path: str) -> list[Problem]:
    """What is out of range among a built component's arguments; any number beyond float32 (the weights'
    type) too."""
    problems = []
    for key, value in kwargs.items():
        rule = RULES.get((kind, name), {}).get(key)
        ok, want = rule(value) if rule else (True, "")
        if ok and _beyond_float32(value):
            ok, want = False, f"a number float32 can hold (at most {FLOAT32_MAX:.3g})"
        if not ok:
            problems.append(Problem(f"{path}.{key}", f"{name}'s {key} must be {want}", value=str(value)))
    return problems


def _beyond_float32(v: Any) -> bool:
    values = v if isinstance(v, (list, tuple)) else [v]
    return any(isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) > FLOAT32_MAX for x in values)
