"""Several runs at once: `fit --seeds`, a sweep's batch of trials, runs resumed together. Each is started (or
resumed) with its own run folder, the runs are grouped by what can share the stacked engine (stacked_runs.py),
each group is cut to what memory holds, and a run no other can join trains on the lone engine.
"""

from __future__ import annotations

import numbers
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from nntrain.config.components import canonical
from nntrain.config.schema import Config, loss_name, to_plain
from nntrain.engine.fused import written_out
from nntrain.engine.loop import train
from nntrain.engine.loop_state import ShouldStop, pace
from nntrain.engine.progress import Lines
from nntrain.engine.stacked_parts import train_parts
from nntrain.engine.state import Run, rebuild_alone, start
from nntrain.engine.stopping import Diverged, Interrupted
from nntrain.errors import UserError
from nntrain.metrics import headline, no_better, shown
from nntrain.model.embeddings import numerics_of
from nntrain.model.memory import training_bytes
from nntrain.resources import available_bytes


def key(run: Run) -> tuple | None:
    """Runs with equal keys can be trained together; None: this one trains alone (torch.compile, data-parallel,
    a model.ensemble, whose members are already stacked, a schedule stepped every step)."""
    cfg, data = run.cfg, run.data
    if cfg.train.compile or run.group is not None or cfg.model.ensemble > 1 or pace(cfg) == "step":
        return None
    fused = written_out(cfg, data.task, data.prep)
    model = to_plain(cfg.model)
    if fused:  # the written-out step takes each member's dropout rate and L1 weight
        model = [layer.activation for layer in cfg.model.resolved_layers()]
    opt = cfg.optimizer
    return (
        fused,
        (run.epoch, run.step),  # resumed runs go on together only from the same point
        str(run.device),
        tuple(tuple(p.shape) for p in run.parts.model.parameters()),
        run.batch_size,
        len(data.train),
        data.loss_weights is not None,
        canonical("optimizer", opt["name"]),
        tuple(sorted((k, str(v)) for k, v in opt.items() if k in ("nesterov", "amsgrad", "maximize", "dampening"))),
        repr(model),
        repr(cfg.loss) + loss_name(cfg, data.task),
    )


def groups(runs: list[Run]) -> list[list[Run]]:
    """The runs cut into groups that train together, in order of their first member; lone runs alone."""
    found: dict = {}
    alone = []
    for run in runs:
        k = key(run)
        if k is None:
            alone.append([run])
        else:
            found.setdefault(k, []).append(run)
    return list(found.values()) + alone


def fit_many(
    cfgs: list[Config],
    config_dir: Path | None = None,
    log: Callable[[str], None] = print,
    quiet: bool = True,
    should_stop: list[ShouldStop | None] | None = None,
    started: Callable[[list[Run]], None] | None = None,
    data: list | None = None,
    tensorboard: bool = False,
    earlier: list[Path | None] | None = None,
) -> list[dict | Diverged]:
    """Start a run per config (every folder made before any trains; none left if one cannot start), then
    train those that can go together on the stacked engine, as many at once as memory holds, and the others
    alone. Results in order. `started`: told the runs once all have their folders; `data`: each run's
    prepared data (cross-validation folds), else each reads its own; tensorboard: event files in each run folder;
    `earlier`: per config, the folder of a run of it that a stop cut short (a sweep's trial queued again), resumed
    from its last save (one that had ended gives its summary, untrained) where it can be, else started anew."""
    data = data or [None] * len(cfgs)
    earlier = earlier or [None] * len(cfgs)
    openers = [lambda c=c, d=d, e=e: _resumed_or_started(e, c, config_dir, d) for c, d, e in zip(cfgs, data, earlier)]
    runs = _all_or_none(openers, remove=True, keep={e for e in earlier if e is not None})
    if started is not None:
        started(runs)
    return train_groups(runs, log, quiet, should_stop, tensorboard)


def resume_many(
    run_dirs: list[Path],
    overrides: list[str],
    log: Callable[[str], None],
    quiet: bool,
    tensorboard: bool = False,
    ended: Iterable[Path] = (),
    started: Callable[[list[Run]], None] | None = None,
) -> list:
    """Runs that trained together, resumed together: from the same epoch and step they go on exactly as they
    would have (those at different points train in separate groups). `ended`: those of run_dirs that had ended
    (a finished bag's members, lengthened), each from its own last.pt rather than drawn back to the point the
    others hold; `started`: told the runs once every one is opened, before any trains."""
    from nntrain.engine.state import resume
    from nntrain.runs.folders import resolve_run_dir

    folders = [resolve_run_dir(str(d)).resolve() for d in run_dirs]
    twice = sorted({str(d) for d in folders if folders.count(d) > 1})
    if twice:
        raise UserError(f"--resume {', '.join(twice)}: each run folder once")
    apart = {resolve_run_dir(str(d)).resolve() for d in ended}
    chosen = dict(_common_checkpoints([d for d in folders if d not in apart]))
    runs = _all_or_none(
        [lambda d=d: resume(d, overrides, stacked=True, checkpoint=chosen.get(d, "last")) for d in folders]
    )
    if started is not None:
        started(runs)
    return train_groups(runs, log, quiet, tensorboard=tensorboard)


def _common_checkpoints(folders: list[Path]) -> list[tuple[Path, str]]:
    """(folder, "last" or "last.prev") per run: members a kill -9 caught one save apart resume from the epoch
    they all hold, those ahead from their previous save, so the group goes on together, exactly."""
    from nntrain.runs.checkpoints import load_checkpoint
    from nntrain.runs.folders import PREVIOUS

    def epoch(path: Path) -> int | None:
        return load_checkpoint(path)["epoch"] if path.is_file() else None

    points = [(epoch(d / "last.pt"), epoch(d / PREVIOUS)) for d in folders]
    common = min((e if e is not None else p) for e, p in points if e is not None or p is not None) if points else 0
    return [(d, "last.prev" if e != common and p == common else "last") for d, (e, p) in zip(folders, points)]


def _resumed_or_started(folder: Path | None, cfg: Config, config_dir: Path | None, data) -> Run:
    """The run in `folder` from its last save, else (no folder; one another process holds, or whose data
    changed) a new run of cfg."""
    from nntrain.engine.state import resume

    if folder is not None:
        try:
            return resume(folder, stacked=True)
        except UserError:
            pass
    return start(cfg, config_dir, stacked=True, data=data)


def _all_or_none(openers: list[Callable[[], Run]], remove: bool = False, keep: set[Path] = frozenset()) -> list[Run]:
    """Each opener's run; if one fails, the runs opened before it let go of their folders (and, `remove`: new
    folders, deleted; those in `keep`, resumed, stay) before the error goes on."""
    runs: list[Run] = []
    try:
        for opener in openers:
            runs.append(opener())
    except BaseException:
        for run in runs:
            if run.lock is not None:
                run.lock.release()
            if remove and run.run_dir not in keep:
                shutil.rmtree(run.run_dir, ignore_errors=True)
        raise
    return runs


def train_groups(
    runs: list[Run],
    log: Callable[[str], None],
    quiet: bool,
    should_stop: list[ShouldStop | None] | None = None,
    tensorboard: bool = False,
) -> list[dict | Diverged]:
    """The runs in groups of one key(), each group on the stacked engine (as many at once as memory holds),
    a run no other can join on the lone engine (_lone). Results in the runs' order."""
    stops = dict(zip(map(id, runs), should_stop or [None] * len(runs)))
    results: dict[int, dict | Diverged] = {}
    parts = [part for g in groups(runs) for part in _fitting(g)]
    for i, group in enumerate(parts):
        hooks = [stops[id(r)] for r in group]
        try:
            if _lone(group):
                results[id(group[0])] = _alone(group[0], log, quiet, hooks[0], tensorboard)
            else:
                results.update(zip(map(id, group), train_parts(group, log, hooks, quiet, tensorboard)))
        except BaseException as e:
            waiting = [r for later in parts[i + 1 :] for r in later]
            for r in waiting:  # they never trained: their folders are let go as they are (resumable)
                if r.lock is not None:
                    r.lock.release()
            if isinstance(e, Interrupted):  # the runs still to train are named too
                raise e.also([r.run_dir for r in waiting]) from None
            raise
    return [results[id(r)] for r in runs]


def _lone(group: list[Run]) -> bool:
    """A group of one trains on the lone engine, unless its run trained stacked (its checkpoint holds a mask
    generator) and may go on so: resumed alone, it then ends on the numbers it would have had."""
    return len(group) == 1 and (group[0].masks is None or key(group[0]) is None)


def _fitting(group: list[Run]) -> list[list[Run]]:
    """The group cut into parts whose stacked training fits in half the free memory (an estimate per member:
    weights, gradients, optimizer state, activations and its own copy of the data)."""
    first = group[0]
    model = first.parts.model  # model.shared_members: `out` holds each member's outputs
    n_in, n_out = first.data.X.shape[1], model.out.out_features // getattr(model, "n_shared", 1)
    data = first.data.X.nbytes + first.data.y.nbytes
    numeric = numerics_of(first.data.prep)
    each = training_bytes(first.cfg, n_in, n_out, first.batch_size, len(first.data.X), numeric) + data
    have = available_bytes(first.device)
    size = len(group) if have is None else max(1, min(len(group), int(have * 0.5 // each)))
    return [group[i : i + size] for i in range(0, len(group), size)]


def _alone(
    run: Run, log: Callable[[str], None], quiet: bool, should_stop: ShouldStop | None, tensorboard: bool = False
) -> dict | Diverged:
    """A run no other can join, on the lone engine (its parts rebuilt with the written-out step where it applies)."""
    try:
        shown = Lines(log, quiet=quiet)
        return train(rebuild_alone(run), log, progress=shown, should_stop=should_stop, tensorboard=tensorboard)
    except Diverged as e:
        e.run_dir = run.run_dir
        return e


def distinct_seeds(seeds: object) -> list[int]:
    """The seeds as `fit --seeds` takes them: one or more, whole and distinct (a seed twice trains one run twice)."""
    plain = isinstance(seeds, (list, tuple, range)) and all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in seeds
    )
    if not plain or not seeds or len(set(seeds)) != len(seeds):
        shown = repr(list(seeds)) if isinstance(seeds, (list, tuple, range)) else type(seeds).__name__
        raise UserError(f"seeds: give a list of distinct whole numbers, e.g. [0, 1, 2], not {shown}")
    return [int(s) for s in seeds]


def seeds_line(seeds: list[int], results: list[dict | Diverged]) -> str:
    """The test metric's mean and spread over the seeds that finished (what --seeds is for) beside the baseline's
    mean; a second line where the runs do no better than it."""
    done = [r for r in results if isinstance(r, dict)]
    if not done:
        return f"seeds {','.join(map(str, seeds))}: none finished"
    name = headline(done[0]["task"])
    if name not in done[0]["test"]:
        return f"seeds {','.join(map(str, seeds))}: {len(done)} runs finished; no test split (data.test_size=0)"
    values = np.array([r["test"][name] for r in done])
    spread = f" ± {shown(values.std(ddof=1))} (mean ± standard deviation)" if len(values) > 1 else ""
    failed = f"; {len(results) - len(done)} diverged" if len(done) < len(results) else ""
    line = f"seeds {','.join(map(str, seeds))}: test {name} {shown(values.mean())}{spread} over {len(done)} runs"
    bases = [(r.get("test_baseline") or {}).get(name) for r in done]
    if any(b is None for b in bases):
        return line + failed
    base = float(np.mean(bases))  # each seed's split has its own baseline
    worse = no_better({name: float(values.mean())}, {name: base})
    return f"{line}, baseline {shown(base)}{failed}" + (f"\n{worse}" if worse else "")
