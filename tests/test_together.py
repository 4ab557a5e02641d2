"""Runs trained together on the stacked engine: each member's run folder holds what a lone fit of its config
would (the same weights on the shared path), members stop on their own, a diverged member leaves the others
be, an interrupted batch resumes bit-identically, and `sweep --batch` gives the trials `--batch 1` gives."""

from __future__ import annotations

import signal
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from nntrain.config.loading import load_config
from nntrain.engine.loop import fit
from nntrain.engine.run_groups import fit_many, resume_many
from nntrain.engine.stacked_runs import Engine
from nntrain.engine.stopping import Diverged, Interrupted, catching_signals
from nntrain.runs.checkpoints import load_checkpoint

from .conftest import metrics_rows, write_config

QUIET = lambda m: None  # noqa: E731
FILES = {"config.yaml", "split.json", "metrics.csv", "best.pt", "last.pt", "summary.json", "curves.png"}


def cfgs_for(path, overrides: list[list[str]], names: list[str]):
    return [load_config(path, o, name=n) for o, n in zip(overrides, names)]


def weights(run_dir, which="best.pt"):
    return load_checkpoint(run_dir / which)["model"]


def assert_close_runs(a, b, atol=1e-6):
    """The same epochs, the same best epoch, weights within atol, metrics.csv's values within atol."""
    for which in ("best.pt", "last.pt"):
        x, y = load_checkpoint(a / which), load_checkpoint(b / which)
        assert x["epoch"] == y["epoch"], which
        for k in x["model"]:
            assert torch.allclose(x["model"][k].float(), y["model"][k].float(), atol=atol), (which, k)
    rows_a, rows_b = metrics_rows(a), metrics_rows(b)
    assert [r.keys() for r in rows_a] == [r.keys() for r in rows_b]
    for ra, rb in zip(rows_a, rows_b):
        for key in ra:
            if key != "seconds":
                assert float(ra[key]) == pytest.approx(float(rb[key]), abs=atol * 10), key


@pytest.fixture
def small(workdir, table_csv):
    return write_config(workdir / "c.yaml", table_csv(n=300), train={"epochs": 4, "batch_size": 16})


@pytest.mark.parametrize(
    "extra, atol",
    [
        (["optimizer.name=sgd", "optimizer.lr=0.05", "optimizer.momentum=0.9", "train.l1=0.001"], 1e-6),
        (["optimizer.name=adamw", "optimizer.weight_decay=0.01", "scheduler.name=cosine"], 1e-5),
        # autograd under vmap (SGD: Adam would blow a bias's rounding noise up, batch norm zeroing its gradient)
        (["model.batch_norm=true", "model.activation=elu", "train.grad_clip=0.5", "optimizer.name=sgd"], 1e-5),
        (["model.numeric_embedding=periodic", "data.scale=robust", "optimizer.name=sgd"], 1e-5),
        (["model.numeric_embedding={name: piecewise_linear, bins: 4}", "optimizer.name=sgd"], 1e-5),
    ],
)
def test_each_member_equals_a_lone_fit_of_its_config(small, workdir, extra, atol):
    seeds = [["seed=0", *extra], ["seed=1", *extra], ["seed=2", *extra, "optimizer.lr=0.003"]]
    results = fit_many(cfgs_for(small, seeds, ["m0", "m1", "m2"]), log=QUIET)
    assert [r["status"] for r in results] == ["completed"] * 3
    for i, o in enumerate(seeds):
        fit(load_config(small, o, name=f"lone{i}"), log=QUIET)
        assert_close_runs(workdir / "runs" / f"m{i}", workdir / "runs" / f"lone{i}", atol)
        assert {p.name for p in (workdir / "runs" / f"m{i}").iterdir()} >= FILES


@pytest.mark.parametrize("opt", [["optimizer.name=sgd", "optimizer.lr=0.05"], ["optimizer.name=adamw"]])
def test_members_stop_on_their_own_and_a_diverged_one_leaves_the_others_be(small, workdir, monkeypatch, opt):
    overrides = [[*opt, "train.epochs=2"], [*opt, "train.epochs=5"], [*opt, "optimizer.lr=1e12"]]
    sizes, real = [], Engine.of
    monkeypatch.setattr(Engine, "of", lambda self, runs: sizes.append(len(runs)) or real(self, runs))
    results = fit_many(cfgs_for(small, overrides, ["short", "long", "wild"]), log=QUIET)
    assert sizes == [2, 1] or sizes == [1]  # the stopped members leave the stack (wild may diverge at epoch 1 or 2)
    assert results[0]["epochs_run"] == 2 and results[1]["epochs_run"] == 5
    assert isinstance(results[2], Diverged) and "diverged" in str(results[2])
    assert load_checkpoint(workdir / "runs/wild/last.pt")["epoch"] < 5
    import json

    assert json.loads((workdir / "runs/wild/summary.json").read_text())["status"] == "diverged"
    for name, o in (("short", overrides[0]), ("long", overrides[1])):
        fit(load_config(small, o, name=f"lone-{name}"), log=QUIET)
        assert_close_runs(workdir / "runs" / name, workdir / "runs" / f"lone-{name}")


def test_a_members_checkpoint_holds_its_own_weights_only(small, workdir):
    fit_many(cfgs_for(small, [["seed=0"]] * 4, ["a", "b", "c", "d"]), log=QUIET)
    fit(load_config(small, ["seed=0"], name="lone"), log=QUIET)
    lone = (workdir / "runs/lone/best.pt").stat().st_size
    masks = len(torch.Generator().get_state().numpy().tobytes())  # a member's own dropout-mask generator
    assert (workdir / "runs/a/best.pt").stat().st_size < lone * 1.1 + masks


@pytest.mark.filterwarnings("ignore:Seems like")
def test_an_interrupted_batch_resumed_together_equals_the_uninterrupted_one(small, workdir, monkeypatch):
    overrides = [["seed=0", "model.dropout=0.2"], ["seed=1", "model.dropout=0.2"]]
    fit_many(cfgs_for(small, overrides, ["ref0", "ref1"]), log=QUIET)
    calls = {"n": 0}
    real = Engine.__init__

    def init(self, runs, *threads):  # a real SIGINT in the middle of epoch 3 (14 steps an epoch)
        real(self, runs, *threads)
        step = self.opt.step

        def counting():
            calls["n"] += 1
            if calls["n"] == 2 * 14 + 6:
                signal.raise_signal(signal.SIGINT)
            step()

        self.opt.step = counting

    monkeypatch.setattr(Engine, "__init__", init)
    with catching_signals(), pytest.raises(Interrupted) as info:
        fit_many(cfgs_for(small, overrides, ["mid0", "mid1"]), log=QUIET)
    assert "--resume runs/mid0 --resume runs/mid1" in str(info.value)
    stood = [(c["epoch"], c["step"]) for c in (load_checkpoint(workdir / f"runs/mid{i}/last.pt") for i in (0, 1))]
    assert stood[0] == stood[1] and stood[0][0] == 2 and stood[0][1] > 0  # in the middle of epoch 3, both
    monkeypatch.setattr(Engine, "__init__", real)
    with catching_signals():
        resume_many([workdir / "runs/mid0", workdir / "runs/mid1"], [], QUIET, True)
    for i in (0, 1):
        a, b = load_checkpoint(workdir / f"runs/ref{i}/best.pt"), load_checkpoint(workdir / f"runs/mid{i}/best.pt")
        assert a["epoch"] == b["epoch"] and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_fit_seeds_prints_each_run_and_the_mean_and_spread(small, workdir, cli):
    r = cli("fit", small, "--seeds", "0,1,2", "-q")
    assert r.exit_code == 0, r.output
    assert "batched: 3 members x" in r.output
    assert "seeds 0,1,2: test accuracy" in r.output and "± " in r.output
    assert {p.name for p in (workdir / "runs").iterdir()} >= {"t-seed0", "t-seed1", "t-seed2"}
    bad = cli("fit", small, "--seeds", "0,x")
    assert bad.exit_code == 2 and "--seeds 0,x" in bad.output


def test_fit_seeds_shows_the_baseline_and_says_when_the_runs_do_no_better(workdir, cli):
    """The seeds' line gave the mean test accuracy of a 5%-'fraud' table whose features say nothing (0.95 ± 0)
    without its baseline (0.95) or a word: it read as a success."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    table.assign(y=np.where(np.arange(200) % 20 == 0, "fraud", "ok")).to_csv(workdir / "t.csv", index=False)
    tiny = ("--target", "y", "train.epochs=2", "train.plots=false", "train.threads=1", "train.bag=1", "-q")
    r = cli("fit", "t.csv", "--seeds", "0,1", *tiny)
    assert r.exit_code == 0, r.output
    assert "seeds 0,1: test accuracy 0.9500 ± 0.0000 (mean ± standard deviation) over 2 runs, baseline 0.9500" in (
        r.stdout
    )
    assert "warning: accuracy 0.9500 is no better than the baseline's 0.9500" in r.stdout


@pytest.mark.skipif(
    "optuna" not in sys.modules and __import__("importlib").util.find_spec("optuna") is None, reason="needs optuna"
)
def test_sweep_batch_gives_the_trials_of_one_at_a_time(small, workdir, cli):
    import yaml

    raw = yaml.safe_load(small.read_text())
    raw["sweep"] = {"optimizer.lr": [0.003, 0.01, 0.03], "model.hidden": [[8], [6, 4]], "pruner": "none"}
    small.write_text(yaml.safe_dump(raw))
    values = {}
    for batch in ("1", "6"):
        r = cli("sweep", small, "--grid", "--study", f"s{batch}", "--batch", batch, "--json")
        assert r.exit_code == 0, r.output
        folders = sorted((workdir / "runs" / f"s{batch}").glob("trial-*"))
        assert len(folders) == 6
        values[batch] = {
            (
                str(yaml.safe_load((f / "config.yaml").read_text())["optimizer"]["lr"]),
                str(yaml.safe_load((f / "config.yaml").read_text())["model"]["hidden"]),
            ): __import__("json").loads((f / "summary.json").read_text())["best_value"]
            for f in folders
        }
    assert values["1"].keys() == values["6"].keys()
    for k in values["1"]:
        assert values["1"][k] == pytest.approx(values["6"][k], abs=1e-5), k


# ---------------------------------------------------------------- model.ensemble: K members in one run


def test_an_ensembles_first_member_trains_as_the_lone_model_and_predict_averages_the_members(small, workdir, cli):
    sgd = ["optimizer.name=sgd", "optimizer.lr=0.05", "optimizer.momentum=0.9", "train.l1=0.001"]
    fit(load_config(small, sgd, name="lone"), log=QUIET)
    fit(load_config(small, [*sgd, "model.ensemble=3"], name="ens"), log=QUIET)
    ens, lone = load_checkpoint(workdir / "runs/ens/last.pt"), load_checkpoint(workdir / "runs/lone/last.pt")
    assert {k.split(".")[1] for k in ens["model"]} == {"0", "1", "2"}
    for k, v in lone["model"].items():  # the same seed, the same batches: member 0 is the lone model
        assert torch.allclose(ens["model"][f"members.0.{k}"], v, atol=1e-6), k
    assert not torch.equal(ens["model"]["members.1.fc1.weight"], ens["model"]["members.0.fc1.weight"])
    r = cli("predict", workdir / "runs/ens", small.parent / "t.csv")
    assert r.exit_code == 0, r.output
    import io

    import pandas as pd

    from nntrain.tools.inference import load_run

    shown = pd.read_csv(io.StringIO(r.stdout))
    loaded = load_run(workdir / "runs/ens", "best")
    X = torch.as_tensor(pd.read_csv(small.parent / "t.csv").drop(columns="y").to_numpy(), dtype=torch.float32)
    prep = load_checkpoint(workdir / "runs/ens/best.pt")["prep"]
    x = (X - torch.tensor(prep["shift"], dtype=torch.float32)) / torch.tensor(prep["scale"], dtype=torch.float32)
    with torch.no_grad():
        mean = torch.stack([torch.softmax(m(x), 1) for m in loaded.model.members]).mean(0)
    from nntrain.model.calibration import calibrated

    mean = torch.tensor(calibrated(mean.double().numpy(), loaded.ckpt.get("temperature"))).float()  # best.pt's
    assert torch.allclose(torch.tensor(shown[["proba_0", "proba_1", "proba_2"]].to_numpy()).float(), mean, atol=1e-5)
    p = cli("params", workdir / "runs/ens")
    assert p.exit_code == 0 and "members.2.out" in p.output
    single = sum(v.numel() for v in lone["model"].values())
    assert f"total {3 * single:,}" in p.output


@pytest.mark.parametrize("task, loss", [("binary", "bce"), ("binary", "cross_entropy"), ("regression", "mse")])
def test_an_ensemble_averages_probabilities_or_predictions(workdir, table_csv, task, loss, cli):
    data = table_csv(n=200, task=task)
    cfg = write_config(workdir / "c.yaml", data, model={"hidden": [8], "ensemble": 4}, loss=loss)
    r = cli("fit", cfg, "-q", "--json")
    assert r.exit_code == 0, r.output
    assert cli("eval", workdir / "runs/t").exit_code == 0
    from nntrain.tools.inference import load_run

    loaded = load_run(workdir / "runs/t", "best")
    x = torch.randn(5, 3)
    with torch.no_grad():
        z = torch.stack([m(x) for m in loaded.model.members])
        got = loaded.model(x)
    if loss == "bce":
        assert torch.allclose(torch.sigmoid(got), torch.sigmoid(z).mean(0), atol=1e-6)
    elif loss == "cross_entropy":
        assert torch.allclose(torch.softmax(got, 1), torch.softmax(z, 2).mean(0), atol=1e-6)
    else:
        assert torch.allclose(got, z.mean(0), atol=1e-6)


def test_an_ensemble_with_a_softmax_output_is_refused_naming_the_key(small, cli):
    r = cli("fit", small, "model.ensemble=3", "model.output_activation=softmax", "loss=nll")
    assert r.exit_code == 2 and "model.ensemble" in r.output


@pytest.mark.filterwarnings("ignore:Seems like")
@pytest.mark.parametrize("extra", [[], ["model.batch_norm=true", "model.dropout=0.2"]])
def test_an_interrupted_ensemble_resumes_bit_identically(small, workdir, monkeypatch, extra):
    from nntrain.engine.loop import train
    from nntrain.engine.state import resume, start

    over = ["model.ensemble=3", "optimizer.name=adam", *extra]
    fit(load_config(small, over, name="ref"), log=QUIET)
    calls = {"n": 0}
    with catching_signals(), monkeypatch.context() as m:
        run = start(load_config(small, over, name="mid"))
        import nntrain.engine.stacked_optim as so

        original = so.Each.hyper

        def counting(self):
            calls["n"] += 1
            if calls["n"] == 14 + 5:
                signal.raise_signal(signal.SIGINT)
            return original(self)

        m.setattr(so.Each, "hyper", counting)  # the stacked update asks for its settings once a step
        with pytest.raises(Interrupted):
            train(run, QUIET)
    ckpt = load_checkpoint(workdir / "runs/mid/last.pt")
    assert (ckpt["epoch"], ckpt["step"]) == (1, 5)
    with catching_signals():
        train(resume(workdir / "runs/mid"), QUIET)
    for which in ("best.pt", "last.pt"):
        a, b = load_checkpoint(workdir / f"runs/ref/{which}"), load_checkpoint(workdir / f"runs/mid/{which}")
        assert a["epoch"] == b["epoch"] and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_resuming_finished_members_together_trains_no_more_and_one_folder_twice_is_refused(small, workdir, cli):
    fit_many(cfgs_for(small, [["seed=0"], ["seed=1"]], ["f0", "f1"]), log=QUIET)
    r = cli("fit", "--resume", workdir / "runs/f0", "--resume", workdir / "runs/f1")
    assert r.exit_code == 0, r.output
    assert [len(metrics_rows(workdir / f"runs/f{i}")) for i in (0, 1)] == [4, 4]
    assert load_checkpoint(workdir / "runs/f0/last.pt")["epoch"] == 4
    fewer = cli("fit", "--resume", workdir / "runs/f0", "--resume", workdir / "runs/f1", "train.epochs=3")
    assert fewer.exit_code == 2 and "runs/f0 has already trained 4 epochs" in fewer.stderr
    assert "epochs: 4" in (workdir / "runs/f0/config.yaml").read_text()
    twice = cli("fit", "--resume", workdir / "runs/f0", "--resume", workdir / "runs/f0")
    assert twice.exit_code == 2 and "each run folder once" in twice.output


def test_resuming_several_runs_with_json_prints_one_object_naming_each_run(small, workdir, cli):
    import json

    assert cli("fit", small, "--seeds", "0,1").exit_code == 0
    runs = [str(workdir / "runs" / f"t-seed{s}") for s in (0, 1)]
    r = cli("fit", "--resume", runs[0], "--resume", runs[1], "train.epochs=5", "--json")
    assert r.exit_code == 0, r.output
    printed = json.loads(r.stdout)
    assert [run["run_dir"] for run in printed["runs"]] == runs
    assert all(run["best_epoch"] >= 1 and "test" in run for run in printed["runs"])


@pytest.mark.slow
def test_seeds_killed_with_sigkill_resume_together_to_the_uninterrupted_weights(workdir, table_csv, cli):
    """The members save on one clock, each keeping its previous last.pt: a kill -9 between two members' saves
    leaves them one save apart, and those ahead resume from their previous, so the group goes on together and
    ends with the weights of a run never stopped (issue 26, fault 6)."""
    import random
    import subprocess
    import time

    from .conftest import NNTRAIN

    cfg = write_config(workdir / "k.yaml", table_csv(n=600), train={"epochs": 60, "checkpoint_every": 0.02})
    seeds = ["--seeds", "0,1,2"]
    ref = cli("fit", cfg, *seeds, "--name", "ref", "--quiet")
    assert ref.exit_code == 0, ref.stderr
    rng = random.Random(0)
    for trial in range(3):
        name = f"cut{trial}"
        proc = subprocess.Popen([*NNTRAIN, "fit", str(cfg), *seeds, "--name", name, "--quiet"])
        first = workdir / "runs" / f"{name}-seed0" / "metrics.csv"
        while proc.poll() is None and (not first.is_file() or len(first.read_text().splitlines()) < 5):
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        folders = [workdir / "runs" / f"{name}-seed{s}" for s in range(3)]
        resume = [a for d in folders for a in ("--resume", str(d))]
        r = cli("fit", *resume, "--quiet")
        assert r.exit_code == 0, r.stderr
        for s, d in enumerate(folders):
            a, b = load_checkpoint(d / "last.pt"), load_checkpoint(workdir / "runs" / f"ref-seed{s}" / "last.pt")
            assert a["epoch"] == b["epoch"] == 60
            assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), (trial, s)
    assert sys.executable


def test_a_member_resumed_from_last_prev_that_trains_alone_keeps_last_prevs_weights(workdir, table_csv, cli):
    """A stacked member resumed a save behind (last.prev.pt) and then rebuilt for the lone engine restores the
    checkpoint it resumed from, not the newer last.pt."""
    import torch

    from nntrain.engine.state import rebuild_alone, resume

    path = write_config(workdir / "c.yaml", table_csv(), train={"epochs": 3, "checkpoint_every": 0.0})
    assert cli("fit", path, "--seeds", "0,1", "--quiet").exit_code == 0
    member = workdir / "runs" / "t-seed0"
    assert (member / "last.prev.pt").is_file()
    run = resume(member, stacked=True, checkpoint="last.prev")
    try:
        alone = rebuild_alone(run)
        prev = torch.load(member / "last.prev.pt", weights_only=True)["model"]
        now = alone.parts.model.state_dict()
        assert alone.epoch == torch.load(member / "last.prev.pt", weights_only=True)["epoch"]
        assert all(torch.equal(now[k].cpu(), prev[k]) for k in prev)
    finally:
        if run.lock is not None:
            run.lock.release()
