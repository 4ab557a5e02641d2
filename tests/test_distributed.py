"""Data-parallel training on the CPU with gloo and two processes: the same curve as one process with the same
global batch, identical weights on both ranks, one set of files, resume, and no hang when a rank dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import NNTRAIN, metrics_rows, write_config

pytestmark = pytest.mark.slow


def run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def curve(run_dir: Path) -> list[tuple[float, float]]:
    return [(float(r["train_loss"]), float(r["val_loss"])) for r in metrics_rows(run_dir)]


def assert_close(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> None:
    assert len(a) == len(b)
    for (ta, va), (tb, vb) in zip(a, b):
        assert ta == pytest.approx(tb, rel=1e-5) and va == pytest.approx(vb, rel=1e-5)


@pytest.mark.parametrize(
    "setting",
    [
        {"optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}, "train": {"l1": 1e-4}},  # the fused step
        {"optimizer": {"name": "adam", "lr": 0.01}, "train": {"engine": "autograd", "grad_clip": 1.0}},
    ],
)
def test_two_processes_match_one_with_the_same_global_batch(workdir, table_csv, setting):
    # 301 training rows at batch 20: the last batch has one row, so one rank gets an empty shard.
    cfg = write_config(
        workdir / "c.yaml",
        table_csv(n=502),
        model={"hidden": [16, 8]},
        optimizer=setting["optimizer"],
        train={"epochs": 4, "batch_size": 20, **setting["train"]},
    )
    one = run([*NNTRAIN, "fit", str(cfg), "--name", "one"], workdir)
    two = run([*NNTRAIN, "fit", str(cfg), "--name", "two", "--nproc", "2"], workdir)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert "data-parallel: 2 processes, weights identical on every rank" in two.stdout
    assert two.stdout.count("best epoch") == 1  # rank 0 speaks; the other rank is silent
    assert_close(curve(workdir / "runs" / "two"), curve(workdir / "runs" / "one"))
    assert sorted(p.name for p in (workdir / "runs").iterdir() if not p.name.startswith(".")) == [
        "one",
        "two",
    ]  # one folder per run
    files = sorted(p.name for p in (workdir / "runs" / "two").iterdir())
    assert files == sorted(p.name for p in (workdir / "runs" / "one").iterdir())  # one set of checkpoints


def test_torchrun_runs_nntrain_fit_and_resume_continues(workdir, table_csv):
    cfg = write_config(
        workdir / "c.yaml",
        table_csv(n=300),
        optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9},
        train={"epochs": 2, "batch_size": 32},
    )
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "nntrain"]
    first = run([*torchrun, "fit", str(cfg), "--name", "tr"], workdir)
    assert first.returncode == 0, first.stderr
    resumed = run([*NNTRAIN, "fit", "--resume", "runs/tr", "train.epochs=4", "--nproc", "2"], workdir)
    assert resumed.returncode == 0, resumed.stderr
    whole = run([*NNTRAIN, "fit", str(cfg), "train.epochs=4", "--name", "whole"], workdir)
    assert whole.returncode == 0, whole.stderr
    assert_close(curve(workdir / "runs" / "tr"), curve(workdir / "runs" / "whole"))


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(p.decode(errors="replace").split("=", 1) for p in pairs if b"=" in p)


def test_killing_one_rank_ends_the_others_without_a_hang(workdir, table_csv):
    cfg = write_config(
        workdir / "c.yaml",
        table_csv(n=2000),
        model={"hidden": [64, 64]},
        train={"epochs": 100000, "batch_size": 8, "checkpoint_every": 0},
    )
    proc = subprocess.Popen(
        [*NNTRAIN, "fit", str(cfg), "--nproc", "2"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        metrics = workdir / "runs" / "t" / "metrics.csv"
        deadline = time.monotonic() + 120
        while not (metrics.is_file() and metrics.stat().st_size > 100) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert metrics.is_file(), "training never started"
        workers = [w for agent in children(proc.pid) for w in children(agent)]
        rank1 = next(w for w in workers if environ(w).get("RANK") == "1")
        os.kill(rank1, signal.SIGKILL)
        t0 = time.monotonic()
        code = proc.wait(timeout=90)
        assert time.monotonic() - t0 < 60
        assert code != 0
    finally:
        if proc.poll() is None:
            proc.kill()


def _diverge_on_rank_1(rank: int, port: int, out: str) -> None:
    """One rank of a real gloo group: rank 1 alone has a non-finite loss, on the last step of a window."""
    import types

    import torch

    from nntrain.engine.distributed import Group
    from nntrain.engine.loop import check_diverged
    from nntrain.engine.loop_state import CHECK_EVERY
    from nntrain.engine.stopping import Diverged

    os.environ.update(RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    group = Group("cpu")
    losses = torch.full((2 * CHECK_EVERY,), 0.5)
    if rank == 1:
        losses[CHECK_EVERY - 1] = float("nan")
    cfg = types.SimpleNamespace(optimizer={"lr": 0.1}, data=types.SimpleNamespace(scale="standard"))
    run = types.SimpleNamespace(step_losses=losses, epoch=0, best_epoch=0, cfg=cfg)
    saver = types.SimpleNamespace(save_best=lambda: None, last_epoch=0)
    try:
        check_diverged(run, 0, CHECK_EVERY, saver, group)
        said = "no stop"
    except Diverged as e:
        said = str(e)
    group.any(True)  # both ranks got here: neither is left waiting in a collective
    Path(out, f"rank{rank}").write_text(said)
    group.close()


def test_a_non_finite_loss_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_diverge_on_rank_1, args=(port, str(tmp_path)), nprocs=2, start_method="spawn", join=True)
    said = [(tmp_path / f"rank{r}").read_text() for r in (0, 1)]
    assert said[0] == said[1]
    assert said[0].startswith("training diverged at epoch 1, step 64: the training loss became non-finite")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_cuda_without_it_is_a_user_error_in_a_group_too(monkeypatch):
    from nntrain.engine.distributed import Group
    from nntrain.errors import UserError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(UserError, match="device=cuda: CUDA is not available on this machine"):
        Group("cuda")


def test_a_bad_config_under_nproc_is_its_message_and_exit_2_without_torchruns_traceback(workdir, table_csv):
    """A config the ranks refuse (here data.target naming no column) printed its message, then torchrun's own
    traceback of ChildFailedError and its 'nntrain FAILED' report, exit 1: the message, exit 2, nothing else."""
    cfg = write_config(workdir / "c.yaml", table_csv(n=100), data={"target": "no_such_column"})
    r = run([*NNTRAIN, "fit", str(cfg), "--nproc", "2"], workdir)
    assert r.returncode == 2, r.stderr
    assert "no_such_column" in r.stderr
    assert "Traceback" not in r.stderr and "ChildFailedError" not in r.stderr and "FAILED" not in r.stderr
    assert not (workdir / "runs" / "t").exists()
