"""A group of stacked members trained in two parts side by side, a thread each, on the CPU. One engine on two
OpenMP threads waits at every op for the slower thread, so it gains little from a second core (a bag of 5:
1.24x) and nothing beside a busy process, where it must fall back to one thread. Two engines on one OpenMP
thread each wait on nothing (torch releases the GIL inside its ops): on 2 cores a bag of 5 took 0.93x the time
of one engine on two threads idle, and 0.86x of one engine on one thread beside a busy process, which then
gets 4/3 of a core instead of 1. A member's numbers are the same in any group (its own dropout masks,
Run.masks; stacked.baddbmm computes a lone member as two; the validation outputs always one stacked forward),
so its run resumes exactly however a resume regroups the parts, which stood at different steps.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable

from nntrain.engine.stacked_batched import covers
from nntrain.engine.stacked_runs import Group, let_go, open_group, own_masks, train_group, train_together
from nntrain.engine.state import Run
from nntrain.engine.stopping import SIGNALS, Diverged, Interrupted
from nntrain.errors import in_one_line
from nntrain.resources import free_cores, usable_cores
from nntrain.runs.files import write_json

# Measured on 2 cores, 16 members of the phone model (20 inputs) at batch 32, wider each time: 5M multiply-adds
# a step (64-128) split is slower idle and busy (0.090 s an epoch against 0.078; 0.087 against 0.075); 10M
# (128-128) faster idle (0.104 against 0.121), even busy; 37M (256-256) faster both (0.193 against 0.264 idle,
# 0.316 against 0.384 busy). Three or five parts were slower than two (the GIL: each part's Python between ops).
PARTS, SPLIT_WORK = 2, 16_000_000


def split_threads(runs: list[Run]) -> int | None:
    """Each part's OpenMP threads where the group trains in parts, else None: on the CPU, at the default
    thread count, two or more members whose stacked weights are large enough that one engine would take two
    threads (device.stacked_threads), on two or more usable cores, with masks each member draws on its own
    (the vmap step draws from torch's global stream, which two threads would share)."""
    first = runs[0]
    if len(runs) < 2 or first.device.type != "cpu" or first.cfg.train.threads or usable_cores() < PARTS:
        return None
    from nntrain.engine.fused import written_out

    if not (written_out(first.cfg, first.data.task, first.data.prep) or covers(first.parts.model)):
        return None
    work = len(runs) * sum(p.numel() for p in first.parts.model.parameters()) * first.batch_size
    return max(1, free_cores() // PARTS) if work >= SPLIT_WORK else None


def train_parts(
    runs: list[Run],
    log: Callable[[str], None],
    should_stop: list | None = None,
    quiet: bool = True,
    tensorboard: bool = False,
) -> list[dict | Diverged]:
    """train_together for the group, in parts side by side where it splits; results in the runs' order."""
    stops = should_stop or [None] * len(runs)
    own_masks(runs)  # before any part opens: each member's seed is the same however the group is cut
    threads = split_threads(runs)
    if threads is None:
        return train_together(runs, log, stops, quiet, tensorboard)
    groups = _opened(runs, log, stops, tensorboard, threads)
    said = threading.Lock()

    def shown(line: str) -> None:
        with said:
            log(line)

    out: list[dict] = [{} for _ in groups]

    def part(i: int) -> None:
        try:
            out[i]["results"] = train_group(groups[i], shown, quiet)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which raises it
            out[i]["error"], out[i]["stopped"] = e, _stop_other()

    workers = [threading.Thread(target=part, args=(i,), name=f"nntrain-part-{i + 1}") for i in range(1, len(groups))]
    for w in workers:
        w.start()
    part(0)
    for w in workers:
        while w.is_alive():  # a signal is handled in this thread: a join without a timeout would hold it back
            w.join(0.1)
    errors = [o["error"] for o in out if "error" in o]
    if any(o.get("stopped") for o in out):
        SIGNALS.signum = None  # taken back: a caller that goes on after the error (a sweep's next trials) goes on
        _say_why(errors)
    if errors:
        raise _together(errors) from None
    return [r for o in out for r in o["results"]]


def _opened(runs: list[Run], log: Callable[[str], None], stops: list, tensorboard: bool, threads: int) -> list[Group]:
    """The group's parts, each opened on its engine in this thread (the header once, for all); none left holding
    its folders if one fails to open."""
    chunks, groups = _chunks(runs, PARTS), []
    try:
        for i, chunk in enumerate(chunks):
            at = sum(map(len, chunks[:i]))
            hooks = stops[at : at + len(chunk)]
            groups.append(open_group(chunk, log, hooks, tensorboard, threads, header=runs if i == 0 else False))
            groups[-1].label = f"part {i + 1} of {len(chunks)}: "
    except BaseException:
        for g in groups:
            let_go([m.run for m in g.members], g.members)
        raise
    sizes = " and ".join(map(str, map(len, chunks)))
    log(f"the {len(runs)} members train in {len(chunks)} parts side by side ({sizes}), {threads} thread(s) each")
    return groups


def _chunks(runs: list[Run], n: int) -> list[list[Run]]:
    """The runs cut into n parts in order, as even as they go (the first ones a member larger)."""
    n = min(n, len(runs))
    size, extra = divmod(len(runs), n)
    cuts = [0]
    for i in range(n):
        cuts.append(cuts[-1] + size + (i < extra))
    return [runs[a:b] for a, b in zip(cuts, cuts[1:])]


def _stop_other() -> bool:
    """The other part stops at its next step as on a signal (its members save last.pt where they stand), where
    no signal came; whether it was asked so. The error that stopped this part is the one raised."""
    if SIGNALS.signum is not None:
        return False
    SIGNALS.signum = signal.SIGTERM
    return True


def _say_why(errors: list[BaseException]) -> None:
    """The summary.json of each member another part's error stopped says so (not the SIGTERM that stopped it)."""
    failed = next((e for e in errors if not isinstance(e, Interrupted)), None)
    for e in errors:
        if failed is None or not isinstance(e, Interrupted):
            continue
        for folder in e.together:
            summary = json.loads((folder / "summary.json").read_text())
            summary["stopped"] = f"another part of its group failed ({in_one_line(failed)}); last.pt saved"
            write_json(folder / "summary.json", summary)


def _together(errors: list[BaseException]) -> BaseException:
    """The error to raise once every part has ended: an error other than a signal as it is (the first); else
    the signal, naming every member it stopped (resumed together, they go on exactly)."""
    for e in errors:
        if not isinstance(e, Interrupted):
            return e
    first = errors[0]
    together = [d for e in errors for d in e.together]
    return Interrupted(first.signum, first.run_dir, first.epoch, first.step, together)
