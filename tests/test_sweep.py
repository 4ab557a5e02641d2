"""nntrain sweep: the search space checked up front, trials as run folders, shared studies without a trial lost
or run twice (SQLite here; PostgreSQL when NNTRAIN_TEST_POSTGRES names a server), pruned trials marked."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from nntrain.config.loading import load_config
from nntrain.errors import UserError

from .conftest import NNTRAIN, is_png, make_table, write_config

optuna = pytest.importorskip("optuna")

POSTGRES = os.environ.get("NNTRAIN_TEST_POSTGRES")


def sweep_config(workdir: Path, data: Path, sweep: dict, **sections) -> Path:
    return write_config(workdir / "s.yaml", data, sweep=sweep, **{"train": {"epochs": 3, "batch_size": 32}, **sections})


def load_study(url: str, name: str):
    return optuna.load_study(study_name=name, storage=url)


def test_a_component_s_arguments_are_tried_with_the_names_the_sweep_gives_it(workdir, table_csv):
    from nntrain.tools.sweep_space import plan

    space = {"optimizer.name": ["sgd"], "optimizer.momentum": [0.9, 0.5], "trials": 2}
    cfg = load_config(sweep_config(workdir, table_csv(n=100), space, optimizer={"name": "adam", "lr": 0.01}), [])
    assert sorted(d.key for d in plan(cfg).dims) == ["optimizer.momentum", "optimizer.name"]
    cfg = load_config(sweep_config(workdir, table_csv(n=100), {**space, "optimizer.name": ["adamw"]}), [])
    with pytest.raises(UserError, match="sweep.optimizer.momentum: '.*' has no argument 'momentum'"):
        plan(cfg)


def test_every_sweep_problem_is_reported_at_once(workdir, table_csv, cli):
    cfg = sweep_config(
        workdir,
        table_csv(n=100),
        {
            "optimizer.lrr": [0.1, 0.01],
            "optimizer.name": ["sgd", "adamm"],
            "optimizer.lr": {"low": 0.1, "high": 0.01},
            "model.dropout": {"low": 0.0, "high": 0.5, "log": True},
            "direction": "maximize",
            "pruner": {"name": "median", "n_warmup": 3},
            "data.target": ["y", "a"],
        },
    )
    r = cli("sweep", str(cfg))
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    err = r.stderr
    assert "7 problem(s) in the sweep section" in err
    assert "sweep.data.target: trials on different targets cannot be ranked against each other" in err
    assert "sweep.optimizer.lrr: 'adam' has no argument 'lrr' (did you mean 'lr'?)" in err
    assert "sweep.optimizer.name=adamm: unknown optimizer (did you mean 'adam'?)" in err
    assert "sweep.optimizer.lr: low (0.1) must be below high (0.01)" in err
    assert "sweep.model.dropout: a log range needs low above 0" in err
    assert "sweep.direction=maximize: train.monitor=val_loss is better when lower" in err
    assert "sweep.pruner: median(n_warmup=3) is invalid" in err
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())


def test_grid_needs_listed_values(workdir, table_csv, cli):
    cfg = sweep_config(workdir, table_csv(n=100), {"optimizer.lr": {"low": 1e-3, "high": 1e-1, "log": True}})
    r = cli("sweep", str(cfg), "--grid")
    assert r.exit_code == 2 and "optimizer.lr is a range without a step" in r.stderr


def test_grid_runs_every_combination_once_and_writes_results(workdir, table_csv, cli):
    cfg = sweep_config(
        workdir, table_csv(n=150), {"optimizer.name": ["sgd", "adam"], "model.hidden": [[8], [8, 8]], "pruner": "none"}
    )
    r = cli("sweep", str(cfg), "--grid", "--study", "g", "--trials", "6", "--json")
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["trials"] == {"complete": 4}  # the grid's 4 points, said so (was: '4 trials in all' alone)
    assert "4 trials in all (the grid's every point; --trials 6 asked for more)" in r.stderr
    study = load_study(f"sqlite:///{workdir / 'runs' / 'sweeps.db'}", "g")
    combos = sorted((t.params["optimizer.name"], t.params["model.hidden"]) for t in study.trials)
    assert combos == [("adam", "[8, 8]"), ("adam", "[8]"), ("sgd", "[8, 8]"), ("sgd", "[8]")]
    root = workdir / "runs" / "g"
    assert sorted(p.name for p in root.glob("trial-*")) == [f"trial-{i:04d}" for i in range(4)]
    for t in study.trials:  # each trial is a normal run folder with its own overrides applied
        run = Path(t.user_attrs["run_dir"])
        saved = yaml.safe_load((run / "config.yaml").read_text())
        assert saved["optimizer"]["name"] == t.params["optimizer.name"]
        assert (run / "summary.json").is_file() and (run / "curves.png").is_file()
    best = load_config(root / "best.yaml")  # a ready config: valid as it stands
    assert best.optimizer["name"] == result["best_params"]["optimizer.name"] and best.sweep is None
    assert "trials.csv" in os.listdir(root) and is_png(root / "optimization_history.png")
    # each trial's line: its validation value and its own training time, never its test score unless asked
    lines = [line for line in r.stderr.splitlines() if line.startswith("trial ")]
    seconds = [json.loads((Path(t.user_attrs["run_dir"]) / "summary.json").read_text()) for t in study.trials]
    assert len(lines) == 4 and not any("test" in line for line in lines)
    assert {f"{s['train_seconds']:.1f} s)" for s in seconds} == {line.rsplit("(", 1)[1] for line in lines}
    shown = cli("sweep", str(cfg), "--grid", "--study", "shown", "sweep.show_test=true")
    assert shown.exit_code == 0 and sum("(test accuracy=" in line for line in shown.stdout.splitlines()) == 4


def test_a_diverged_trial_fails_and_the_sweep_goes_on_but_one_none_of_whose_trials_completed_exits_3(
    workdir, table_csv, cli
):
    """A trial at lr 1e30 fails and the others run (exit 0, best.yaml); when every trial diverged there is no
    best.yaml to train, and the exit code and a line say so, as cv's every fold diverged does (was: exit 0, no
    word; a script's next `nntrain fit runs/S/best.yaml` found no file)."""
    data = table_csv(n=100)
    cfg = sweep_config(workdir, data, {"optimizer.lr": [0.01, 1e30], "pruner": "none"}, optimizer={"name": "sgd"})
    r = cli("sweep", str(cfg), "--grid", "--study", "some")
    assert r.exit_code == 0, r.stderr
    assert "failed: training diverged" in r.stdout and (workdir / "runs" / "some" / "best.yaml").is_file()
    cfg = sweep_config(workdir, data, {"optimizer.lr": [1e30, 1e31], "pruner": "none"}, optimizer={"name": "sgd"})
    r = cli("sweep", str(cfg), "--grid", "--study", "none")
    assert r.exit_code == 3 and "no trial of study none completed (2 failed): no best.yaml" in r.stderr
    assert (workdir / "runs" / "none" / "trials.csv").is_file() and not (
        workdir / "runs" / "none" / "best.yaml"
    ).exists()
    r = cli("sweep", str(cfg), "--grid", "--study", "none", "--json")  # continued: the study as it is, said again
    assert r.exit_code == 3 and json.loads(r.stdout)["trials"] == {"fail": 2}


def test_a_sweep_stopped_by_a_bad_data_value_runs_its_trials_once_the_value_is_fixed(workdir, table_csv, cli):
    """data.target=nope stops the sweep (exit 2); its claimed trials are queued again, so the grid study,
    continued with the target fixed, trains every point (was: they were failed, the grid counted them as done:
    the continued sweep trained nothing and said no trial completed)."""
    cfg = sweep_config(workdir, table_csv(n=100), {"optimizer.lr": [0.01, 0.03]})
    r = cli("sweep", str(cfg), "data.target=nope", "--grid", "--study", "b")
    assert r.exit_code == 2 and "data.target=nope: no such column" in r.stderr
    r = cli("sweep", str(cfg), "--grid", "--study", "b")
    assert r.exit_code == 0, r.output
    trials = load_study(f"sqlite:///{workdir / 'runs' / 'sweeps.db'}", "b").trials
    done = sorted(t.params["optimizer.lr"] for t in trials if t.state.name == "COMPLETE")
    assert done == ["0.01", "0.03"] and (workdir / "runs" / "b" / "best.yaml").is_file()


def test_a_pruned_trial_leaves_a_marked_run_folder(workdir, table_csv, cli):
    cfg = sweep_config(
        workdir,
        table_csv(n=150),
        {"optimizer.lr": [1e-7], "pruner": {"name": "threshold", "upper": 0.5, "n_warmup_steps": 0}},
        optimizer={"name": "sgd", "lr": 0.01},
    )
    r = cli("sweep", str(cfg), "--trials", "1", "--study", "p")
    assert r.exit_code == 0, r.stderr
    assert "pruned by the sweep's threshold pruner at epoch 1" in r.stdout
    summary = json.loads((workdir / "runs" / "p" / "trial-0000" / "summary.json").read_text())
    assert summary["stopped"].startswith("pruned") and summary["epochs_run"] == 1
    assert load_study(f"sqlite:///{workdir / 'runs' / 'sweeps.db'}", "p").trials[0].state.name == "PRUNED"
    listing = cli("runs")
    assert "p/trial-0000" in listing.stdout and "1/3 pruned" in listing.stdout


def run_two_workers(workdir: Path, cfg: Path, storage: str | None, study: str, trials: int) -> None:
    cmd = [*NNTRAIN, "sweep", str(cfg), "--trials", str(trials), "--study", study]
    cmd += ["--storage", storage] if storage else []
    procs = [
        subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_processes_share_a_study_without_losing_or_repeating_a_trial(workdir, table_csv, backend):
    if backend == "postgresql" and not POSTGRES:
        pytest.skip("NNTRAIN_TEST_POSTGRES is not set (.ci/run starts a server and sets it)")
    cfg = sweep_config(
        workdir,
        table_csv(n=150),
        {"optimizer.lr": {"low": 1e-3, "high": 1e-1, "log": True}, "model.hidden": [[8], [16]], "pruner": "none"},
    )
    study = f"shared-{uuid.uuid4().hex[:8]}"
    url = POSTGRES if backend == "postgresql" else None
    run_two_workers(workdir, cfg, url, study, trials=6)
    trials = load_study(url or f"sqlite:///{workdir / 'runs' / 'sweeps.db'}", study).trials
    assert sorted(t.number for t in trials) == list(range(6))  # six trials, not seven: none started twice
    assert all(t.state.name == "COMPLETE" for t in trials)
    folders = sorted(t.user_attrs["run_dir"] for t in trials)
    assert len(set(folders)) == 6  # each trial trained once, in its own folder
    on_disk = sorted(str(p.resolve()) for p in (workdir / "runs" / study).glob("trial-*"))
    assert on_disk == folders
    assert all((workdir / f / "summary.json").is_file() for f in folders)


@pytest.mark.slow
def test_a_study_continued_from_another_working_folder_finishes(workdir, table_csv):
    """Worker 2 works in another folder; the best trial is worker 1's, stored (as an older nntrain did) relative
    to worker 1's folder: its config comes from the study's base config and the trial's values."""
    (workdir / "A").mkdir(), (workdir / "B").mkdir()
    cfg = sweep_config(workdir / "A", table_csv("A/t.csv", n=120), {"optimizer.lr": [0.01], "pruner": "none"})
    url = f"sqlite:///{workdir / 'shared.db'}"

    def worker(folder: str, trials: int) -> subprocess.CompletedProcess:
        cmd = [*NNTRAIN, "sweep", str(cfg), "--trials", str(trials), "--study", "s", "--storage", url]
        return subprocess.run(cmd, cwd=workdir / folder, capture_output=True, text=True, timeout=300)

    assert worker("A", 1).returncode == 0
    study = load_study(url, "s")
    (first,) = study.trials
    assert Path(first.user_attrs["run_dir"]).is_absolute()
    with sqlite3.connect(workdir / "shared.db") as db:  # as an older nntrain stored it
        db.execute("UPDATE trial_user_attributes SET value_json = ? WHERE key = 'run_dir'", ['"runs/s/trial-0000"'])
    r = worker("B", 2)
    assert r.returncode == 0, r.stderr
    best = yaml.safe_load((workdir / "B/runs/s/best.yaml").read_text())
    assert best["optimizer"]["lr"] == 0.01 and best["model"]["hidden"] == [8]
    assert Path(load_study(url, "s").trials[1].user_attrs["run_dir"]).is_absolute()


def test_a_study_continued_with_another_search_space_is_refused_naming_the_key(workdir, table_csv, cli):
    """A sweep continued on its study after the sweep section changed: an Optuna traceback ('CategoricalDistribution
    does not support dynamic value space'), or trials of two spaces mixed in one study. Refused, naming each
    key with its old and new space and what to do; the study is left as it was."""
    data = table_csv(n=100)
    space = {"optimizer.name": ["sgd", "adam"], "model.dropout": {"low": 0.0, "high": 0.3}, "pruner": "none"}
    assert cli("sweep", sweep_config(workdir, data, space), "--trials", "1", "--study", "s").exit_code == 0
    changed = (
        ({"optimizer.name": ["sgd", "adamw"]}, "sweep.optimizer.name: [sgd, adam] -> [sgd, adamw]"),
        (
            {"model.dropout": {"low": 0.0, "high": 0.5}},
            "sweep.model.dropout: {low: 0.0, high: 0.3} -> {low: 0.0, high: 0.5}",
        ),
        ({"model.dropout": [0.1, 0.2]}, "sweep.model.dropout: {low: 0.0, high: 0.3} -> [0.1, 0.2]"),
        ({"optimizer.lr": [0.1, 0.01]}, "sweep.optimizer.lr: not searched in the study -> [0.1, 0.01]"),
    )
    for given, named in changed:
        r = cli("sweep", sweep_config(workdir, data, {**space, **given}), "--trials", "2", "--study", "s")
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert named in r.stderr and "study s in sqlite:///" in r.stderr and "--study" in r.stderr, r.stderr
    gone = {k: v for k, v in space.items() if k != "model.dropout"}
    r = cli("sweep", sweep_config(workdir, data, gone), "--trials", "2", "--study", "s")
    assert r.exit_code == 2 and "sweep.model.dropout: {low: 0.0, high: 0.3} -> not searched" in r.stderr, r.output
    assert len(load_study(f"sqlite:///{workdir / 'runs' / 'sweeps.db'}", "s").trials) == 1
    r = cli("sweep", sweep_config(workdir, data, space), "--trials", "2", "--study", "s")  # the old space goes on
    assert r.exit_code == 0, r.output
    assert len(load_study(f"sqlite:///{workdir / 'runs' / 'sweeps.db'}", "s").trials) == 2


def test_fit_ignores_the_sweep_section(workdir, table_csv, cli):
    cfg = sweep_config(workdir, table_csv(n=100), {"optimizer.lr": [0.1, 0.01]})
    r = cli("fit", str(cfg))
    assert r.exit_code == 0, r.stderr
    assert len(list((workdir / "runs").glob("*/summary.json"))) == 1


def test_an_unreachable_server_is_a_clear_error_with_the_password_hidden(workdir, table_csv, cli):
    cfg = sweep_config(workdir, table_csv(n=100), {"optimizer.lr": [0.1, 0.01]})
    r = cli("sweep", str(cfg), "--storage", "postgresql://u:secret@127.0.0.1:1/db")
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert "--storage postgresql://u:***@127.0.0.1:1/db: cannot open it" in r.stderr and "secret" not in r.stderr


@pytest.mark.parametrize("study", ["..", "../../x", "/tmp/abs", ".hidden", "a/b"])
def test_a_study_name_names_one_folder_inside_runs_dir(workdir, table_csv, cli, study):
    cfg = sweep_config(workdir, table_csv(n=100), {"optimizer.lr": [0.1, 0.01]})
    r = cli("sweep", str(cfg), "--study", study)
    assert r.exit_code == 2 and f"--study {study}: use letters, digits" in r.stderr and "Traceback" not in r.stderr
    assert not (workdir / "runs").exists() and not (workdir / "trials.csv").exists()


@pytest.mark.parametrize(
    "url, hidden",
    [
        ("postgresql://u:secret@h:5432/db", "secret"),
        ("postgresql://:secret@host/db", "secret"),
        ("postgresql://u:p@secret@host/db", "secret"),
        ("postgresql://host/db?password=secret&sslmode=disable", "secret"),
    ],
)
def test_the_storage_password_is_masked_in_every_form(url, hidden):
    from nntrain.tools.studies import masked

    shown = masked(url)
    assert hidden not in shown and "***" in shown and shown.split("://")[0] == "postgresql"


def test_a_storage_url_that_does_not_parse_is_a_clear_error(workdir, table_csv, cli):
    cfg = sweep_config(workdir, table_csv(n=100), {"optimizer.lr": [0.1, 0.01]})
    r = cli("sweep", str(cfg), "--storage", "postgresql://u:pw@host:notaport/db")
    assert r.exit_code == 2 and "not a database URL" in r.stderr and "Traceback" not in r.stderr
    assert "pw@" not in r.stderr


def test_a_sqlite_storage_in_a_folder_not_there_yet_is_made_as_runs_dir_is(workdir, table_csv, cli):
    """--storage sqlite:///FOLDER/s.db with FOLDER not there: a FileNotFoundError traceback from the claim lock.
    The folder is made, as fit makes runs_dir; one that cannot be (a file in the way) is named, exit 2."""
    cfg = sweep_config(workdir, table_csv(n=100), {"optimizer.lr": [0.1], "pruner": "none"})
    r = cli("sweep", str(cfg), "--trials", "1", "--storage", f"sqlite:///{workdir}/no/such/s.db")
    assert r.exit_code == 0, r.output
    assert len(load_study(f"sqlite:///{workdir}/no/such/s.db", "t").trials) == 1
    (workdir / "afile").write_text("")
    r = cli("sweep", str(cfg), "--trials", "1", "--storage", "sqlite:///afile/s.db")
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "--storage sqlite:///afile/s.db: cannot make its folder afile" in r.stderr, r.stderr


def test_a_sweep_waiting_on_the_claim_lock_says_who_holds_it(workdir, table_csv):
    import fcntl

    cfg = sweep_config(workdir, table_csv(n=100), {"optimizer.lr": [0.1, 0.01]})
    (workdir / "runs").mkdir()
    with open(workdir / "runs" / "sweeps.db.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(f"{os.getpid()}\n")
        f.flush()
        p = subprocess.Popen(
            [*NNTRAIN, "sweep", str(cfg), "--grid"],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        line = p.stdout.readline()
        assert (
            f"waiting for the study's claim lock ({workdir / 'runs' / 'sweeps.db.lock'}), held by process "
            f"{os.getpid()}" in line
        ), line
    out, _ = p.communicate(timeout=300)  # the lock is released: it goes on
    assert p.returncode == 0 and "2 complete" in out


def test_a_killed_workers_trial_is_failed_and_run_again_so_every_grid_point_completes(workdir, table_csv):
    cfg = sweep_config(
        workdir,
        table_csv(n=300),
        {"model.hidden": [[8], [12], [4]], "heartbeat": 1, "pruner": "none"},
        train={"epochs": 50, "batch_size": 8},  # long enough that the kill lands in trial 0
    )
    cmd = [*NNTRAIN, "sweep", str(cfg), "--grid", "--study", "k"]
    first = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    metrics = workdir / "runs" / "k" / "trial-0000" / "metrics.csv"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.stat().st_size > 0):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    first.kill()  # SIGKILL: trial 0 stays RUNNING in the study, its heartbeat stops
    first.wait()
    second = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    trials = load_study(f"sqlite:///{workdir / 'runs' / 'sweeps.db'}", "k").trials
    done = sorted(str(t.params["model.hidden"]) for t in trials if t.state.name == "COMPLETE")
    assert done == ["[12]", "[4]", "[8]"]  # every grid point, the killed one included
    assert [t.state.name for t in trials if t.number == 0] == ["FAIL"]
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    killed = next(t for t in trials if t.number == 0)  # its retry went on from the dead worker's last save
    retry = next(t for t in trials if t.state.name == "COMPLETE" and t.params == killed.params)
    assert retry.user_attrs["run_dir"] == killed.user_attrs["run_dir"] == str(metrics.parent.resolve())
    assert [int(row["epoch"]) for row in csv.DictReader(metrics.open())] == list(range(1, 51))


def test_a_database_that_stops_answering_mid_sweep_is_a_clear_error(workdir, table_csv):
    cfg = sweep_config(
        workdir,
        table_csv(n=300),
        {"model.hidden": [[8], [12], [4], [6]], "pruner": "none"},
        train={"epochs": 60, "batch_size": 8},
    )
    p = subprocess.Popen(
        [*NNTRAIN, "sweep", str(cfg), "--grid", "--study", "gone"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    second_trial = workdir / "runs" / "gone" / "trial-0001"
    deadline = time.monotonic() + 120
    while not second_trial.is_dir():
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.05)
    db = workdir / "runs" / "sweeps.db"
    db.unlink()
    db.mkdir()  # the database file is gone and cannot be made again
    _, err = p.communicate(timeout=300)
    assert p.returncode == 2 and "the study's database stopped answering" in err and "Traceback" not in err


def test_a_running_trial_that_never_beat_does_not_hold_the_sweep(workdir, table_csv, cli):
    """A trial left RUNNING by an nntrain without heartbeats never goes stale; a worker does not wait for it."""
    cfg = sweep_config(workdir, table_csv(n=100), {"optimizer.lr": [0.1, 0.01], "heartbeat": 1})
    (workdir / "runs").mkdir()
    url = f"sqlite:///{workdir / 'runs' / 'sweeps.db'}"
    old = optuna.create_study(study_name="old", storage=url)
    old.ask()  # RUNNING, no heartbeat, no worker
    r = cli("sweep", str(cfg), "--study", "old", "--trials", "3")
    assert r.exit_code == 0, r.stderr
    states = sorted(t.state.name for t in load_study(url, "old").trials)
    assert states == ["COMPLETE", "COMPLETE", "RUNNING"]


def test_a_sweep_stopped_by_ctrl_c_is_finished_by_the_same_command(workdir, table_csv):
    """SIGINT mid-trial: the trials in progress (two stacked members and a group still waiting) are failed and
    queued again; the printed command, the sweep itself, goes on with each from its last save in its folder
    and writes best.yaml."""
    cfg = sweep_config(
        workdir,
        table_csv(n=300),
        {"optimizer.lr": [0.01, 0.03], "model.hidden": [[8], [4]], "pruner": "none"},
        train={"epochs": 40, "batch_size": 8},  # long enough that the signal lands in the first group
    )
    cmd = [*NNTRAIN, "sweep", str(cfg), "--grid", "--study", "c"]
    first = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = workdir / "runs" / "c" / "trial-0000" / "metrics.csv"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.stat().st_size > 0):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    assert f"Resume with: nntrain sweep {cfg} --study c --grid" in err and "fit --resume" not in err
    url = f"sqlite:///{workdir / 'runs' / 'sweeps.db'}"
    assert sorted(t.state.name for t in load_study(url, "c").trials) == ["FAIL"] * 4 + ["WAITING"] * 4
    second = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    trials = load_study(url, "c").trials
    done = sorted((t.params["optimizer.lr"], t.params["model.hidden"]) for t in trials if t.state.name == "COMPLETE")
    assert done == [("0.01", "[4]"), ("0.01", "[8]"), ("0.03", "[4]"), ("0.03", "[8]")]  # every grid point once
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    assert (workdir / "runs" / "c" / "best.yaml").is_file() and "4 complete, 4 fail" in second.stdout
    folders = sorted((workdir / "runs" / "c").glob("trial-*"))  # each retry went on in its first try's folder
    assert [d.name for d in folders] == ["trial-0000", "trial-0001", "trial-0002", "trial-0003"]
    assert sorted(t.user_attrs["run_dir"] for t in trials if t.state.name == "COMPLETE") == [str(d) for d in folders]
    for d in folders:  # one run of 40 epochs each, none begun again
        assert [int(row["epoch"]) for row in csv.DictReader((d / "metrics.csv").open())] == list(range(1, 41))


def test_a_sweep_takes_a_dataframe_as_fit_does_and_its_trials_score_as_on_its_csv_file(workdir):
    """nntrain.sweep(config, data=frame) was a TypeError (no argument data), though fit and fit_seeds take one.
    Its trials train on the frame as on the same table written to CSV: the same values and best trial; the frame
    is stored once under runs/.data and every trial's config.yaml, and best.yaml, name it."""
    import nntrain

    df = make_table(90, cat=True).round(3)  # CSV text that reads back as the same numbers
    df.to_csv(workdir / "t.csv", index=False)
    space = {"optimizer.lr": [0.01, 0.03], "pruner": "none"}
    cfg = sweep_config(workdir, "t.csv", space, train={"epochs": 2, "batch_size": 16, "plots": False, "threads": 1})
    on_csv = nntrain.sweep(cfg, grid=True, study="csv", log=None)
    on_frame = nntrain.sweep(cfg, ["data.path=elsewhere.csv"], grid=True, study="frame", data=df, log=None)
    assert on_frame["trials"] == {"complete": 2}
    for key in ("best_trial", "best_value", "best_params"):
        assert on_csv[key] == on_frame[key], key
    tables = [(Path(r["root"]) / "trials.csv").read_text().splitlines() for r in (on_csv, on_frame)]
    values = [[t["value"] for t in csv.DictReader(lines)] for lines in tables]
    assert values[0] == values[1] and len(values[0]) == 2
    (stored,) = (workdir / "runs" / ".data").glob("*.parquet")
    named = [load_config(p).data.path for p in (workdir / "runs" / "frame").glob("*/config.yaml")]
    named.append(load_config(workdir / "runs" / "frame" / "best.yaml").data.path)
    assert len(named) == 3 and {Path(n).name for n in named} == {stored.name}
    with pytest.raises(UserError, match="^data: the DataFrame has no rows"):
        nntrain.sweep(cfg, grid=True, study="empty", data=df.iloc[:0], log=None)
    with pytest.raises(UserError, match="^data: give a pandas DataFrame or a file path, not int"):
        nntrain.sweep(cfg, grid=True, study="int", data=5, log=None)
    assert not (workdir / "runs" / "empty").exists() and len(list((workdir / "runs" / ".data").iterdir())) == 1


def test_a_trial_that_diverged_before_ctrl_c_is_told_failed_not_trained_again(workdir, table_csv):
    """SIGINT while a stacked batch trains: its member that had diverged already is queued again with the
    others; the continued sweep tells it failed from its folder, as it does a trial that had completed (was:
    resumed from its last save and trained until it diverged again)."""
    cfg = sweep_config(
        workdir,
        table_csv(n=300),
        {"optimizer.lr": [0.01, 1e30], "pruner": "none"},
        optimizer={"name": "sgd"},
        train={"epochs": 40, "batch_size": 8},
    )
    cmd = [*NNTRAIN, "sweep", str(cfg), "--grid", "--study", "d"]
    first = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root, deadline = workdir / "runs" / "d", time.monotonic() + 120
    while not any(m.stat().st_size > 0 for m in root.glob("trial-*/metrics.csv")):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    diverged = [s for s in root.glob("trial-*/summary.json") if json.loads(s.read_text())["status"] == "diverged"]
    assert len(diverged) == 1
    before = diverged[0].read_bytes()
    second = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert diverged[0].read_bytes() == before  # not trained again
    assert "failed: training diverged" in second.stdout and "1 complete" in second.stdout
