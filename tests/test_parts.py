"""A large stacked group on the CPU trains in two parts side by side, a thread each (engine/stacked_parts.py):
each member's numbers are those one engine gives it, a signal stops both parts with every member saved and
resumable to the uninterrupted weights, and an error in one part stops the other and is the one raised."""

from __future__ import annotations

import json
import signal
import time

import pytest
import torch

from nntrain.config.loading import load_config
from nntrain.engine import stacked_parts
from nntrain.engine.run_groups import fit_many, resume_many
from nntrain.engine.stacked_runs import Engine
from nntrain.engine.stopping import SIGNALS, Interrupted, catching_signals
from nntrain.runs.checkpoints import load_checkpoint

from .conftest import make_table, write_config

QUIET = lambda m: None  # noqa: E731
SEEDS = [[f"seed={s}"] for s in range(4)]
STEPS = 14  # steps an epoch: 210 training rows of the 300, batches of 16


@pytest.fixture
def two_cores(monkeypatch):
    """Two usable cores, both free (one thread a part), on any machine."""
    monkeypatch.setattr(stacked_parts, "usable_cores", lambda: 2)
    monkeypatch.setattr(stacked_parts, "free_cores", lambda: 2)


@pytest.fixture
def split(monkeypatch, two_cores):
    """Every stacked group splits, however small its step."""
    monkeypatch.setattr(stacked_parts, "SPLIT_WORK", 0)


@pytest.fixture
def cfg(workdir, table_csv):
    model = {"hidden": [16, 16], "dropout": 0.2}
    return write_config(workdir / "c.yaml", table_csv(n=300), model=model, train={"epochs": 4, "batch_size": 16})


def runs(cfg, prefix: str, overrides=SEEDS, log=QUIET):
    names = [f"{prefix}{i}" for i in range(len(overrides))]
    return fit_many([load_config(cfg, o, name=n) for o, n in zip(overrides, names)], log=log)


def same_weights(a, b) -> bool:
    x, y = load_checkpoint(a), load_checkpoint(b)
    return x["epoch"] == y["epoch"] and all(torch.equal(x["model"][k], y["model"][k]) for k in x["model"])


def test_a_group_in_two_parts_gives_each_member_the_numbers_one_engine_gives_it(cfg, workdir, split):
    lines: list[str] = []
    runs(cfg, "p", log=lines.append)
    assert "the 4 members train in 2 parts side by side (2 and 2), 1 thread(s) each" in lines
    assert sum(line.startswith("batched: 2 members") for line in lines) == 2
    lines.clear()
    runs(cfg, "one", [[*o, "train.threads=1"] for o in SEEDS], log=lines.append)  # a thread count asked: one engine
    assert not any("side by side" in line for line in lines)
    for i in range(4):
        for which in ("best.pt", "last.pt"):
            assert same_weights(workdir / f"runs/p{i}/{which}", workdir / f"runs/one{i}/{which}"), (i, which)


def test_members_of_one_seed_draw_their_own_dropout_masks(cfg, workdir):
    runs(cfg, "m", [["seed=0"]] * 2)  # a bag's members share their seed and, here, their rows
    assert not same_weights(workdir / "runs/m0/last.pt", workdir / "runs/m1/last.pt")
    runs(cfg, "n", [["seed=0", "model.dropout=0"]] * 2)  # without dropout nothing else differs
    assert same_weights(workdir / "runs/n0/last.pt", workdir / "runs/n1/last.pt")


def test_only_a_group_whose_step_is_large_enough_splits(cfg, two_cores):
    """Below SPLIT_WORK multiply-adds a step the parts' Python between ops (one GIL) costs more than they gain."""
    small, large = [], []
    runs(cfg, "s", [[*o, "train.epochs=1"] for o in SEEDS], log=small.append)
    wide = ["train.epochs=1", "model.hidden=[512, 512]", "train.batch_size=64"]  # 4 x 270k weights x 64 rows
    runs(cfg, "w", [[*o, *wide] for o in SEEDS], log=large.append)
    assert not any("side by side" in line for line in small)
    assert any("train in 2 parts side by side" in line for line in large)


def _on_step(monkeypatch, name: str, at: int, then, pause: float = 0.0) -> None:
    """Part engines whose first member is `name` call then() at their at-th optimizer step (and wait `pause`
    seconds at each, the other part going on ahead)."""
    real = Engine.__init__

    def init(self, group, *threads):
        real(self, group, *threads)
        if group[0].run_dir.name != name:
            return
        step, calls = self.opt.step, [0]

        def counting():
            time.sleep(pause)
            calls[0] += 1
            if calls[0] == at:
                then()
            step()

        self.opt.step = counting

    monkeypatch.setattr(Engine, "__init__", init)


def test_a_signal_while_parts_train_saves_every_member_and_they_resume_to_the_uninterrupted_weights(
    cfg, workdir, split, monkeypatch
):
    longer = [[*o, "train.epochs=12"] for o in SEEDS]
    runs(cfg, "ref", longer)
    with monkeypatch.context() as m:  # a real SIGINT in the middle of the second part's third epoch
        _on_step(m, "mid2", 2 * STEPS + 6, lambda: signal.raise_signal(signal.SIGINT))
        with catching_signals(), pytest.raises(Interrupted) as info:
            runs(cfg, "mid", longer)
    assert all(f"--resume runs/mid{i}" in str(info.value) for i in range(4))
    # the handler runs in the main thread (the first part's) when it next runs Python: the second part stops at
    # its first step after that, which a busy machine can put an epoch or two later
    stood = [load_checkpoint(workdir / f"runs/mid{i}/last.pt") for i in range(4)]
    assert all(c["epoch"] < 12 for c in stood) and any(c["step"] > 0 for c in stood)
    with catching_signals():  # the parts stood at different steps: resumed in groups of their own, split again
        resume_many([workdir / f"runs/mid{i}" for i in range(4)], [], QUIET, True)
    for i in range(4):
        for which in ("best.pt", "last.pt"):
            assert same_weights(workdir / f"runs/mid{i}/{which}", workdir / f"runs/ref{i}/{which}"), (i, which)


def test_a_bag_in_parts_stopped_and_resumed_ends_on_the_uninterrupted_weights(workdir, split, monkeypatch):
    """A bag of 3 (parts of 2 and 1) on folds of unequal lengths, regression (one output: torch's kernels
    for one member differ from those for two). Stopped in the second part, the parts stand at different points:
    resumed, they regroup (the lone member of the second part on the stacked engine, not the lone one), and
    every member ends on the weights the uninterrupted bag gave it."""
    from nntrain.tools.bag_resume import resume_bag
    from nntrain.tools.bagging import fit_bag

    make_table(n=159, task="regression").to_csv(workdir / "b.csv", index=False)
    train = {"bag": 3, "epochs": 30, "batch_size": 16, "patience": 3}
    path = write_config(workdir / "b.yaml", "b.csv", data={"target": "y"}, model={"dropout": 0.1}, train=train)
    fit_bag(load_config(path, name="whole"), workdir, QUIET)
    with monkeypatch.context() as m:
        _on_step(m, "member3", 2 * 6 + 3, lambda: signal.raise_signal(signal.SIGINT), pause=0.02)
        with catching_signals(), pytest.raises(Interrupted):
            fit_bag(load_config(path, name="cut"), workdir, QUIET)
    stood = [load_checkpoint(workdir / f"runs/cut/member{i}/last.pt") for i in (1, 2, 3)]
    assert len({(c["epoch"], c["step"]) for c in stood}) > 1  # the parts stood apart
    with catching_signals():
        resume_bag(workdir / "runs/cut", [], QUIET)
    for i in (1, 2, 3):
        for which in ("best.pt", "last.pt"):
            whole, cut = (workdir / f"runs/{b}/member{i}/{which}" for b in ("whole", "cut"))
            assert same_weights(whole, cut), (i, which)


def test_an_error_in_one_part_stops_the_other_which_saves_and_says_why(cfg, workdir, split, monkeypatch):
    def fault():
        raise RuntimeError("a fault in part two")

    _on_step(monkeypatch, "e2", 20, fault)
    with catching_signals(), pytest.raises(RuntimeError, match="a fault in part two"):
        runs(cfg, "e", [[*o, "train.epochs=500"] for o in SEEDS])  # the first part would train for minutes
    assert SIGNALS.signum is None  # the stop asked of the first part is taken back: a caller can go on
    for i in (0, 1):
        summary = json.loads((workdir / f"runs/e{i}/summary.json").read_text())
        assert summary["status"] == "interrupted" and summary["epochs_run"] < 100
        assert summary["stopped"] == "another part of its group failed (a fault in part two); last.pt saved"
