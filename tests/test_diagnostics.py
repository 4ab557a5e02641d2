"""What training did inside the network: per-layer diagnostics, warnings in words, progress output, TensorBoard."""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest
import torch
import yaml

from nntrain.config.loading import load_config
from nntrain.engine.diagnostics import Diagnostics
from nntrain.model.mlp import build_mlp

from .conftest import is_png, metrics_rows, write_config


def tiny(layers: list[dict], X: torch.Tensor, steps: int = 1) -> tuple[torch.nn.Sequential, Diagnostics]:
    cfg = load_config(None, raw={"data": {"path": "d.csv"}, "model": {"layers": layers}})
    model = build_mlp(cfg.model, X.shape[1], 2)
    return model, Diagnostics(model, steps, X)


def test_fractions_match_a_hand_computation():
    X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [2.0, 0.5]])
    model, diag = tiny([{"size": 3, "activation": "relu"}, {"size": 2, "activation": "tanh"}], X)
    with torch.no_grad():
        model.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, -1.0], [0.0, -5.0]]))
        model.fc1.bias.copy_(torch.tensor([0.0, -3.0, -1.0]))
        model.fc2.weight.copy_(torch.tensor([[10.0, 0.0, 0.0], [0.1, 0.0, 0.0]]))
        model.fc2.bias.zero_()
    # By hand: fc1 pre-activations per row (unit 0, 1, 2): (1,-4,-1) (0,-4,-6) (-1,-1,4) (2,-5.5,-3.5).
    # Unit 1 is <= 0 on every row -> dead; units 0 and 2 are positive somewhere -> 1 of 3 dead.
    # relu outputs of unit 0: 1, 0, 0, 2 (unit 2: 0, 0, 4, 0); fc2 unit 0 = tanh(10 * u0): tanh(10), 0, 0, tanh(20):
    # saturated (|a| > 0.98) on 2 rows of 4, not more than half -> not saturated; unit 1 = tanh(0.1 * u0) never.
    values = diag.activation_fractions()
    assert values == {"dead_frac.fc1": pytest.approx(1 / 3), "saturated_frac.fc2": 0.0}
    with torch.no_grad():
        model.fc1.bias.copy_(
            torch.tensor([0.5, -3.0, -1.0])
        )  # unit 0 now 1.5, 0.5, -0.5, 2.5 -> tanh(10 u0) saturated on 3 of 4
    assert diag.activation_fractions()["saturated_frac.fc2"] == 0.5


def test_a_layer_forced_dead_reads_one_and_forced_saturated_reads_one():
    X = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    model, diag = tiny([{"size": 8, "activation": "relu"}, {"size": 6, "activation": "sigmoid"}], X)
    with torch.no_grad():
        model.fc1.bias.fill_(-1e3)
        model.fc2.bias.fill_(1e3)
    values = diag.activation_fractions()
    assert values == {"dead_frac.fc1": 1.0, "saturated_frac.fc2": 1.0}
    warnings = diag.warnings({**values, "grad_norm.fc1": 1.0, "grad_norm.out": 1.0})
    assert warnings[0] == (
        "layer 1 (fc1): 100% of its relu units never activate on the validation rows; "
        "try leaky_relu or a smaller optimizer.lr"
    )
    assert "layer 2 (fc2): 100% of its sigmoid units are saturated" in warnings[1]
    assert diag.warnings({**values, "grad_norm.fc1": 1.0, "grad_norm.out": 1.0}) == []  # once a run


def test_gradient_norms_are_sampled_means_per_layer():
    X = torch.zeros(4, 2)
    model, diag = tiny([{"size": 3}], X, steps=16)  # 16 steps -> every 2nd step sampled
    assert diag.columns() == ["grad_norm.fc1", "grad_norm.out", "dead_frac.fc1"]
    for s in range(16):
        model.fc1.weight.grad = torch.full((3, 2), float(s))  # norm sqrt(6) * s
        model.out.weight.grad = torch.full((2, 3), 1.0)
        diag.after_step(s)
    values = diag.epoch_values()
    assert values["grad_norm.fc1"] == pytest.approx(math.sqrt(6) * np.mean(range(0, 16, 2)), rel=1e-6)
    assert values["grad_norm.out"] == pytest.approx(math.sqrt(6), rel=1e-6)
    assert "vanishing gradients" in diag.warnings({"grad_norm.fc1": 1e-6, "grad_norm.out": 1.0})[0]


def test_fit_logs_diagnostics_and_warns_in_words(workdir, table_csv, cli):
    """A first layer whose biases start at -100 never activates: metrics.csv says 1.0, fit says so in words."""
    layers = [{"size": 8, "init": {"bias": {"name": "constant", "val": -100.0}}}, {"size": 4}]
    cfg = write_config(workdir / "c.yaml", table_csv(n=200), model={"hidden": None, "layers": layers})
    r = cli("fit", cfg, "train.epochs=3")
    assert r.exit_code == 0, r.stderr
    rows = metrics_rows(workdir / "runs" / "t")
    assert [float(row["dead_frac.fc1"]) for row in rows] == [1.0, 1.0, 1.0]
    assert all(float(row["grad_norm.fc1"]) == 0.0 for row in rows)  # a dead layer gets no gradient
    assert "warning (epoch 1): layer 1 (fc1): 100% of its relu units never activate" in r.stdout
    assert r.stdout.count("layer 1 (fc1): 100% of its relu units") == 1  # once, not every epoch


def test_diagnostics_can_be_turned_off(workdir, table_csv, cli):
    cfg = write_config(workdir / "c.yaml", table_csv(n=100), train={"epochs": 2, "diagnostics": False})
    assert cli("fit", cfg).exit_code == 0
    header = (workdir / "runs" / "t" / "metrics.csv").read_text().splitlines()[0]
    assert "grad_norm" not in header and "dead_frac" not in header
    assert not (workdir / "runs" / "t" / "diagnostics.png").exists()
    assert (workdir / "runs" / "t" / "curves.png").exists()


def test_plots_can_be_turned_off(workdir, table_csv, cli):
    cfg = write_config(workdir / "c.yaml", table_csv(n=100), train={"epochs": 2, "plots": False})
    r = cli("fit", cfg)
    assert r.exit_code == 0 and "plots:" not in r.stdout
    assert not list((workdir / "runs" / "t").glob("*.png"))


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def test_quiet_and_piped_output_are_plain_lines(workdir, table_csv, cli):
    cfg = write_config(workdir / "c.yaml", table_csv(n=120), train={"epochs": 4})
    piped = cli("fit", cfg)
    quiet = cli("fit", cfg, "--quiet")
    assert piped.exit_code == quiet.exit_code == 0
    assert sum(line.startswith("epoch ") for line in piped.stdout.splitlines()) == 4
    assert not any(line.startswith("epoch ") for line in quiet.stdout.splitlines())
    assert "test metrics of best.pt" in quiet.stdout
    for out in (piped.stdout, quiet.stdout, piped.stderr, quiet.stderr):
        assert not CONTROL.search(out)


def test_progress_bar_on_a_terminal(workdir, table_csv):
    """On a terminal: a live bar (control characters) with the epoch lines printed above it."""
    from rich.console import Console

    from nntrain.engine.loop import fit
    from nntrain.engine.progress import Bar

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, highlight=False)
    raw = {"name": "bar", "data": {"path": str(table_csv(n=120))}, "train": {"epochs": 3}}
    fit(load_config(None, raw=raw), log=lambda m: console.print(m, markup=False), progress=Bar(console))
    text = buf.getvalue()
    assert CONTROL.search(text)
    assert re.search(r"epoch\s+3/3", text) and "loss" in text and "lr" in text


def test_tensorboard_event_files_hold_the_metrics(workdir, table_csv, cli):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    cfg = write_config(workdir / "c.yaml", table_csv(n=120), train={"epochs": 3})
    assert cli("fit", cfg, "--tensorboard").exit_code == 0
    run = workdir / "runs" / "t"
    events = accumulator.EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    rows = metrics_rows(run)
    logged = events.Scalars("val_loss")
    assert [e.step for e in logged] == [1, 2, 3]
    assert [e.value for e in logged] == pytest.approx([float(r["val_loss"]) for r in rows], rel=1e-5)
    assert "grad_norm/fc1" in events.Tags()["scalars"]


def test_tensorboard_with_seeds_and_several_resumes_writes_each_runs_event_files(workdir, table_csv, cli):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    cfg = write_config(workdir / "c.yaml", table_csv(n=120), train={"epochs": 3})
    assert cli("fit", cfg, "--seeds", "0,1", "--tensorboard").exit_code == 0
    runs = [workdir / "runs" / f"t-seed{s}" for s in (0, 1)]
    r = cli("fit", "--resume", runs[0], "--resume", runs[1], "train.epochs=5", "--tensorboard")
    assert r.exit_code == 0, r.output
    for run in runs:
        events = accumulator.EventAccumulator(str(run / "tensorboard"))
        events.Reload()
        assert [e.step for e in events.Scalars("val_loss")] == [1, 2, 3, 4, 5]
    for flag in (["--nproc", "2"], ["--name", "x"]):
        r = cli("fit", "--resume", runs[0], "--resume", runs[1], "train.epochs=6", *flag)
        assert r.exit_code == 2 and f"{flag[0]}: not with several --resume" in r.stderr


def test_tensorboard_missing_is_refused_before_any_run_folder_is_made(workdir, table_csv, cli, monkeypatch):
    import subprocess
    import sys

    from nntrain import api
    from nntrain.errors import UserError

    cfg = write_config(workdir / "c.yaml", table_csv(n=120), train={"epochs": 2})
    assert cli("fit", cfg, "--name", "done").exit_code == 0
    for module in ("tensorboard", "torch.utils.tensorboard"):  # as if it were not installed
        monkeypatch.setitem(sys.modules, module, None)
    for extra in ([], ["--seeds", "0,1"]):
        r = cli("fit", cfg, "--tensorboard", *extra)
        assert r.exit_code == 2 and "--tensorboard needs the tensorboard package" in r.stderr
    assert sorted(p.name for p in (workdir / "runs").iterdir() if not p.name.startswith(".")) == ["done"]
    with pytest.raises(UserError, match="tensorboard package"):
        api.resume(workdir / "runs/done", ["train.epochs=3"], tensorboard=True)
    other = subprocess.run(  # this process holds no lock on the folder: another one may resume it
        [sys.executable, "-m", "nntrain", "fit", "--resume", "runs/done", "train.epochs=3", "-q"],
        capture_output=True,
        text=True,
    )
    assert other.returncode == 0, other.stderr


def test_runs_and_compare_on_fresh_runs(workdir, table_csv, cli):
    data = table_csv(n=150)
    cfg = write_config(workdir / "c.yaml", data, train={"epochs": 3})
    assert (
        cli("fit", cfg, "optimizer.name=sgd", "optimizer.lr=0.1", "optimizer.momentum=0.9", "--name", "sgd").exit_code
        == 0
    )
    assert cli("fit", cfg, "--name", "adam").exit_code == 0

    listing = cli("runs")
    assert listing.exit_code == 0
    lines = listing.stdout.splitlines()
    adam, sgd = (next(i for i, line in enumerate(lines) if f" {n} " in line) for n in ("adam", "sgd"))
    assert adam < sgd  # newest first
    assert "sgd lr=0.1 m=0.9" in lines[sgd] and "3/3" in lines[sgd] and "accuracy=" in lines[sgd]

    r = cli("compare", "runs/sgd", "runs/adam", "-o", "both.png")
    assert r.exit_code == 0, r.stderr
    assert is_png(workdir / "both.png")
    table = {
        line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:4]]
        for line in r.stdout.splitlines()
        if line.count("│") == 4
    }
    assert table["optimizer.name"] == ["sgd", "adam"]
    assert table["optimizer.momentum"] == ["0.9", "-"]
    assert "test accuracy" in table and "name" not in table


def test_runs_does_not_call_a_run_of_a_table_named_relatively_edited(workdir, table_csv, cli):
    """config.yaml names the tables by absolute path and summary.json as given: `runs` read the difference as an
    edit and listed every run of `nntrain fit t.csv` (and of data.test_path=te.csv) as '(config.yaml edited)'."""
    table_csv("t.csv", n=120)
    table_csv("te.csv", n=40, seed=1)
    tiny = ("--target", "y", "train.epochs=1", "train.bag=1", "train.plots=false", "train.threads=1", "-q")
    assert cli("fit", "t.csv", *tiny).exit_code == 0
    assert cli("fit", "t.csv", "data.test_path=te.csv", "--name", "given", *tiny).exit_code == 0
    assert yaml.safe_load((workdir / "runs/t/config.yaml").read_text())["data"]["path"] == str(workdir / "t.csv")
    listing = cli("runs")
    assert listing.exit_code == 0 and " t " in listing.stdout and " given " in listing.stdout
    assert "edited" not in listing.stdout
    for run in ("t", "given"):  # an edit of the table is still one
        edited = (workdir / f"runs/{run}/config.yaml").read_text().replace(str(workdir / "t.csv"), "other.csv")
        (workdir / f"runs/{run}/config.yaml").write_text(edited)
    assert cli("runs").stdout.count("(config.yaml edited)") == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["compare", "runs/a"], "at least two run folders"),
        (["compare", "runs/a", "runs/nope"], "run folder not found: runs/nope"),
        (["compare", "runs/a", "runs/a", "-o", "x.txt"], "name a .png file"),
        (["runs", "elsewhere"], "runs folder not found"),
    ],
)
def test_runs_and_compare_refuse_bad_input(workdir, table_csv, cli, args, message):
    cfg = write_config(workdir / "c.yaml", table_csv(n=100), train={"epochs": 1})
    assert cli("fit", cfg, "--name", "a").exit_code == 0
    r = cli(*args)
    assert r.exit_code == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_a_regression_fit_writes_its_plots(workdir, table_csv, cli):
    cfg = write_config(workdir / "c.yaml", table_csv(n=120, task="regression"), train={"epochs": 2})
    r = cli("fit", cfg)
    assert r.exit_code == 0, r.stderr
    run = workdir / "runs" / "t"
    for name in ("curves.png", "diagnostics.png", "pred_vs_true.png", "residuals.png"):
        assert is_png(run / name), name
    assert not (run / "confusion_matrix.png").exists()
    assert "plots: curves.png, diagnostics.png, pred_vs_true.png, residuals.png" in r.stdout
