"""Nothing a user names can destroy what nntrain keeps: -o never replaces an input, a run folder's file or, without
--force, an existing file; nothing is written through a link; one process writes a run folder at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from nntrain.errors import UserError
from nntrain.runs.checkpoints import load_checkpoint

from .conftest import NNTRAIN, make_table, write_config

RUN_FILES = ("best.pt", "last.pt", "config.yaml", "split.json", "summary.json", "metrics.csv", "curves.png")


@pytest.fixture
def run(workdir, cli):
    """A finished run folder and the file it trained on."""
    data = workdir / "t.csv"
    make_table(n=120).to_csv(data, index=False)
    r = cli("fit", write_config(workdir / "c.yaml", data), "--json", "--quiet")
    assert r.exit_code == 0, r.stderr
    return workdir / json.loads(r.stdout)["run_dir"], data


def snapshot(folder) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def refused(r, *words: str) -> bool:
    return r.exit_code == 2 and all(w in r.stderr for w in words) and "Traceback" not in r.stderr


def test_predict_never_writes_over_its_input_or_a_run_folders_files(run, cli, workdir):
    run_dir, data = run
    before, table = snapshot(run_dir), data.read_bytes()
    assert refused(cli("predict", run_dir, data, "-o", data, "--force"), "that is the input file")
    os.link(data, workdir / "alias.csv")  # the same file under another name
    assert refused(cli("predict", run_dir, data, "-o", workdir / "alias.csv", "--force"), "that is the input file")
    for name in RUN_FILES:
        r = cli("predict", run_dir, data, "-o", run_dir / name, "--force")
        assert refused(r, f"{name} belongs to the run folder"), (name, r.stderr)
    assert snapshot(run_dir) == before and data.read_bytes() == table
    out = workdir / "p.csv"
    assert cli("predict", run_dir, data, "-o", out).exit_code == 0
    assert refused(cli("predict", run_dir, data, "-o", out), "exists; add --force")
    assert cli("predict", run_dir, data, "-o", out, "--force").exit_code == 0
    assert cli("eval", run_dir).exit_code == 0  # the checkpoint is whole


def test_compare_and_export_follow_the_same_rule_for_the_model_and_its_sidecar(run, cli, workdir):
    run_dir, _ = run
    assert cli("fit", workdir / "c.yaml", "--name", "other", "--quiet").exit_code == 0
    before = snapshot(run_dir)
    r = cli("compare", run_dir, "runs/other", "-o", run_dir / "curves.png", "--force")
    assert refused(r, "curves.png belongs to the run folder")
    r = cli("export", run_dir, "--format", "torchscript", "-o", run_dir / "split", "--force")
    assert refused(r, "split.json belongs to the run folder")  # the sidecar would have replaced split.json
    assert snapshot(run_dir) == before and cli("eval", run_dir).exit_code == 0
    assert cli("compare", run_dir, "runs/other", "-o", "both.png").exit_code == 0
    assert refused(cli("compare", run_dir, "runs/other", "-o", "both.png"), "exists; add --force")
    assert cli("compare", run_dir, "runs/other", "-o", "both.png", "--force").exit_code == 0
    args = ("export", run_dir, "--format", "torchscript", "-o", workdir / "m.pt")
    assert cli(*args).exit_code == 0
    (workdir / "m.pt").unlink()  # the model is gone, its sidecar is not
    assert refused(cli(*args), "m.pt.json", "exists; add --force")
    assert cli(*args, "--force").exit_code == 0 and (workdir / "m.pt").is_file()


def test_configs_copy_never_writes_through_a_dangling_link(workdir, cli):
    (workdir / "elsewhere").mkdir()
    (workdir / "mine.yaml").symlink_to(workdir / "elsewhere" / "target.yaml")
    assert refused(cli("configs", "copy", "iris", workdir / "mine.yaml"), "exists")
    assert not (workdir / "elsewhere" / "target.yaml").exists()


def test_resume_never_writes_through_a_linked_metrics_csv(run, cli, workdir):
    run_dir, _ = run
    outside = workdir / "somebody_elses.csv"
    (run_dir / "metrics.csv").rename(outside)
    (run_dir / "metrics.csv").symlink_to(outside)
    before = outside.read_bytes()
    r = cli("fit", "--resume", run_dir, "train.epochs=5")
    assert refused(r, "metrics.csv: is a symbolic link")
    assert outside.read_bytes() == before


def test_resume_on_a_damaged_metrics_csv_names_the_line(run, cli):
    run_dir, _ = run
    lines = (run_dir / "metrics.csv").read_bytes().splitlines(keepends=True)
    (run_dir / "metrics.csv").write_bytes(b"".join([lines[0], lines[1], b"\x00\x00garbage,1,2\n", *lines[2:]]))
    r = cli("fit", "--resume", run_dir, "train.epochs=5")
    assert refused(r, "metrics.csv: line 3 does not start with an epoch number")


def nntrain(cwd, *args) -> subprocess.CompletedProcess:
    """The CLI in a subprocess of its own (a second process, for the lock)."""
    return subprocess.run([*NNTRAIN, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


def wait_for(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_one_process_writes_a_run_folder_and_a_killed_one_leaves_no_lock(workdir):
    data = workdir / "big.csv"
    make_table(n=3000, seed=2).to_csv(data, index=False)
    cfg = write_config(workdir / "long.yaml", data, train={"epochs": 2000, "batch_size": 16})
    busy = subprocess.Popen(
        [*NNTRAIN, "fit", str(cfg), "--quiet"], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    run_dir = workdir / "runs" / "t"
    try:
        wait_for(lambda: (run_dir / "metrics.csv").is_file() and (run_dir / "metrics.csv").stat().st_size > 0)
        live = run_dir / f"other.pt.tmp-{busy.pid}"  # a temporary file of the running process
        live.write_bytes(b"in progress")
        second = nntrain(workdir, "fit", "--resume", run_dir, "train.epochs=2001")
        assert second.returncode == 2 and f"is being written by process {busy.pid}" in second.stderr
        assert live.is_file() and busy.poll() is None  # the running one is untouched and still training
    finally:
        busy.send_signal(signal.SIGKILL)
        busy.wait()
    mine = run_dir / f"last.pt.tmp-{os.getpid()}"  # a live PID (this test's): never removed
    mine.write_bytes(b"x")
    done = load_checkpoint(run_dir / "last.pt")["epoch"]  # one epoch more: a resume that trains and ends
    third = nntrain(workdir, "fit", "--resume", run_dir, f"train.epochs={done + 1}")
    assert third.returncode == 0, third.stderr  # the kernel dropped the killed process's lock
    assert not live.exists() and mine.exists()
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def test_a_lock_held_in_this_process_is_shared_and_dropped_with_its_last_holder(tmp_path):
    from nntrain.runs.folders import RunLock

    (tmp_path / "r").mkdir()
    a, b = RunLock(tmp_path / "r"), RunLock(tmp_path / "r")
    probe = [sys.executable, "-c", f"from nntrain.runs.folders import RunLock; RunLock({str(tmp_path / 'r')!r})"]
    a.release()
    a.release()  # a second release of one holder changes nothing
    held = subprocess.run(probe, capture_output=True, text=True)
    assert held.returncode == 1 and f"is being written by process {os.getpid()}" in held.stderr
    b.release()
    assert subprocess.run(probe, capture_output=True, text=True).returncode == 0


def test_a_model_the_machine_cannot_hold_is_refused_before_it_is_built(workdir, cli):
    from nntrain.model.memory import available_bytes

    cfg = write_config(workdir / "c.yaml", "sklearn:iris")
    for hidden in ("[1e9]", "[100000, 100000]"):
        r = cli("fit", cfg, f"model.hidden={hidden}", "--quiet")
        assert refused(r, "parameters need about", "available", "use smaller model.hidden"), r.stderr
        r = cli("params", cfg, f"model.hidden={hidden}")
        assert r.exit_code == 0 and "warning:" in r.stderr and "`nntrain fit` on the CPU would refuse it" in r.stderr
    assert not (workdir / "runs").exists() and available_bytes() > 0
    assert cli("params", cfg).stderr == ""  # a model that fits: no warning


def test_a_header_too_wide_is_refused_in_linear_time(workdir, cli):
    for n, expected in (
        (1_000_000, "the header has 1,000,000 columns; nntrain reads at most 20,000"),
        (20_000, "duplicate column name(s) 'c0' in the header"),
    ):
        cols = [f"c{i}" for i in range(n)]
        cols[-1] = "c0"
        (workdir / "wide.csv").write_text(",".join(cols) + "\n" + ",".join(["1"] * n) + "\n")
        t0 = time.perf_counter()
        r = cli("fit", write_config(workdir / "c.yaml", workdir / "wide.csv"))
        assert refused(r, expected) and time.perf_counter() - t0 < 10, r.stderr


def test_a_closed_stdout_saves_and_ends_the_run_as_on_sigpipe(workdir):
    """`nntrain fit ... | head -1`: the reader goes, the run saves and exits 141 with one line on stderr."""
    cfg = write_config(
        workdir / "c.yaml", "sklearn:digits", data={"target": "target"}, train={"epochs": 3000, "batch_size": 16}
    )
    p = subprocess.Popen(
        [*NNTRAIN, "fit", str(cfg)], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert p.stdout.readline().startswith("run folder: runs/t")
    p.stdout.close()
    assert p.wait(timeout=120) == 128 + signal.SIGPIPE
    err = p.stderr.read()
    assert "interrupted: SIGPIPE at epoch" in err and "last.pt saved" in err and "Traceback" not in err
    assert "Exception ignored" not in err
    done = subprocess.run([*NNTRAIN, "fit", "--resume", "runs/t", "train.epochs=1"], cwd=workdir, capture_output=True)
    assert done.returncode == 0


def test_predictions_never_reach_a_spreadsheet_as_formulas(workdir, cli):
    df = make_table(n=150)
    df["y"] = df["y"].map({0: '=HYPERLINK("http://x","y")', 1: "+1", 2: "@SUM(1)"})
    df.to_csv(workdir / "f.csv", index=False)
    assert cli("fit", write_config(workdir / "c.yaml", workdir / "f.csv"), "--quiet").exit_code == 0
    r = cli("predict", "runs/t", workdir / "f.csv")
    cells = {line.split(",")[0] for line in r.stdout.splitlines()[1:]}
    assert r.exit_code == 0 and cells and all(c.startswith(("'", "\"'")) for c in cells), cells
    header = r.stdout.splitlines()[0]
    assert header.startswith("prediction,") and "proba_=HYPERLINK" not in header.split(",")[1][:1]
    raw = cli("predict", "runs/t", workdir / "f.csv", "--raw")
    assert any(line.startswith(("=", '"=', "+", "@")) for line in raw.stdout.splitlines()[1:])


FORMULA = '=HYPERLINK("http://x","y")'
PREDICTED = pd.DataFrame({"prediction": [FORMULA, "no"], "proba_=1": [0.25, 0.5], "proba_no": [0.75, 0.5]})
READ_BACK = {
    ".tsv": lambda p: pd.read_csv(p, sep="\t"),
    ".parquet": pd.read_parquet,
    ".feather": pd.read_feather,
    ".xlsx": pd.read_excel,
    ".jsonl": lambda p: pd.read_json(p, lines=True),
}


@pytest.mark.parametrize("name", ["p.csv", "p.tsv", "p.parquet", "p.feather", "p.xlsx", "p.jsonl", "p.csv.gz", "p"])
def test_predictions_are_written_in_the_format_their_file_suffix_names(workdir, name):
    """predict -o: what pandas reads back by the suffix is the predictions, a chunk after another (a Parquet input
    is predicted a chunk at a time); labels a spreadsheet would run are escaped in CSV, TSV and Excel only."""
    from nntrain.runs.files import write_output
    from nntrain.tools.prediction_files import prediction_writer

    path, suffix = workdir / name, (workdir / name).suffixes[0] if "." in name else ""
    write = prediction_writer(path)
    write_output(path, lambda f: write(f, [PREDICTED, PREDICTED.iloc[:1]]), name)
    back = READ_BACK.get(suffix, pd.read_csv)(path)
    expected = pd.concat([PREDICTED, PREDICTED.iloc[:1]], ignore_index=True)
    assert list(back.columns) == list(expected.columns)
    assert back.filter(like="proba_").to_numpy() == pytest.approx(expected.filter(like="proba_").to_numpy())
    escaped = suffix in ("", ".csv", ".tsv", ".xlsx")
    assert list(back["prediction"]) == [("'" if escaped else "") + FORMULA, "no", ("'" if escaped else "") + FORMULA]
    assert list(workdir.iterdir()) == [path]


def test_a_gzip_prediction_file_names_its_target_not_the_temporary_file_in_its_header(workdir):
    """gzip keeps a file name in its header, which `gunzip -N` restores (was: p.csv.gz.tmp-PID, the name of the
    temporary file written and renamed; now p.csv). The temporary file is gone after a write and after a failure."""
    from nntrain.errors import UserError
    from nntrain.runs.files import write_output
    from nntrain.tools.prediction_files import prediction_writer

    path = workdir / "p.csv.gz"
    write = prediction_writer(path)
    write_output(path, lambda f: write(f, [PREDICTED]), "p.csv.gz")
    head = path.read_bytes()
    assert head[3] & 0x08 and head[10:16] == b"p.csv\x00"  # FNAME set, the name ends at its NUL
    with pytest.raises(UserError):

        def broken():
            yield PREDICTED
            raise UserError("stopped half way")

        write_output(workdir / "q.csv.gz", lambda f: write(f, broken()), "q.csv.gz")
    assert sorted(p.name for p in workdir.iterdir()) == ["p.csv.gz"]


@pytest.mark.parametrize("name", ["p.jsonl", "p.jsonl.gz"])
def test_json_lines_predictions_keep_every_digit(workdir, cli, name):
    """predict -o p.jsonl wrote numbers with 10 decimals (DataFrame.to_json's default): a target in small units
    came back as -0.0000000003 or -0.0. Every float is written as it is; missing ones are null."""
    import gzip

    import nntrain

    data = workdir / "t.csv"
    df = make_table(n=120, task="regression")
    df.assign(y=df["y"] * 1e-9).to_csv(data, index=False)
    assert (
        cli("fit", write_config(workdir / "c.yaml", data, train={"plots": False, "threads": 1}), "--quiet").exit_code
        == 0
    )
    expected = nntrain.load("runs/t").predict(str(data), interval=0.9)
    assert cli("predict", "runs/t", data, "--interval", "0.9", "-o", workdir / name).exit_code == 0
    text = (gzip.open if name.endswith(".gz") else open)(workdir / name, "rt").read()
    back = pd.DataFrame([json.loads(line) for line in text.splitlines()])
    assert list(back.columns) == list(expected.columns)
    assert (back.to_numpy() == expected.to_numpy()).all()  # exactly, not approximately
    from nntrain.runs.files import write_output
    from nntrain.tools.prediction_files import prediction_writer

    odd = pd.DataFrame({"prediction": [0.1 + 0.2, float("nan"), -2.8342182649528344e-10], "n": [1, 2, 3]})
    write = prediction_writer(workdir / "odd.jsonl")
    write_output(workdir / "odd.jsonl", lambda f: write(f, [odd]), "odd")
    lines = (workdir / "odd.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"prediction": 0.30000000000000004, "n": 1},
        {"prediction": None, "n": 2},
        {"prediction": -2.8342182649528344e-10, "n": 3},
    ]


def test_an_output_format_nntrain_cannot_write_is_refused_by_name(workdir, monkeypatch):
    from nntrain.tools.prediction_files import prediction_writer

    for name in ("p.xls", "p.json", "p.parquet.gz", "p.ods"):
        with pytest.raises(UserError, match=rf"-o {workdir / name}: nntrain does not write .* name a .csv, .tsv"):
            prediction_writer(workdir / name)
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # the excel extra not installed
    with pytest.raises(UserError, match=r"p.xlsx: writing .xlsx needs openpyxl: pip install 'nntrain\[excel\]'"):
        prediction_writer(workdir / "p.xlsx")


@pytest.mark.parametrize("name", ["p.csv", "p.parquet", "p.xlsx", "p.jsonl"])
def test_a_prediction_file_is_never_left_half_written(workdir, name):
    from nntrain.runs.files import write_output
    from nntrain.tools.prediction_files import prediction_writer

    def chunks():
        yield PREDICTED
        raise UserError("INPUT: column 'a': missing value at row 9")  # a later chunk refused

    write = prediction_writer(workdir / name)
    with pytest.raises(UserError, match="row 9"):
        write_output(workdir / name, lambda f: write(f, chunks()), name)
    assert list(workdir.iterdir()) == []


def test_predict_writes_the_format_its_output_suffix_names(run, cli, workdir):
    """predict -o p.parquet (or .xlsx) wrote CSV text under that name; pandas then could not read it."""
    import io

    import numpy as np

    run_dir, data = run
    printed = pd.read_csv(io.StringIO(cli("predict", run_dir, data).stdout))
    for name in ("p.parquet", "p.xlsx", "p.jsonl", "p.tsv", "p.feather"):
        assert cli("predict", run_dir, data, "-o", workdir / name).exit_code == 0
        back = READ_BACK[Path(name).suffix](workdir / name)
        assert list(back["prediction"]) == list(printed["prediction"]), name
        assert np.allclose(back.filter(like="proba_"), printed.filter(like="proba_")), name
    r = cli("predict", run_dir, data, "-o", workdir / "p.xls")
    assert refused(r, "p.xls: nntrain does not write .xls files") and not (workdir / "p.xls").exists()


def test_explain_on_a_file_names_that_file(run, cli, workdir):
    run_dir, data = run
    pd.read_csv(data).drop(columns="y").to_csv(workdir / "new.csv", index=False)
    r = cli("explain", run_dir, "--data", workdir / "new.csv")
    assert refused(r, "new.csv: no target column 'y'") and "DataFrame" not in r.stderr, r.stderr


def test_explain_refuses_one_row_and_a_changed_file_points_to_its_own_data_option(run, cli, workdir):
    """explain --data one.csv printed every importance as 0.0000 (one row shuffled is itself), exit 0; and on a
    run whose file changed it said "evaluate on the new file with eval --data"."""
    run_dir, data = run
    pd.read_csv(data).head(1).to_csv(workdir / "one.csv", index=False)
    r = cli("explain", run_dir, "--data", workdir / "one.csv")
    assert refused(r, "one.csv: 1 row(s); shuffling a column moves its values between rows, give 2 or more")
    assert not (Path(run_dir) / "importance.csv").exists()
    pd.read_csv(data).head(30).to_csv(data, index=False)
    r = cli("explain", run_dir)
    assert refused(r, "changed since the run was trained") and "eval and explain score" in r.stderr, r.stderr


def test_runs_shows_a_resumed_runs_epochs_and_marks_an_edited_config(workdir, cli):
    from nntrain.runs.listing import list_runs

    cfg = write_config(workdir / "c.yaml", "sklearn:iris", train={"epochs": 2})
    assert cli("fit", cfg, "--quiet").exit_code == 0
    assert cli("fit", "--resume", "runs/t", "train.epochs=4", "--quiet").exit_code == 0
    started = (workdir / "runs" / "t" / "config.yaml").stat().st_mtime
    assert cli("fit", "--resume", "runs/t", "train.epochs=4", "--quiet").exit_code == 0  # nothing to do: no rewrite
    (row,) = list_runs(workdir / "runs")
    assert (row["epochs"], row["config_edited"]) == ("4/4", False)
    assert row["started"].timestamp() == pytest.approx(started, abs=1e-3)  # when it started, not when resumed
    text = (workdir / "runs" / "t" / "config.yaml").read_text()
    (workdir / "runs" / "t" / "config.yaml").write_text(text.replace("hidden:\n  - 8", "hidden:\n  - 512"))
    (row,) = list_runs(workdir / "runs")
    assert row["config_edited"] and row["model"] == "mlp 8 relu"  # what was trained, not the edit
    assert "t (config.yaml edited)" in cli("runs").stdout


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda c: c.pop("config"), "not a whole nntrain checkpoint: 'config' is missing"),
        (lambda c: c.pop("prep"), "not a whole nntrain checkpoint: 'prep' is missing"),
        (lambda c: c.pop("epoch"), "not a whole nntrain checkpoint: 'epoch' is missing"),
        (lambda c: c.update(n_inputs=10**10), "n_inputs is 10,000,000,000, which its preprocessing's columns"),
        (lambda c: c["config"]["model"].update(hidden="wide"), "its stored config is not valid (model.hidden"),
        (lambda c: c["config"]["model"].update(hidden=[10**6]), "its weights do not fit its own config: fc1.weight is"),
        (
            lambda c: c["model"].update({"fc1.bias": c["model"]["fc1.bias"][:3]}),
            "its weights do not fit its own config",
        ),
        (lambda c: c.pop("optimizer"), "cannot resume from it: it lacks optimizer"),
    ],
)
def test_a_malformed_checkpoint_is_refused_by_every_reader(run, cli, damage, expected):
    import torch

    from nntrain.runs.files import atomic_save

    run_dir, data = run
    for name in ("best.pt", "last.pt"):
        ckpt = torch.load(run_dir / name, weights_only=True)
        damage(ckpt)
        atomic_save(ckpt, run_dir / name)
    for args in (("eval", run_dir), ("predict", run_dir, data), ("params", run_dir), ("fit", "--resume", run_dir)):
        r = cli(*args)
        if "resume" in expected and args[0] != "fit":
            assert r.exit_code == 0, r.stderr  # what eval, predict and params need is all there
            continue
        assert refused(r) and (expected in r.stderr or "stored config" in r.stderr), (args, r.stderr)


def test_another_runs_checkpoint_in_a_folder_is_refused(run, cli, workdir):
    run_dir, data = run
    assert cli("fit", workdir / "c.yaml", "--name", "wider", "model.hidden=[16]", "--quiet").exit_code == 0
    rows = (run_dir / "metrics.csv").read_bytes()
    for name in ("best.pt", "last.pt"):
        (run_dir / name).write_bytes((workdir / "runs" / "wider" / name).read_bytes())
    for args in (("eval", run_dir), ("predict", run_dir, data), ("fit", "--resume", run_dir, "train.epochs=9")):
        assert refused(cli(*args), "is the checkpoint of another run"), args
    assert (run_dir / "metrics.csv").read_bytes() == rows  # never resumed over the folder's own rows


def test_messages_quote_at_most_forty_characters_of_a_file_and_never_a_file_a_checkpoint_names(run, cli, workdir):
    import torch

    from nntrain.runs.files import atomic_save

    secret = "root:$6$Zm9vYmFyYmF6cXV4cXV1eA$c2VjcmV0IGhhc2ggb2YgYSBwYXNzd29yZCB0aGF0IG11c3Qgbm90IGxlYWs:19000:0"
    (workdir / "shadow").write_text(secret + "\n" + "daemon:*:19000:0:99999:7:::\n" * 5)
    r = cli("fit", write_config(workdir / "s.yaml", workdir / "shadow"))
    assert refused(r, f"no feature columns besides the target '{secret[:40]}...'")
    assert secret[40:60] not in r.stderr
    (workdir / "semi").write_text(secret.replace(":", ";") + "\n" + "a;b\n" * 5)
    r = cli("fit", write_config(workdir / "s.yaml", workdir / "semi"))
    assert refused(r, "only one column, 'root;$6$") and secret[40:60] not in r.stderr
    run_dir, _ = run
    for name in ("best.pt", "last.pt"):  # a checkpoint that names another file as its training data
        ckpt = torch.load(run_dir / name, weights_only=True)
        ckpt["prep"]["source"] = str(workdir / "shadow")
        atomic_save(ckpt, run_dir / name)
    r = cli("eval", run_dir)
    assert refused(r, "changed since the run was trained") and "root" not in r.stderr.replace(str(workdir), "")


def test_a_command_whose_stdout_closes_before_it_prints_ends_quietly(run, workdir):
    for args in (["runs"], ["predict", "runs/t", str(run[1])], ["configs"]):
        p = subprocess.Popen([*NNTRAIN, *args], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout.close()  # the reader is gone before anything is written
        err = p.stderr.read().decode()
        assert p.wait(timeout=120) == 128 + signal.SIGPIPE and err == "", (args, err)


def test_a_yaml_key_that_cannot_be_a_key_is_a_clear_error(workdir, cli):
    (workdir / "k.yaml").write_text("data: {path: sklearn:iris}\n? [a, b]\n: 1\n")
    assert refused(cli("fit", workdir / "k.yaml"), "found unhashable key")


def test_force_replaces_an_export_of_its_own_in_a_run_folder(run, cli):
    run_dir, _ = run
    args = ("export", run_dir, "--format", "torchscript", "-o", run_dir / "mine.pt")
    assert cli(*args).exit_code == 0
    assert refused(cli(*args), "exists; add --force")
    assert cli(*args, "--force").exit_code == 0
