"""Nothing lost, no one let in: kills, signals, failed saves, resume, divergence, concurrent runs.

The kill and signal trials run nntrain in a real subprocess and send it real signals; what they compare
is what a user would: the final weights, the optimizer state and metrics.csv against an uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from nntrain.config.loading import load_config
from nntrain.engine.loop import fit, train
from nntrain.engine.state import resume, start
from nntrain.engine.stopping import Interrupted, catching_signals
from nntrain.errors import UserError
from nntrain.runs.checkpoints import load_checkpoint
from nntrain.runs.files import atomic_save

from .conftest import NNTRAIN, make_table, write_config

QUIET = lambda m: None  # noqa: E731
STEPS = 68  # 1,500 rows: test 300, val 120, train 1,080; batch 16 -> 68 steps an epoch


def config_for(workdir: Path, **sections) -> Path:
    data = workdir / "data.csv"
    if not data.exists():
        make_table(n=1500, seed=1).to_csv(data, index=False)
    base = {
        "model": {"hidden": [32, 16], "dropout": 0.2},
        "train": {"epochs": 12, "batch_size": 16},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "scheduler": {"name": "step", "step_size": 3, "gamma": 0.5},
    }
    for k, v in sections.items():
        base[k] = {**base[k], **v} if k in ("model", "train") else v
    return write_config(workdir / "c.yaml", data, **base)


def metrics_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def assert_same_run(a: Path, b: Path) -> None:
    for name in ("last.pt", "best.pt"):
        x, y = load_checkpoint(a / name), load_checkpoint(b / name)
        assert x["epoch"] == y["epoch"]
        assert all(torch.equal(x["model"][k], y["model"][k]) for k in x["model"]), name
        sx, sy = x["optimizer"]["state"], y["optimizer"]["state"]
        assert sx.keys() == sy.keys()
        for i in sx:
            assert all(torch.equal(torch.as_tensor(sx[i][k]), torch.as_tensor(sy[i][k])) for k in sx[i]), name
    assert metrics_rows(a) == metrics_rows(b)


@pytest.fixture
def reference(workdir):
    """The uninterrupted run every trial is compared with."""
    cfg = load_config(config_for(workdir), ["name=ref"])
    fit(cfg, log=QUIET)
    return workdir / "runs" / "ref"


def launch(workdir: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*NNTRAIN, "fit", str(workdir / "c.yaml"), f"name={name}"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end
        time.sleep(0.005)


def training_seconds(reference: Path) -> float:
    with open(reference / "metrics.csv") as f:
        return sum(float(r["seconds"]) for r in csv.DictReader(f))


@pytest.fixture
def long_reference(workdir):
    """An uninterrupted run long enough (60 epochs, about a second) for signals to land inside it."""
    cfg = load_config(config_for(workdir, train={"epochs": 60}), ["name=ref"])
    fit(cfg, log=QUIET)
    return workdir / "runs" / "ref"


def epochs_done(run_dir: Path) -> int:
    return len(metrics_rows(run_dir)) if (run_dir / "metrics.csv").exists() else 0


def random_moment(rng: random.Random, run_dir: Path, proc: subprocess.Popen, reference: Path) -> None:
    """Wait until a random epoch of the 60 (0: before the first has ended), then a random part of an epoch more:
    a moment drawn from the subprocess's own progress, so a slow or busy machine does not push every kill past
    the end (a delay drawn from the reference run's time did: 3 of 10 kills landed mid-run under load)."""
    target, epoch = rng.randrange(0, 60), training_seconds(reference) / 60
    while epochs_done(run_dir) < target and proc.poll() is None:
        time.sleep(0.002)
    time.sleep(rng.uniform(0, epoch))


@pytest.mark.slow
def test_kill_9_at_a_random_moment_then_resume_equals_uninterrupted(workdir, long_reference, cli):
    rng = random.Random(0)
    equal = cut = 0
    for trial in range(6):
        name = f"kill{trial}"
        proc = launch(workdir, name)
        wait_for(workdir / "runs" / name / "last.pt", proc)
        random_moment(rng, workdir / "runs" / name, proc, long_reference)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        cut += epochs_done(workdir / "runs" / name) < 60
        r = cli("fit", "--resume", workdir / "runs" / name)
        assert r.exit_code == 0, r.stderr
        assert not [p for p in (workdir / "runs" / name).iterdir() if ".tmp" in p.name]
        assert_same_run(long_reference, workdir / "runs" / name)
        equal += 1
    print(f"kill -9 then resume: {equal}/6 equal to the uninterrupted run ({cut} killed before the last epoch)")
    assert equal == 6 and cut >= 3  # at least half the kills must land mid-run for the trial to mean much


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_last_and_resume_equals_uninterrupted(workdir, long_reference, cli, sig, code):
    rng = random.Random(int(sig))
    trials = 6 if sig == signal.SIGINT else 3
    interrupted = 0
    for trial in range(trials):
        name = f"sig{int(sig)}-{trial}"
        proc = launch(workdir, name)
        wait_for(workdir / "runs" / name / "last.pt", proc)
        random_moment(rng, workdir / "runs" / name, proc, long_reference)
        sent = time.monotonic()
        proc.send_signal(sig)
        if trial % 3 == 1:
            proc.send_signal(sig)  # a second Ctrl-C, likely during the save
        out, err = proc.communicate(timeout=30)
        assert time.monotonic() - sent < 5
        if proc.returncode == 0:
            continue  # the run had finished its last step; nothing to resume
        assert proc.returncode == code, err
        assert "Resume with: nntrain fit --resume" in err and "Traceback" not in err
        interrupted += 1
        load_checkpoint(workdir / "runs" / name / "last.pt")
        r = cli("fit", "--resume", workdir / "runs" / name)
        assert r.exit_code == 0, r.stderr
        assert_same_run(long_reference, workdir / "runs" / name)
    print(f"{signal.Signals(sig).name}: {interrupted}/{trials} stopped mid-run, every resume equal")
    assert interrupted >= trials * 0.6


@pytest.mark.filterwarnings("ignore:Seems like")  # the test wraps optimizer.step to send the signal
@pytest.mark.parametrize("engine", ["fused", "autograd"])
def test_interrupt_mid_epoch_in_process_resumes_exactly(workdir, monkeypatch, engine):
    """A real SIGINT to this process during step 7 of epoch 5, on either training path."""

    cfg_path = config_for(workdir, train={"engine": engine})
    fit(load_config(cfg_path, ["name=ref"]), log=QUIET)
    calls = {"n": 0}

    def counting(original):
        def step(*a, **k):
            calls["n"] += 1
            if calls["n"] == 4 * STEPS + 7:
                signal.raise_signal(signal.SIGINT)  # arrives during step 7; the loop stops before step 8
            return original(*a, **k)

        return step

    with catching_signals(), monkeypatch.context() as m:
        run = start(load_config(cfg_path, ["name=mid"]))
        assert -(-len(run.data.train) // run.batch_size) == STEPS
        # the LR scheduler has wrapped step on the instance: wrap that
        m.setattr(run.parts.optimizer, "step", counting(run.parts.optimizer.step))
        with pytest.raises(Interrupted) as info:
            train(run, QUIET)
    assert info.value.exit_code == 130
    ckpt = load_checkpoint(workdir / "runs/mid/last.pt")
    assert (ckpt["epoch"], ckpt["step"]) == (4, 7)
    train(resume(workdir / "runs/mid"), QUIET)
    assert_same_run(workdir / "runs/ref", workdir / "runs/mid")


def test_interrupt_just_after_the_epochs_permutation_resumes_exactly(workdir, reference, monkeypatch):
    """The signal lands between drawing epoch 5's permutation and its first step: the draw must be undone."""
    real, calls = torch.randperm, {"n": 0}

    def randperm(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            signal.raise_signal(signal.SIGINT)
        return real(*a, **k)

    with catching_signals():
        run = start(load_config(config_for(workdir), ["name=edge"]))
        monkeypatch.setattr(torch, "randperm", randperm)
        with pytest.raises(Interrupted):
            train(run, QUIET)
    monkeypatch.setattr(torch, "randperm", real)
    assert (
        load_checkpoint(workdir / "runs/edge/last.pt")["epoch"],
        load_checkpoint(workdir / "runs/edge/last.pt")["step"],
    ) == (4, 0)
    train(resume(workdir / "runs/edge"), QUIET)
    assert_same_run(reference, workdir / "runs/edge")


def test_save_failing_half_way_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"format": 1, "w": torch.ones(3)}, path)
    before = path.read_bytes()

    def half_then_fail(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(UserError, match="No space left on device; the earlier checkpoints .* are intact"):
        atomic_save({"format": 1, "w": torch.zeros(3)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


OPTS = {"sgd": {"lr": 0.05, "momentum": 0.9}, "adagrad": {"lr": 0.05}, "rmsprop": {"lr": 0.005}, "adam": {"lr": 0.005}}
SCHEDS = {
    "step": {"step_size": 2, "gamma": 0.5},
    "multistep": {"milestones": [2, 5], "gamma": 0.3},
    "exponential": {"gamma": 0.7},
    "plateau": {"patience": 0, "factor": 0.5, "threshold": 10, "threshold_mode": "abs"},
    "anneal": {"patience": 1, "min_delta": 10, "min_epochs": 4},  # the anneal starts after epoch 2: cut inside it
    # from epoch 1's weights, after epoch 4: the resumed run reads them from best.pt
    "from_best": {"name": "anneal", "patience": 3, "min_delta": 10, "min_epochs": 2, "from_best": True},
    "onecycle": {"cycle_momentum": False},  # stepped every step; adagrad has no momentum to cycle
    "warmup": {"name": "step", "step_size": 2, "gamma": 0.5, "warmup_epochs": 2},
}


@pytest.mark.parametrize("sched", list(SCHEDS))
@pytest.mark.parametrize("opt", list(OPTS))
def test_resume_matrix_learning_rate_of_every_later_epoch(workdir, opt, sched):
    """Stopped by a real SIGINT at the end of epoch 3 of 7, then resumed: lr and weights as uninterrupted."""
    cfg_path = config_for(
        workdir,
        optimizer={"name": opt, **OPTS[opt]},
        scheduler={"name": sched, **SCHEDS[sched]},  # "warmup" names its schedule itself
        train={"epochs": 7, "batch_size": 64},
    )
    fit(load_config(cfg_path, ["name=full"]), log=QUIET)

    def stop_after_epoch_3(msg: str) -> None:
        if msg.startswith("epoch   3/"):
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted):
        fit(load_config(cfg_path, ["name=cut"]), log=stop_after_epoch_3)
    assert load_checkpoint(workdir / "runs/cut/last.pt")["epoch"] == 3
    train(resume(workdir / "runs/cut"), QUIET)
    lrs = [[r["lr"] for r in metrics_rows(workdir / "runs" / n)] for n in ("full", "cut")]
    assert lrs[0] == lrs[1] and len(set(lrs[0])) > 1
    assert_same_run(workdir / "runs/full", workdir / "runs/cut")


def test_resume_can_extend_epochs_and_refuses_architecture_changes(workdir, cli):
    cfg_path = config_for(workdir, train={"epochs": 3})
    assert cli("fit", cfg_path).exit_code == 0
    written = (workdir / "runs/t/config.yaml").read_text()
    r = cli("fit", "--resume", "runs/t")  # nothing to train: the folder stays as it was
    assert r.exit_code == 0 and "nothing to train" in r.stdout + r.stderr
    assert (workdir / "runs/t/config.yaml").read_text() == written
    r = cli("fit", "--resume", "runs/t", "train.epochs=5", "--json")
    assert r.exit_code == 0, r.stderr
    assert [row["epoch"] for row in metrics_rows(workdir / "runs/t")] == ["1", "2", "3", "4", "5"]
    r = cli("fit", "--resume", "runs/t", "model.hidden=[8]", "optimizer.name=adam", "train.epochs=6")
    assert r.exit_code == 2
    assert "model.hidden: [32, 16] -> [8]" in r.stderr and "optimizer.name: 'sgd' -> 'adam'" in r.stderr
    r = cli("fit", cfg_path, "--resume", "runs/t")
    assert r.exit_code == 2 and "not both" in r.stderr


def test_a_run_killed_while_lengthened_before_its_first_save_goes_on_to_its_new_epochs(workdir, cli):
    """fit --resume RUN train.epochs=N rewrites config.yaml before it trains; a kill -9 before its first save left
    last.pt saying the run had ended: a plain resume said 'nothing to train' while config.yaml asked N."""
    cfg_path = config_for(workdir, train={"epochs": 2, "batch_size": 1})  # 1,080 steps: about a second an epoch
    assert cli("fit", cfg_path).exit_code == 0
    run = workdir / "runs/t"
    proc = subprocess.Popen([*NNTRAIN, "fit", "--resume", "runs/t", "train.epochs=4"], cwd=workdir)
    end = time.monotonic() + 60
    while "epochs: 4" not in (run / "config.yaml").read_text() and time.monotonic() < end and proc.poll() is None:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert load_checkpoint(run / "last.pt")["epoch"] == 2  # killed before its first save
    r = cli("fit", "--resume", "runs/t")
    assert r.exit_code == 0, r.stderr
    assert "config.yaml asks train.epochs=4" in r.stdout + r.stderr
    assert [row["epoch"] for row in metrics_rows(run)] == ["1", "2", "3", "4"]
    assert json.loads((run / "summary.json").read_text())["epochs_run"] == 4


def cut_after_epoch(cfg_path: Path, epoch: int) -> None:
    """The run `cut` of the config, stopped by a real SIGINT once its epoch `epoch` has ended."""

    def stop(msg: str) -> None:
        if msg.startswith(f"epoch {epoch:>3}/"):
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted), catching_signals():
        fit(load_config(cfg_path, ["name=cut"]), log=stop)


def test_resume_refuses_fewer_epochs_than_the_run_has_trained(workdir, cli):
    """fit --resume RUN train.epochs=N below the epochs the run trained: an interrupted run was marked completed
    at once, its config.yaml saying N epochs of a model that trained more (a finished one said 'nothing to
    train'). Refused, naming what it trained and what to do; nothing written."""
    cfg_path = config_for(workdir, train={"epochs": 6, "threads": 1, "plots": False})
    cut_after_epoch(cfg_path, 3)
    assert cli("fit", cfg_path, "name=full", "train.epochs=3", "--quiet").exit_code == 0
    for name, trained in (("cut", 3), ("full", 3)):
        root = workdir / "runs" / name
        files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
        r = cli("fit", "--resume", f"runs/{name}", "train.epochs=2")
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert f"train.epochs=2: the run runs/{name} has already trained {trained} epochs" in r.stderr, r.stderr
        assert "train.epochs above 3 to train on" in r.stderr
        assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == files  # nothing written
    assert cli("fit", "--resume", "runs/cut", "train.epochs=4", "--quiet").exit_code == 0
    assert len(metrics_rows(workdir / "runs/cut")) == 4


def test_eval_and_predict_of_a_run_that_has_not_finished_warn_which_weights_they_use(workdir, cli):
    """eval and predict of an interrupted run (or one killed, or still training: no summary.json) used its best
    epoch so far without a word. A warning names the run, why, the epoch of the weights and the resume."""
    cfg_path = config_for(workdir, train={"epochs": 5, "threads": 1, "plots": False})
    cut_after_epoch(cfg_path, 2)
    make_table(n=5, seed=2).drop(columns="y").to_csv(workdir / "rows.csv", index=False)
    (workdir / "parts").mkdir()
    for i in (0, 1):  # predicted a file (a chunk) at a time: the warning is said once, not once a chunk
        make_table(n=5, seed=i).drop(columns="y").to_parquet(workdir / "parts" / f"{i}.parquet")
    assert cli("predict", "runs/cut", "parts").stderr.count("the run has not finished") == 1
    epoch = load_checkpoint(workdir / "runs/cut/best.pt")["epoch"]
    for why in ("interrupted", "no summary.json: still training, or killed"):
        for command in (["eval", "runs/cut"], ["predict", "runs/cut", "rows.csv"]):
            r = cli(*command)
            assert r.exit_code == 0, r.output
            assert (
                f"warning: runs/cut: the run has not finished ({why}); its weights are those it saved at epoch {epoch}"
                in r.stderr
            ), r.stderr
            assert "not a finished run's; resume it to finish it" in r.stderr
        (workdir / "runs/cut/summary.json").unlink(missing_ok=True)
    assert cli("fit", "--resume", "runs/cut", "--quiet").exit_code == 0
    assert "warning" not in cli("eval", "runs/cut").stderr


def test_resume_drops_metric_rows_past_the_checkpoint(workdir):
    cfg_path = config_for(workdir, train={"epochs": 4})
    fit(load_config(cfg_path), log=QUIET)
    run_dir = workdir / "runs/t"
    ckpt = load_checkpoint(run_dir / "last.pt")
    ckpt["epoch"] = 2  # as if killed after epoch 3's metrics row but before its last.pt
    ckpt_path = run_dir / "last.pt"
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    (run_dir / "metrics.csv").write_text("\n".join(lines[:4]) + "\n")  # header + epochs 1-3
    run = resume(run_dir)
    assert run.epoch == 4  # the checkpoint says 4; no rows dropped
    atomic_save({**ckpt, "epoch": 2}, ckpt_path)
    resume(run_dir)
    assert [r["epoch"] for r in metrics_rows(run_dir)] == ["1", "2"]


@pytest.mark.parametrize("trial", range(5))
def test_nan_at_a_random_step_exits_3_and_keeps_best(workdir, cli, monkeypatch, trial):
    """Even trials poison the fused step's loss, odd ones the autograd criterion's."""
    import nntrain.engine.fused as F
    import nntrain.engine.parts as S

    bad_step = random.Random(trial).randrange(STEPS + 1, 12 * STEPS)  # after the first epoch, before the end
    count = {"n": 0}

    def poison(value):
        count["n"] += 1
        return value * float("nan") if count["n"] >= bad_step else value

    engine = "fused" if trial % 2 == 0 else "autograd"
    if engine == "fused":
        real_step = F.FusedStep.loss_and_grads
        monkeypatch.setattr(F.FusedStep, "loss_and_grads", lambda self, x, y: poison(real_step(self, x, y)))
    else:
        real = S.make_criterion

        def poisoned(cfg, task, weighted=False):
            crit = real(cfg, task, weighted)
            return lambda out, y, w=None: poison(crit(out, y, w)) if out.requires_grad else crit(out, y, w)

        monkeypatch.setattr(S, "make_criterion", poisoned)
    r = cli("fit", config_for(workdir), f"train.engine={engine}")
    assert r.exit_code == 3, (r.stdout, r.stderr)
    epoch, step = (bad_step - 1) // STEPS + 1, (bad_step - 1) % STEPS + 1
    assert f"Error: training diverged at epoch {epoch}, step {step}: the training loss became non-finite" in r.stderr
    assert (
        "lower optimizer.lr (now 0.05), train.grad_clip: 1.0 in a new run" in r.stderr and "Traceback" not in r.stderr
    )
    best, last = load_checkpoint(workdir / "runs/t/best.pt"), load_checkpoint(workdir / "runs/t/last.pt")
    assert best["epoch"] < epoch and last["epoch"] <= epoch - 1  # last.pt is written every checkpoint_every seconds
    assert all(torch.isfinite(v).all() for ck in (best, last) for v in ck["model"].values())


def test_same_config_and_seed_twice_is_bit_identical(workdir):
    cfg_path = config_for(workdir, train={"epochs": 3})
    for name in ("a", "b"):
        fit(load_config(cfg_path, [f"name={name}"]), log=QUIET)
    assert_same_run(workdir / "runs/a", workdir / "runs/b")
    ckpt = load_checkpoint(workdir / "runs/a/best.pt")
    assert {"torch", "numpy", "pandas", "scikit-learn", "python"} <= set(ckpt["versions"])
    assert len(ckpt["prep"]["sha256"]) == 64 and (workdir / "runs/a/split.json").is_file()


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_code_running_pickle_is_refused_by_eval_predict_and_resume(workdir, cli):
    assert cli("fit", config_for(workdir, train={"epochs": 1})).exit_code == 0
    for name in ("best.pt", "last.pt"):
        torch.save({"format": 1, "model": Payload()}, workdir / "runs/t" / name)
    (workdir / "in.csv").write_text("a,b,c\n1,2,3\n")
    for args in (("eval", "runs/t"), ("predict", "runs/t", "in.csv"), ("fit", "--resume", "runs/t")):
        r = cli(*args)
        assert r.exit_code == 2 and "refused to load" in r.stderr, args
    assert not (workdir / "PWNED").exists()


@pytest.mark.slow
def test_four_concurrent_fits_with_one_name_get_four_folders(workdir):
    config_for(workdir, train={"epochs": 2})
    procs = [
        subprocess.Popen(
            [*NNTRAIN, "fit", "c.yaml", f"seed={i}", "--json"],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    import json

    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    folders = sorted(r["run_dir"] for r in results)
    assert folders == ["runs/t", "runs/t-2", "runs/t-3", "runs/t-4"]
    import yaml

    for folder in folders:
        seed = yaml.safe_load((workdir / folder / "config.yaml").read_text())["seed"]
        assert load_checkpoint(workdir / folder / "best.pt")["config"]["seed"] == seed
    assert sorted(load_checkpoint(workdir / f / "last.pt")["config"]["seed"] for f in folders) == [0, 1, 2, 3]


def _mount_tmpfs(path: Path, size: str, ro: bool = False) -> bool:
    path.mkdir()
    opts = f"size={size}" + (",ro" if ro else "")
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True).returncode == 0


def test_disk_full_exits_2_with_earlier_checkpoints_intact(workdir, cli):
    mnt = workdir / "small"
    if not _mount_tmpfs(mnt, "160k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        # 20 -> 256 -> 4: about 24 KB a checkpoint; Adam's state triples it after the first step
        cfg_path = config_for(
            workdir,
            model={"hidden": [256]},
            optimizer={"name": "adam", "lr": 0.001},
            train={"epochs": 50},
            runs_dir=str(mnt),
        )
        r = cli("fit", cfg_path)
        assert r.exit_code == 2, r.stdout
        # torch.save reports a full disk as an OSError or, mid-write, as its own RuntimeError: both say so
        assert "No space left on device" in r.stderr and "; the earlier checkpoints in" in r.stderr
        assert "Traceback" not in r.stderr
        run_dir = mnt / "t"
        assert not [p for p in run_dir.iterdir() if ".tmp" in p.name]
        load_checkpoint(run_dir / "last.pt")
    finally:
        subprocess.run(["umount", str(mnt)])


def test_runs_dir_not_writable_is_reported_before_training(workdir, cli):
    mnt = workdir / "ro"
    if _mount_tmpfs(mnt, "1m", ro=True):
        try:
            r = cli("fit", config_for(workdir), f"runs_dir={mnt}/runs")
            assert r.exit_code == 2 and "Read-only file system" in r.stderr
        finally:
            subprocess.run(["umount", str(mnt)])
    (workdir / "afile").write_text("")
    r = cli("fit", config_for(workdir), "runs_dir=afile/runs")
    assert r.exit_code == 2 and "runs_dir=afile/runs: cannot create it" in r.stderr


def test_resume_mid_epoch_refuses_another_batch_size(workdir, cli):
    calls = {"n": 0}

    def log(msg):  # a real SIGINT during step 5 of epoch 2
        if msg.startswith("epoch   1/"):
            original = run.parts.optimizer.step

            def step(*a, **k):
                calls["n"] += 1
                if calls["n"] == 5:
                    signal.raise_signal(signal.SIGINT)
                return original(*a, **k)

            run.parts.optimizer.step = step

    with catching_signals(), pytest.raises(Interrupted):
        run = start(load_config(config_for(workdir), ["name=bs"]))
        train(run, log)
    assert load_checkpoint(workdir / "runs/bs/last.pt")["step"] == 5
    r = cli("fit", "--resume", "runs/bs", "train.batch_size=8")
    assert r.exit_code == 2 and "resume without changing it" in r.stderr
    assert cli("fit", "--resume", "runs/bs").exit_code == 0


def test_a_onecycle_run_resumed_at_an_epoch_boundary_refuses_another_batch_size(workdir, cli):
    cfg = config_for(workdir, scheduler={"name": "onecycle"}, train={"epochs": 4, "patience": 1, "min_delta": 1e9})
    assert cli("fit", cfg, "--name", "oc").exit_code == 0  # early-stopped after epoch 2, at a boundary
    before = (workdir / "runs/oc/last.pt").read_bytes()
    r = cli("fit", "--resume", "runs/oc", "train.patience=null", "train.batch_size=8")
    assert r.exit_code == 2 and "train.batch_size=8" in r.stderr and "scheduler.total_steps" in r.stderr
    assert "Traceback" not in r.output and (workdir / "runs/oc/last.pt").read_bytes() == before
    assert cli("fit", "--resume", "runs/oc", "train.patience=null").exit_code == 0


@pytest.mark.parametrize("warmup", [0, 2])
def test_a_finished_cosine_run_extended_follows_the_cosine_of_the_longer_run(workdir, cli, warmup):
    """The rate never climbs back up the old curve: from epoch 7 it is a 12-epoch run's, falling to the end;
    scheduler.T_max may be given on resume (not below the epochs the cosine has run)."""
    import math

    sched = {"name": "cosine", **({"warmup_epochs": warmup} if warmup else {})}
    cfg = config_for(workdir, scheduler=sched, optimizer={"name": "adam", "lr": 0.01}, train={"epochs": 6})
    assert cli("fit", cfg, "--name", "cos").exit_code == 0
    r = cli("fit", "--resume", "runs/cos", "train.epochs=12")
    assert r.exit_code == 0 and f"scheduler.T_max: {6 - warmup} -> {12 - warmup}" in r.output
    lrs = [float(row["lr"]) for row in metrics_rows(workdir / "runs/cos")]
    t_max = 12 - warmup
    expected = [0.01 * (1 + math.cos(math.pi * (e - warmup) / t_max)) / 2 for e in range(6, 12)]
    assert lrs[6:] == pytest.approx(expected, rel=1e-5)
    assert all(a > b for a, b in zip(lrs[6:], lrs[7:]))  # falling to the end, never climbing
    assert cli("fit", "--resume", "runs/cos", "train.epochs=18", f"scheduler.T_max={18 - warmup}").exit_code == 0
    lrs = [float(row["lr"]) for row in metrics_rows(workdir / "runs/cos")]
    assert len(lrs) == 18 and all(a > b for a, b in zip(lrs[12:], lrs[13:]))
    r = cli("fit", "--resume", "runs/cos", "train.epochs=20", "scheduler.T_max=5")
    assert r.exit_code == 2 and "scheduler.T_max=5" in r.stderr


def test_fused_sgd_with_a_scheduler_raises_no_scheduler_warning(workdir):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(load_config(config_for(workdir, train={"epochs": 3})), log=QUIET)
    assert not [w for w in caught if "lr_scheduler" in str(w.message)]


def test_summary_says_how_each_run_ended_and_the_listing_shows_it(workdir):
    """summary.json's status, written by every run that ends, and read by `nntrain runs` (no message parsed)."""
    from nntrain.engine.loop_state import Halt
    from nntrain.engine.stopping import Diverged
    from nntrain.runs.listing import list_runs

    cfg = config_for(workdir, train={"epochs": 4})
    fit(load_config(cfg, ["name=done"]), log=QUIET)
    fit(load_config(cfg, ["name=early", "train.patience=1", "train.min_delta=1000"]), log=QUIET)
    with pytest.raises(Diverged):
        fit(load_config(cfg, ["name=nan", "optimizer.lr=1e30"]), log=QUIET)

    def stop_after_epoch_2(msg: str) -> None:
        if msg.startswith("epoch   2/"):
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted):
        fit(load_config(cfg, ["name=cut"]), log=stop_after_epoch_2)
    asked = []

    def hook(epoch: int, row: dict) -> Halt | None:
        asked.append((epoch, row["epoch"]))
        return Halt("pruned", "pruned by a test at epoch 2") if epoch == 2 else None

    with catching_signals():
        train(start(load_config(cfg, ["name=hook"])), QUIET, should_stop=hook)
    assert asked == [(1, 1), (2, 2)]

    def summary(name: str) -> dict:
        return json.loads((workdir / "runs" / name / "summary.json").read_text())

    ended = {n: (summary(n)["status"], summary(n)["epochs_run"]) for n in ("done", "early", "nan", "cut", "hook")}
    assert ended == {
        "done": ("completed", 4),
        "early": ("early_stop", 2),
        "nan": ("diverged", 0),
        "cut": ("interrupted", 2),
        "hook": ("pruned", 2),
    }
    assert summary("hook")["stopped"] == "pruned by a test at epoch 2" and "test" in summary("hook")
    assert "test" not in summary("cut") and summary("cut")["stopped"].startswith("SIGINT at epoch 3")
    shown = {r["name"]: r["status"] for r in list_runs(workdir / "runs")}
    assert shown == {"done": "done", "early": "early stop", "nan": "diverged", "cut": "interrupted", "hook": "pruned"}
    train(resume(workdir / "runs" / "cut"), QUIET)  # the resumed run's summary replaces the interrupted one's
    assert (summary("cut")["status"], summary("cut")["epochs_run"]) == ("completed", 4)


def test_resuming_a_run_with_nothing_left_to_train_leaves_its_summary_byte_identical(workdir, cli):
    """An early-stopped run (and finished seed members resumed together): the resume says so and keeps how and
    why the run ended."""
    cfg = config_for(workdir, train={"epochs": 6, "patience": 1, "min_delta": 1000})
    assert cli("fit", cfg, "--name", "es").exit_code == 0
    assert cli("fit", cfg, "--seeds", "0,1", "--name", "m").exit_code == 0
    folders = [workdir / "runs" / n for n in ("es", "m-seed0", "m-seed1")]
    before = [(f / "summary.json").read_bytes() for f in folders]
    assert json.loads(before[0])["status"] == "early_stop"
    r = cli("fit", "--resume", folders[0])
    assert r.exit_code == 0, r.output
    assert "ended at epoch 2 (early_stop: early stop:" in r.output and "nothing to train" in r.output
    r = cli("fit", "--resume", folders[1], "--resume", folders[2])
    assert r.exit_code == 0, r.output
    assert r.output.count("nothing to train") == 2
    assert [(f / "summary.json").read_bytes() for f in folders] == before


def test_a_run_folder_written_by_nntrain_at_509edb1_still_loads(workdir, cli, repo):
    """tests/data/legacy_509edb1 was written by 509edb1, whose model was an nn.Sequential of fc1, bn1, act1, ...
    (batch norm, PReLU, dropout, log_softmax and nll): eval, predict and params give what they gave then."""
    import io
    import shutil

    import numpy as np
    import pandas as pd

    run = workdir / "old"
    shutil.copytree(repo / "tests" / "data" / "legacy_509edb1", run)
    data = repo / "data" / "seed_toy.csv"
    r = cli("predict", run, data)
    assert r.exit_code == 0, r.stderr
    got, want = pd.read_csv(io.StringIO(r.stdout)), pd.read_csv(run / "pred.csv")
    assert list(got.columns) == list(want.columns) == ["prediction", "proba_0", "proba_1"]
    assert (got["prediction"] == want["prediction"]).all()
    assert np.allclose(got[["proba_0", "proba_1"]], want[["proba_0", "proba_1"]], rtol=0, atol=1e-6)
    r = cli("eval", run, "--data", data, "--json")
    report, then = json.loads(r.stdout), json.loads((run / "eval.json").read_text())
    # the metrics it had then, the same; balanced_accuracy came later
    assert {k: report["metrics"][k] for k in then["metrics"]} == pytest.approx(then["metrics"], abs=1e-6)
    assert {k: report["baseline"][k] for k in then["baseline"]} == then["baseline"]
    assert report["checkpoint_epoch"] == then["checkpoint_epoch"] == 6
    r = cli("params", run, "--json")
    assert json.loads(r.stdout) == json.loads((run / "params.json").read_text())


@pytest.mark.parametrize("size", ["4k", "12k", "24k", "40k", "60k", "80k", "120k"])
def test_a_disk_filling_at_any_point_gives_a_true_message_and_whole_files(workdir, size):
    """A real tmpfs of each size fills at another moment: config.yaml, split.json, last.pt, metrics.csv, best.pt,
    a plot. Each ends in exit 2 naming the file and the full disk (or 0 with a warning for a plot), no traceback,
    and leaves no run folder or a run folder whose every file is whole."""
    mnt = workdir / "small"
    if not _mount_tmpfs(mnt, size):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        data = workdir / "d.csv"
        make_table(n=1500, seed=1).to_csv(data, index=False)
        cfg = write_config(workdir / "c.yaml", data, runs_dir=str(mnt / "runs"), train={"epochs": 5, "batch_size": 16})
        r = subprocess.run([*NNTRAIN, "fit", str(cfg), "--quiet"], cwd=workdir, capture_output=True, text=True)
        assert "Traceback" not in r.stderr and r.returncode in (0, 2), r.stderr
        if r.returncode == 2:
            assert "No space left on device" in r.stderr and "cannot write" in r.stderr
        else:
            assert (mnt / "runs" / "t" / "summary.json").is_file()
            assert "warning: the plots were not written" in r.stdout or (mnt / "runs" / "t" / "curves.png").is_file()
        run_dir = mnt / "runs" / "t"
        if run_dir.exists():
            files = {p.name: p for p in run_dir.iterdir()}
            assert not [n for n in files if ".tmp" in n]
            assert yaml.safe_load(files["config.yaml"].read_text())["name"] == "t"
            load_checkpoint(files["last.pt"])
            if "metrics.csv" in files:
                assert files["metrics.csv"].read_text().startswith("epoch,train_loss")
            if "best.pt" in files:
                load_checkpoint(files["best.pt"])
    finally:
        subprocess.run(["umount", str(mnt)])


def test_a_run_moved_with_its_project_folder_evaluates_and_resumes_from_the_file_found_below_it(workdir, cli):
    """Checkpoints name the training file by absolute path: a project folder renamed (or copied to another machine)
    with its data and runs left eval and resume saying the file 'is not there any more'. The file at the same place
    below the moved folder, with the same sha256, is read; one that differs is not."""
    (workdir / "proj" / "data").mkdir(parents=True)
    make_table(n=200, seed=1).to_csv(workdir / "proj" / "data" / "t.csv", index=False)
    for name, bag in (("lone", 1), ("bag", 3)):
        cfg = write_config(
            workdir / "proj" / f"{name}.yaml",
            workdir / "proj" / "data" / "t.csv",
            name=name,
            data={"target": "y"},
            train={"bag": bag, "epochs": 2},
            runs_dir=str(workdir / "proj" / "runs"),
        )
        assert cli("fit", cfg, "--quiet").exit_code == 0

    def scores(root: str) -> list[dict]:
        said = [cli("eval", f"{root}/runs/{name}", "--json") for name in ("lone", "bag")]
        assert [r.exit_code for r in said] == [0, 0], said[0].stderr + said[1].stderr
        return [json.loads(r.stdout.strip().splitlines()[-1])["metrics"] for r in said]

    before = scores("proj")
    (workdir / "proj").rename(workdir / "moved")
    assert scores("moved") == before
    r = cli("fit", "--resume", "moved/runs/lone", "train.epochs=3", "--quiet")
    assert r.exit_code == 0, r.stderr
    assert [row["epoch"] for row in metrics_rows(workdir / "moved/runs/lone")] == ["1", "2", "3"]
    table = workdir / "moved" / "data" / "t.csv"
    table.write_text(table.read_text() + table.read_text().splitlines()[1] + "\n")  # a row more: not the same file
    r = cli("eval", "moved/runs/bag")
    assert r.exit_code == 2 and f"{workdir}/proj/data/t.csv: the file the run was trained on is not there" in r.stderr
