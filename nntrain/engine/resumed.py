"""What a resume may change: the stored config with the overrides applied, anything outside train.* and device
refused key by key (and train.bag, train.linear: a lone run stays one model), a lengthened schedule followed
(cosine's T_max derived again), config.yaml rewritten."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from nntrain.config.components import WARMUP, canonical
from nntrain.config.loading import load_config
from nntrain.config.schema import Config, dump_yaml, to_plain
from nntrain.errors import ConfigError, UserError
from nntrain.plaindata import flatten
from nntrain.runs.files import write_text
from nntrain.runs.folders import RESUMABLE


def _lengthened_schedule(ckpt: dict, cfg: Config, overrides: list[str]) -> tuple[str, ...]:
    """A cosine schedule follows a resume's new length: its T_max, when it was derived from train.epochs (less
    warmup), is derived again for the new train.epochs (a note says so), unless the resume gives scheduler.T_max;
    engine/parts.follow_schedule then sets the rate where the new curve stands. The keys it lets change."""
    if canonical("scheduler", cfg.scheduler["name"]) != "cosine":
        return ()
    stored, warm = ckpt["config"], int(cfg.scheduler.get(WARMUP) or 0)
    given = {o.split("=", 1)[0].strip() for o in overrides}
    old_epochs, old_t = stored["train"]["epochs"], stored["scheduler"].get("T_max")
    if "scheduler.T_max" not in given and cfg.train.epochs != old_epochs and old_t == old_epochs - warm:
        cfg.scheduler["T_max"] = cfg.train.epochs - warm
        cfg._notes.append(
            f"scheduler.T_max: {old_t} -> {cfg.scheduler['T_max']} for train.epochs={cfg.train.epochs}: from epoch "
            f"{ckpt['epoch'] + 1} the rate follows the cosine a run of {cfg.train.epochs} epochs has"
        )
    done = ckpt["epoch"] - warm
    if isinstance(cfg.scheduler.get("T_max"), int) and cfg.scheduler["T_max"] < done:
        raise UserError(
            f"scheduler.T_max={cfg.scheduler['T_max']}: the run has already trained {done} epochs of its cosine; "
            f"give at least {done}"
        )
    return ("scheduler.T_max", "scheduler.eta_min")


def rewrite_config(path: Path, cfg: Config) -> None:
    """config.yaml with the train.* keys this resume changed (runs would show 4/2 epochs); its time stays the
    run's start, which `runs` shows."""
    text = dump_yaml(cfg)
    if path.read_text() != text:
        stat = path.stat()
        write_text(path, text)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def check_unchanged(stored: dict, cfg: Config, may_change: tuple[str, ...] = RESUMABLE) -> None:
    """Refused, each key named with its old and new value: a change to what was trained (a key outside
    `may_change`, train.* and device unless told otherwise) between the stored config and cfg."""
    was, now = flatten(stored), flatten(to_plain(cfg))
    changed = [
        f"{k}: {was.get(k)!r} -> {now.get(k)!r}"
        for k in dict.fromkeys([*was, *now])
        if was.get(k) != now.get(k) and not k.startswith(may_change) and k in was  # a newer nntrain's key: its default
    ]
    if changed:
        raise UserError(
            changed,
            header="these keys cannot change on resume (the checkpoint was trained with the "
            "old values); start a new run instead:",
        )


def _one_model_still(stored: dict, cfg: Config) -> None:
    """A lone run (or a bag's member, alone) trained one model, and its resume goes on with it: refused, a
    train.bag that would make it a bag, and a new train.linear (a bag's linear model); either was written into
    its config.yaml and trained nothing."""
    was = stored.get("train", {})
    bag, linear = cfg.train.bag, cfg.train.linear
    if bag != was.get("bag", 0) and bag not in (0, 1):
        raise UserError(
            f"train.bag={bag}: the run trained one model, and a resume goes on with it, not as a bag; to train a "
            f"bag, start a new run with train.bag={bag}"
        )
    if linear != was.get("linear", False):
        raise UserError(
            f"train.linear={str(linear).lower()}: the run trained one model, and train.linear is a bag's (a linear "
            f"model beside its members); to train a bag, start a new run with train.bag=N"
        )


def _not_shortened(ckpt: dict, cfg: Config, run_dir: Path | None) -> None:
    """A train.epochs below the epochs the checkpoint has trained (a part of one counts): refused; the run
    would end at once as 'completed', its config.yaml saying fewer epochs than its model trained."""
    done, part = ckpt["epoch"], bool(ckpt["step"])
    if isinstance(cfg.train.epochs, int) and cfg.train.epochs < done + part:
        run = f"the run {run_dir}" if run_dir else "the run"
        trained = f"{done} epochs" + (f" and part of epoch {done + 1}" if part else "")
        raise UserError(
            f"train.epochs={cfg.train.epochs}: {run} has already trained {trained}; give train.epochs above "
            f"{done} to train on, or use the run as it is (eval, predict) without a resume"
        )


def _asked_before(run_dir: Path, stored: dict) -> list[str]:
    """A plain resume's overrides where a resume that changed train.* keys (fit --resume RUN train.epochs=N, which
    rewrites config.yaml before it trains) was killed before its first save: config.yaml says what it was asked,
    last.pt the run as it was. The run goes on as asked, as it would have had the kill come after a save."""
    try:
        written = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return []
    if not isinstance(written, dict):
        return []
    was, now = flatten(stored), flatten(written)
    return [f"{k}={json.dumps(v)}" for k, v in now.items() if k.startswith(RESUMABLE) and k in was and v != was[k]]


def resumed_config(ckpt: dict, overrides: list[str], run_dir: Path | None = None) -> Config:
    """The checkpoint's config with the overrides a resume may apply; any other change is refused. `run_dir`:
    the run's folder, named where it is one of several (a bag's member)."""
    stored = ckpt["config"]
    try:
        cfg = load_config(None, list(overrides), raw=json.loads(json.dumps(stored)))  # a deep copy to override
    except ConfigError as e:
        e.source = "last.pt's stored config and the overrides"
        raise
    _not_shortened(ckpt, cfg, run_dir)  # before a cosine's T_max is derived from it: the key the user gave
    check_unchanged(stored, cfg, RESUMABLE + _lengthened_schedule(ckpt, cfg, overrides))
    _one_model_still(stored, cfg)
    onecycle = canonical("scheduler", cfg.scheduler["name"]) == "onecycle"
    if onecycle and cfg.train.epochs != stored["train"]["epochs"]:
        raise UserError(
            f"train.epochs={cfg.train.epochs}: the run's onecycle schedule was laid out over its "
            f"{stored['train']['epochs']} epochs ({cfg.scheduler['total_steps']} steps); start a new run to go longer"
        )
    if onecycle and cfg.train.batch_size != stored["train"]["batch_size"]:
        raise UserError(
            f"train.batch_size={cfg.train.batch_size}: the run's onecycle schedule was laid out over "
            f"{cfg.scheduler['total_steps']} steps (scheduler.total_steps) of batches of "
            f"{stored['train']['batch_size']}; resume without changing it, or start a new run"
        )
    if ckpt["step"] and cfg.train.batch_size != stored["train"]["batch_size"]:
        raise UserError(
            f"train.batch_size={cfg.train.batch_size}: the run stopped in the middle of epoch "
            f"{ckpt['epoch'] + 1}, whose batches were cut at {stored['train']['batch_size']}; resume "
            f"without changing it (a change at an epoch boundary is fine)"
        )
    return cfg


def config_going_on(ckpt: dict, overrides: list[str], run_dir: Path) -> Config:
    """resumed_config; a plain resume takes what a resume killed before its first save had asked (config.yaml
    says it), unless that no longer applies (then the run goes on as saved)."""
    asked = [] if overrides else _asked_before(run_dir, ckpt["config"])
    if asked:
        try:
            cfg = resumed_config(ckpt, asked, run_dir)
        except (ConfigError, UserError):
            return resumed_config(ckpt, [], run_dir)
        cfg._notes.append(f"config.yaml asks {' '.join(asked)} (a resume stopped before its first save): going on")
        return cfg
    return resumed_config(ckpt, overrides, run_dir)
