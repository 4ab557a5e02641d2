"""The components table (README, Components), written from the records: every name a config may use, what
the fused step writes out, and what else nntrain knows of each; a test keeps the README's copy equal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nntrain.config.components import (
    ACTIVATIONS,
    ALIASES,
    CLASSES,
    REGRESSION,
    TABLES,
    Component,
)


def readme_table() -> str:
    """The README's components table, written from the records (a test keeps the README's copy equal)."""
    rows = [
        "| kind | names | the fused step writes out | what else nntrain knows of them |",
        "| --- | --- | --- | --- |",
    ]
    for kind, table in TABLES.items():
        own = {n: r for n, r in table.items() if kind != "output_activation" or n not in ACTIVATIONS}
        shown = " ".join(n + "".join(f" ({a})" for a, to in ALIASES.get(kind, {}).items() if to == n) for n in own)
        if kind == "output_activation":
            shown = f"the activations, {', '.join(own)}"
        fused = " ".join(n for n, r in table.items() if r.fused and _fused_here(kind, r)) or "-"
        rows.append(f"| {kind} | {shown} | {fused} | {'; '.join(_facts(kind, table)) or '-'} |")
    return "\n".join(rows)


def _fused_here(kind: str, r: Component) -> bool:
    """After the output layer the fused step takes no activation at all."""
    return kind != "output_activation" or r.family == "linear"


def _facts(kind: str, table: dict[str, Component]) -> list[str]:
    def group(label: str, where: Callable[[Any], bool], detail: Callable[[str, Any], str] = lambda n, r: n) -> list:
        chosen = [detail(n, r) for n, r in table.items() if where(r)]
        return [f"{label}: {', '.join(chosen)}"] if chosen else []

    notes = [f"{n}: {r.note}" for n, r in table.items() if r.note]
    if kind == "activation":
        return (
            notes
            + group("dead units measured (dead_frac)", lambda r: r.family == "relu")
            + group(
                "saturation measured (saturated_frac)",
                lambda r: r.family == "saturating",
                lambda n, r: f"{n} {r.bounds[0]:g} to {r.bounds[1]:g}",
            )
        )
    if kind == "output_activation":
        return notes + group("across the outputs", lambda r: r.across_outputs, lambda n, r: f"{n} (gives {r.gives})")
    if kind == "init":
        return notes + group("weights only (a bias has no fan-in)", lambda r: r.matrix_only)
    if kind == "loss":
        return notes + (
            group("classes, from logits", lambda r: r.tasks == CLASSES and r.takes == "logits")
            + group("classes, from log-probabilities", lambda r: r.takes == "log_probs")
            + group("two classes, one logit", lambda r: r.tasks == {"binary"})
            + group("regression", lambda r: r.tasks == REGRESSION)
        )
    return notes + (
        ["the others stepped once per epoch; warmup_epochs: N puts linear warmup before any but plateau and onecycle"]
        if kind == "scheduler"
        else []
    )
