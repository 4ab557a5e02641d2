"""`nntrain.listing`: run folders built by hand, read back as listing rows and tables (no torch, no training)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from nntrain.errors import UserError
from nntrain.runs.listing import (
    compare_table,
    config_differences,
    flatten,
    list_runs,
    read_run,
    runs_table,
)

T0 = 1_700_000_000  # 2023-11-14: a fixed start time, so order and the 'started' column do not race the clock


def config(name: str, optimizer: dict | None = None, **model) -> dict:
    return {
        "name": name,
        "seed": 42,
        "device": "auto",
        "runs_dir": "runs",
        "data": {"path": "sklearn:iris", "target": None, "task": "auto", "drop": []},
        "model": {
            "hidden": [64, 128],
            "layers": None,
            "activation": {"name": "relu"},
            "output_activation": {"name": "identity"},
            "dropout": 0.0,
            "batch_norm": False,
            **model,
        },
        "loss": {"name": "cross_entropy"},
        "optimizer": optimizer or {"name": "sgd", "lr": 0.01, "momentum": 0.9},
        "scheduler": {"name": "none"},
        "train": {"epochs": 30, "batch_size": 16, "monitor": "val_loss", "patience": None},
    }


def make_run(
    root: Path,
    name: str,
    cfg: dict | None = None,
    summary: dict | None = None,
    epochs: int = 30,
    started: float = T0,
    last: bool = True,
) -> Path:
    """A run folder as training leaves it: config.yaml (its mtime is the start), metrics.csv, summary.json."""
    run = root / name
    run.mkdir(parents=True)
    lines = ["epoch,train_loss,val_accuracy,val_f1_macro,val_loss,lr,seconds"]
    lines += [f"{e},0.5,0.9,0.9,0.4,0.01,0.01" for e in range(1, epochs + 1)]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    if summary is not None:
        (run / "summary.json").write_text(json.dumps(summary))
    if last:
        (run / "last.pt").write_bytes(b"")
    (run / "config.yaml").write_text(yaml.safe_dump(cfg or config(name.split("/")[-1]), sort_keys=False))
    os.utime(run / "config.yaml", (started, started))
    return run


def summary(task: str = "multiclass", epochs: int = 30, **test) -> dict:
    test = test or {"accuracy": 0.9666666, "f1_macro": 0.96, "loss": 0.0714}
    return {
        "run_dir": "x",
        "best_epoch": 12,
        "monitor": "val_loss",
        "best_value": 0.08621817,
        "test": test,
        "test_baseline": {},
        "epochs_run": epochs,
        "train_seconds": 1.0,
        "task": task,
    }


def render(table) -> str:
    console = Console(record=True, width=200)
    console.print(table)
    return console.export_text()


def test_finished_classification_run_row(tmp_path):
    run = make_run(tmp_path, "iris", summary=summary())
    row = read_run(run)
    assert row["name"] == "iris" and row["path"] == run and row["task"] == "multiclass"
    assert row["model"] == "mlp 64-128 relu"
    assert row["optimizer"] == "sgd lr=0.01 m=0.9"
    assert row["scheduler"] is None
    assert (row["epochs"], row["status"]) == ("30/30", "done")
    assert (row["monitor"], row["best_value"]) == ("val_loss", 0.08621817)
    assert row["test_metric"] == ("accuracy", 0.9666666)
    assert row["started"].timestamp() == T0


def test_model_and_optimizer_strings(tmp_path):
    cfg = config(
        "r",
        {"name": "adam", "lr": 0.003, "weight_decay": 0.001},
        hidden=[32],
        activation={"name": "tanh"},
        batch_norm=True,
        dropout=0.2,
    )
    cfg["scheduler"] = {"name": "step", "step_size": 10}
    row = read_run(make_run(tmp_path, "r", cfg, summary=summary("regression", r2=0.4416, mse=3.0)))
    assert row["model"] == "mlp 32 tanh +bn +drop0.2"
    assert row["optimizer"] == "adam lr=0.003"
    assert row["scheduler"] == "step"
    assert row["test_metric"] == ("r2", 0.4416)
    cfg["model"]["ensemble"] = 4
    ensemble = read_run(make_run(tmp_path, "e", cfg, summary=summary("regression", r2=0.5, mse=2.0)))
    assert ensemble["model"] == "mlp 32 tanh +bn +drop0.2 x4"
    del cfg["model"]["ensemble"]
    cfg["model"]["shared_members"] = 8
    shared = read_run(make_run(tmp_path, "s", cfg, summary=summary("regression", r2=0.5, mse=2.0)))
    assert shared["model"] == "mlp 32 tanh +bn +drop0.2 x8 shared"

    layers = [{"size": 3, "activation": {"name": "sigmoid"}}, {"size": 2, "activation": None}]
    row = read_run(
        make_run(
            tmp_path,
            "layers",
            config("layers", {"name": "sgd", "lr": 0.1, "momentum": 0.0}, hidden=None, layers=layers),
        )
    )
    assert row["model"] == "mlp 3-2 sigmoid/relu"  # the second layer falls back to model.activation
    assert row["optimizer"] == "sgd lr=0.1"  # momentum 0 is left out


def test_unfinished_run_is_stopped_with_epochs_from_metrics(tmp_path):
    row = read_run(make_run(tmp_path, "cut", epochs=3))
    assert (row["status"], row["epochs"], row["task"]) == ("stopped", "3/30", "-")
    assert row["test_metric"] is None and row["best_value"] is None
    assert "3/30 stopped" in render(runs_table([row]))


def test_run_that_died_in_its_first_epoch_is_empty(tmp_path):
    run = make_run(tmp_path, "dead", epochs=0, last=False)
    (run / "metrics.csv").unlink()
    row = read_run(run)
    assert (row["status"], row["epochs"]) == ("empty", "0/30")


def test_read_run_errors_name_the_folder(tmp_path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(UserError, match="nothing.*no config.yaml"):
        read_run(tmp_path / "nothing")
    bad = make_run(tmp_path, "badjson", summary=summary())
    (bad / "summary.json").write_text("{not json")
    with pytest.raises(UserError, match="badjson.*summary.json"):
        read_run(bad)
    bad = make_run(tmp_path, "badyaml")
    (bad / "config.yaml").write_text("model: [unclosed\n")
    with pytest.raises(UserError, match="badyaml.*config.yaml"):
        read_run(bad)


def test_list_runs_newest_first_nested_sweeps_broken_and_non_runs(tmp_path):
    make_run(tmp_path, "old", summary=summary(), started=T0)
    make_run(tmp_path, "new", summary=summary(), started=T0 + 300)
    make_run(tmp_path, "study/trial-1", summary=summary(), started=T0 + 100)
    make_run(tmp_path, "study/trial-2", epochs=3, started=T0 + 200)
    broken = make_run(tmp_path, "broken", started=T0 + 50)
    (broken / "config.yaml").write_text(": : [\n")
    os.utime(broken / "config.yaml", (T0 + 50, T0 + 50))
    (tmp_path / "notes").mkdir()  # not a run, no runs inside: skipped
    (tmp_path / "notes" / "x.txt").write_text("hi")
    (tmp_path / "README.txt").write_text("a file, not a folder")

    rows = list_runs(tmp_path)
    assert [r["name"] for r in rows] == ["new", "study/trial-2", "study/trial-1", "broken", "old"]
    by_name = {r["name"]: r for r in rows}
    assert by_name["broken"]["status"] == "broken" and "config.yaml" in by_name["broken"]["error"]
    assert by_name["study/trial-2"]["status"] == "stopped"

    text = render(runs_table(rows))
    for cell in (
        "name",
        "started",
        "study/trial-1",
        "mlp 64-128 relu",
        "sgd lr=0.01 m=0.9",
        "30/30",
        "val_loss=0.08622",
        "accuracy=0.9667",
        "3/30 stopped",
        "broken",
        f"{datetime.fromtimestamp(T0):%Y-%m-%d %H:%M}",
    ):
        assert cell in text, cell


def test_list_runs_missing_root(tmp_path):
    with pytest.raises(UserError, match="runs folder not found: .*nowhere"):
        list_runs(tmp_path / "nowhere")


def test_flatten_dotted_keys_keep_lists():
    flat = flatten({"optimizer": {"lr": 0.1}, "model": {"hidden": [64, 128], "init": {"weight": {"name": "x"}}}})
    assert flat == {"optimizer.lr": 0.1, "model.hidden": [64, 128], "model.init.weight.name": "x"}


def test_config_differences_sgd_vs_adam():
    sgd = config("a", {"name": "sgd", "lr": 0.01, "momentum": 0.9})
    adam = config("b", {"name": "adam", "lr": 0.01})
    diffs = config_differences({"a": sgd, "b": adam})
    assert diffs == {"optimizer.name": ["sgd", "adam"], "optimizer.momentum": [0.9, None]}
    assert list(diffs) == ["optimizer.name", "optimizer.momentum"]
    assert config_differences({"a": sgd, "b": config("b", sgd["optimizer"])}) == {}


def test_compare_table(tmp_path):
    a = read_run(make_run(tmp_path, "run-sgd", summary=summary()))
    b = read_run(
        make_run(
            tmp_path,
            "run-adam",
            config("run-adam", {"name": "adam", "lr": 0.01}),
            summary=summary(accuracy=0.5, loss=1.25, f1_macro=0.4, roc_auc=0.7),
        )
    )
    text = render(compare_table({"run-sgd": a, "run-adam": b}))
    for cell in (
        "run-sgd",
        "run-adam",
        "optimizer.name",
        "optimizer.momentum",
        "sgd",
        "adam",
        "0.9",
        "val_loss=0.08622",
        "30/30",
        "test accuracy",
        "0.9667",
        "test loss",
        "1.25",
        "test f1_macro",
    ):
        assert cell in text, cell
    assert "roc_auc" not in text  # only test metrics both runs have
    assert "runs_dir" not in text and "optimizer.lr" not in text


def test_values_that_differ_are_never_shown_alike_in_compare_and_runs(tmp_path):
    """Shown to 4 significant digits, a test loss of 0.071421 and one of 0.071424 both read 0.07142 (and best
    val_loss 0.08621817 and 0.0862184 both 0.08622): two runs looked tied that were not. Values that differ get
    the digits that tell them apart; equal ones, and ones 4 digits already tell apart, keep 4."""
    a = json.loads(json.dumps(summary(accuracy=0.9, loss=0.071421)))
    b = {**summary(accuracy=0.8, loss=0.071424), "best_value": 0.0862184}
    rows = [read_run(make_run(tmp_path, "one", summary=a)), read_run(make_run(tmp_path, "two", summary=b))]
    text = render(compare_table({"one": rows[0], "two": rows[1]}))
    for cell in ("0.071421", "0.071424", "val_loss=0.0862182", "val_loss=0.0862184", "0.9", "0.8"):
        assert cell in text, cell
    assert "0.90" not in text and "0.07142 " not in text
    listed = render(runs_table(rows))
    assert "val_loss=0.0862182" in listed and "val_loss=0.0862184" in listed
    assert "accuracy=0.9 " in listed and "accuracy=0.8 " in listed


def test_a_narrow_terminal_wraps_the_tables_and_cuts_no_value(tmp_path):
    """Under COLUMNS=60 rich cut each cell to fit ('val_…', 'acc…', '2026…'): the best and test values were gone.
    Cells now wrap: every character is still there."""
    rows = [read_run(make_run(tmp_path, "a-long-run-name", summary=summary(accuracy=0.9666666, loss=0.0714)))]
    rows.append(read_run(make_run(tmp_path, "other", summary=summary(accuracy=0.5, loss=1.25))))
    for table in (runs_table(rows), compare_table({"a-long-run-name": rows[0], "other": rows[1]})):
        console = Console(record=True, width=60)
        console.print(table)
        text = console.export_text()
        assert "…" not in text and max(len(line) for line in text.splitlines()) <= 60


def test_import_pulls_in_neither_torch_nor_pandas():
    code = "import nntrain.runs.listing, sys; assert 'torch' not in sys.modules and 'pandas' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_a_run_whose_config_nests_too_deep_is_listed_broken_and_the_others_still_are(tmp_path):
    make_run(tmp_path, "good", summary=summary(), started=T0)
    deep = make_run(tmp_path, "deep", started=T0 + 50)
    (deep / "config.yaml").write_text("x: " + "[" * 490 + "]" * 490 + "\n")
    (make_run(tmp_path, "deepjson", summary=summary(), started=T0 + 60) / "summary.json").write_text(
        "[" * 100_000 + "]" * 100_000
    )
    rows = {r["name"]: r for r in list_runs(tmp_path)}
    assert rows["good"]["status"] != "broken"
    assert rows["deep"]["status"] == "broken" and "levels deep" in rows["deep"]["error"]
    assert rows["deepjson"]["status"] == "broken" and "summary.json" in rows["deepjson"]["error"]
