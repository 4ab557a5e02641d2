"""fit --resume of a bag (tools/bagging.py trains it): the members a stop cut short go on together from their
last.pt, those that ended go on where overrides lengthen them (as lone runs would), and the bag is finished again
(oof.csv, summary.json); a stop meanwhile is resumed as the bag, never a member alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from nntrain.config.schema import Config, to_plain
from nntrain.engine.stopping import Diverged, Interrupted
from nntrain.errors import UserError
from nntrain.runs.files import read_summary
from nntrain.runs.folders import PREVIOUS
from nntrain.tools.bag_inference import read_plan
from nntrain.tools.bagging import BAG_KEYS, OOF_FILE, finish_bag


def resume_bag(root: Path, overrides: list[str], log: Callable[[str], None], quiet: bool = True) -> dict:
    """The members a stop cut short, resumed together from their last.pt; given overrides (train.epochs=N), the
    members that ended too, each going on as a lone run does with them (one that ran its epochs trains on, an
    early-stopped one stays as it is); then the bag finished as fit_bag finishes it (oof.csv, summary.json), its
    config.yaml rewritten with the overrides once a member trained, as a lone run's is."""
    from nntrain.engine.finish import UNCHANGED, ended_already
    from nntrain.engine.resumed import rewrite_config
    from nntrain.engine.run_groups import resume_many

    t0 = time.perf_counter()
    plan = read_plan(root)
    cfg, given = _resumed_bag_config(root, overrides)
    folders = [root / n for n in plan["members"]]
    done = {f: _ended(f) for f in folders}
    overrides = list(overrides) or _lengthening_cut_short(cfg, done)
    _check_saved(root, folders, [f for f, r in done.items() if r is None])
    ended = [f for f, r in done.items() if isinstance(r, dict)] if overrides else []  # a diverged one stays
    going = [f for f in folders if done[f] is None or f in ended]
    each = [o for o in overrides if o.split("=", 1)[0].strip() not in BAG_KEYS]
    _check_members(going, each)  # every member takes the overrides before any folder is written
    said = f" ({' '.join(overrides)})" if overrides else ""

    def started(runs: list) -> None:
        trains = sum(ended_already(r) is None for r in runs)  # an early-stopped member says why it does not
        log(f"bag {root}: {trains} of {len(folders)} members to resume{said}")
        if trains:  # before any trains, as a lone run's config.yaml takes the overrides it goes on with
            rewrite_config(root / "config.yaml", given)
            for name in ("summary.json", OOF_FILE):  # they describe the members as they were: until the bag is
                (root / name).unlink(missing_ok=True)  # finished again, it has not finished (eval refuses it)

    if not going:
        started([])
    try:
        resumed = dict(zip(going, resume_many(going, each, log, quiet, ended=ended, started=started))) if going else {}
    except Interrupted as e:
        raise _bags_stop(e, root) from None
    if any(not (isinstance(r, dict) and r.get(UNCHANGED)) for r in resumed.values()):
        cfg = given
    elif _own_keys(cfg) != _own_keys(given):  # no member trained: the bag's own keys are its finish's, kept
        rewrite_config(root / "config.yaml", given)  # for a later resume, which finishes it again
        cfg = given
    return finish_bag(root, cfg, [resumed.get(f) or done[f] for f in folders], time.perf_counter() - t0, log)


def _lengthening_cut_short(cfg: Config, done: dict) -> list[str]:
    """A plain resume's overrides where a lengthening (fit --resume BAG train.epochs=N, which rewrites the bag's
    config.yaml before any member trains) was stopped, a kill -9 before a member's save reached N: its members'
    summaries still say they ran all of fewer epochs. They go on to N, as the lengthening would have."""
    if not isinstance(cfg.train.epochs, int):  # written as a number when the bag was made; never auto here
        return []
    short = [r for r in done.values() if isinstance(r, dict) and r.get("status") == "completed"]
    short = [r for r in short if isinstance(r.get("epochs_run"), int) and r["epochs_run"] < cfg.train.epochs]
    return [f"train.epochs={cfg.train.epochs}"] if short else []


def _bags_stop(e: Interrupted, root: Path) -> Interrupted:
    """A stop while the bag's members train: resumed as one bag (a member resumed alone is refused)."""
    return Interrupted(e.signum, root, e.epoch, e.step) if e.run_dir is not None else Interrupted(e.signum)


def _check_saved(root: Path, folders: list[Path], pending: list[Path]) -> None:
    """Every member still to train has a save to go on from. None has one when the bag was killed while its
    members were made (nothing is lost: train it again); where others have, the member's folder or save is gone."""
    unsaved = [f for f in pending if not _has(f, ("last.pt", PREVIOUS))]
    if unsaved and not any(_has(f, ("last.pt", PREVIOUS, "best.pt")) for f in folders):
        raise UserError(
            f"{root}: the bag was stopped before its members began to train ({unsaved[0].name} has no save); "
            f"train it again: nntrain fit {root / 'config.yaml'}"
        )
    if unsaved:
        what = "is missing" if not unsaved[0].is_dir() else "has lost its checkpoints (last.pt)"
        raise UserError(
            f"{unsaved[0]}: not found: the bag's member {unsaved[0].name} {what}; the bag cannot be finished: "
            f"train the bag again: nntrain fit {root / 'config.yaml'}"
        )


def _own_keys(cfg: Config) -> tuple:
    """The values of the bag's own keys (BAG_KEYS: its folds, linear model and plots), not its members'."""
    return tuple(getattr(cfg.train, key.removeprefix("train.")) for key in BAG_KEYS)


def _resumed_bag_config(root: Path, overrides: list[str]) -> tuple[Config, Config]:
    """The bag's config as stored, and with the overrides: those a lone run's resume refuses (a key outside
    train.* and device) refused as it refuses them, and a new train.bag (the folds are the bag's)."""
    from nntrain.config.loading import load_config
    from nntrain.engine.resumed import check_unchanged

    cfg = load_config(root / "config.yaml")
    if not overrides:
        return cfg, cfg
    given = load_config(root / "config.yaml", list(overrides))
    check_unchanged(to_plain(cfg), given)
    if given.train.bag != cfg.train.bag:
        raise UserError(
            f"train.bag={given.train.bag}: the bag's rows were cut into {cfg.train.bag} folds, one a member "
            f"(bag.json); a resume keeps them: start a new bag for another count"
        )
    return cfg, given


def _has(folder: Path, names: tuple[str, ...]) -> bool:
    return any((folder / name).is_file() for name in names)


def _check_members(folders: list[Path], overrides: list[str]) -> None:
    """Each member's resume of its last save with the overrides, checked (as the resume will) before any trains:
    one refused (a cosine's scheduler.T_max below the epochs it ran) leaves every folder as it was."""
    from nntrain.engine.resumed import resumed_config
    from nntrain.runs.checkpoints import load_checkpoint

    for folder in folders if overrides else ():
        saved = folder / "last.pt" if (folder / "last.pt").is_file() else folder / PREVIOUS
        resumed_config(load_checkpoint(saved), overrides, folder)


def _ended(member: Path) -> dict | Diverged | None:
    """A member's result when it has ended (summary.json, not interrupted), else None."""
    try:
        summary = read_summary(member)
    except ValueError as e:  # cut short or edited: whether and how the member ended is unknown
        raise UserError(
            f"{member / 'summary.json'}: not JSON ({e}); the bag's member cannot be resumed from it: "
            f"train the bag again: nntrain fit {member.parent / 'config.yaml'}"
        ) from None
    if summary.get("status") in (None, "interrupted"):
        return None
    return Diverged(summary.get("stopped") or "diverged") if summary["status"] == "diverged" else summary
