"""Time nntrain's training loop against the ways people usually write one.

    python benchmarks/bench.py            # phone table + 1M-row table + whole commands (several minutes)
    python benchmarks/bench.py --tiny     # small sizes, two loops at a time: a check that each runs (the tests)

Each loop can also run alone: python benchmarks/bench.py --loop NAME --setting phone|1m [--tiny] prints one
JSON line (BENCH-RESULT {...}) with its per-epoch seconds.

Loops compared, each in its own Python process so that none inherits another's thread settings, warm
caches or allocator state:

  reference         the course script's loop (../shared/phone_reference.py): DataLoader(TensorDataset),
                    shuffle=True, zero_grad/backward/step, validation batch by batch with .item()
  autograd          a bare loop: tensors in memory, one randperm per epoch, slices, no per-step .item()
  nntrain-fused     nntrain's own loop (nntrain.engine.state.start + nntrain.engine.loop.train) with train.engine: fused
  nntrain-fused-nodiag  the same with train.diagnostics: false (what the per-layer diagnostics cost)
  nntrain-autograd  the same with train.engine: autograd
  lightning         a LightningModule + Trainer      (only with `pip install -e ".[bench]"`)
  skorch            a NeuralNetClassifier            (only with `pip install -e ".[bench]"`)

Settings:

  phone  the reference script's model 20-64-128-4, ReLU, dropout 0.2, SGD lr 0.01 momentum 0.9, batch 32,
         cross-entropy; 1,600 training rows (the script's train_test_split(test_size=0.2, random_state=42))
         with standardized features; an epoch is training plus validation. Steady state: the median of
         epochs 6-40.
  1m     a seeded synthetic table of 1,000,000 x 50 float32 features and 4 classes; 50-256-256-4, ReLU,
         no dropout, batch 1024, same SGD; 800,000 training rows. Median of epochs 2-3.

nntrain splits the table itself (test, then validation), so it is given test 5% + validation 15%: the same
number of training rows as the others, but 15% of the rows to validate on where they have 20%; the table
shows both counts.

The table reports ms per epoch (training + validation; checkpoint writes are left out of every loop),
training samples per second, and each loop's time over the reference loop's (0.35: about 3x faster).
These are benchmarks, not tests: the test suite only checks that `--tiny` runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"  # the course material, next to the repository
REAL_PHONE = SHARED / "data" / "phone_price.csv"
SYNTHETIC_PHONE = REPO / "data" / "phone_price.csv"
REFERENCE_SCRIPT = SHARED / "phone_reference.py"

LOOPS = ["reference", "autograd", "nntrain-fused", "nntrain-fused-nodiag", "nntrain-autograd", "lightning", "skorch"]
REQUIRED = LOOPS[:5]  # the ones that need nothing beyond nntrain's own dependencies
EXTRA = {"lightning": "lightning", "skorch": "skorch"}  # loop -> module that must be importable
RESULT_PREFIX = "BENCH-RESULT "  # frameworks print their own chatter; the parent looks for this line only


@dataclass(frozen=True)
class Setting:
    name: str
    hidden: tuple[int, ...]
    dropout: float
    batch: int
    epochs: int
    warmup: int  # epochs left out of the median: the first ones pay for allocations and lazy init
    rows: int | None = None  # synthetic settings only: rows of the generated table
    features: int = 50


def setting(name: str, tiny: bool) -> Setting:
    if name == "phone":
        # The phone table is small enough to keep at full size; --tiny only trains fewer epochs.
        return Setting("phone", (64, 128), 0.2, 32, epochs=8 if tiny else 40, warmup=2 if tiny else 5)
    return Setting("1m", (256, 256), 0.0, 1024, epochs=2 if tiny else 3, warmup=1, rows=20_000 if tiny else 1_000_000)


# ---------------------------------------------------------------- data (in the child processes)


def phone_table() -> tuple[Path, str]:
    if REAL_PHONE.is_file():
        return REAL_PHONE, f"the Kaggle table {REAL_PHONE}"
    return SYNTHETIC_PHONE, f"the repository's SYNTHETIC {SYNTHETIC_PHONE.relative_to(REPO)} ({REAL_PHONE} is absent)"


def synthetic_frame(s: Setting):
    """rows x features standard-normal floats; the class is the quartile of a random linear score plus noise,
    so the four classes are balanced and learnable but not perfectly. Seeded: every process gets the same."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    X = rng.standard_normal((s.rows, s.features), dtype=np.float32)
    score = X @ rng.standard_normal(s.features).astype(np.float32) + rng.standard_normal(s.rows, dtype=np.float32)
    y = np.digitize(score, np.quantile(score, [0.25, 0.5, 0.75])).astype(np.int64)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(s.features)])
    frame["y"] = y
    return frame


def write_synthetic(s: Setting, folder: Path) -> str:
    """The synthetic table as a file, for nntrain, which reads its data from data.path."""
    frame = synthetic_frame(s)
    if importlib.util.find_spec("pyarrow"):
        path = folder / "synthetic.parquet"
        frame.to_parquet(path)
    else:  # CSV: slower to write and read, the same rows
        path = folder / "synthetic.csv"
        frame.to_csv(path, index=False)
    return str(path)


def reference_split(s: Setting, table: str | None):
    """The reference script's split (test_size=0.2, random_state=42; its test rows are its validation rows),
    with the features standardized on the training rows (the script does not scale; unscaled, its model
    stays at chance, and a benchmark of a model that learns nothing would be beside the point)."""
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    frame = pd.read_csv(table) if s.name == "phone" else synthetic_frame(s)
    X, y = frame.iloc[:, :-1].to_numpy(), frame.iloc[:, -1].to_numpy()
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.2, random_state=42)
    scaler = StandardScaler().fit(X_train)
    return (
        scaler.transform(X_train).astype(np.float32),
        y_train.astype(np.int64),
        scaler.transform(X_val).astype(np.float32),
        y_val.astype(np.int64),
    )


# ---------------------------------------------------------------- the model every hand-written loop uses


def make_net(n_in: int, s: Setting, n_out: int = 4):
    import torch
    from torch import nn

    class Net(nn.Module):
        """The reference script's PhonePriceNet, with the hidden sizes and dropout of the setting."""

        def __init__(self):
            super().__init__()
            sizes = [n_in, *s.hidden]
            self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
            self.out = nn.Linear(sizes[-1], n_out)
            # No dropout module at p=0: nntrain leaves it out too, and it would cost a call per layer.
            self.dropout = nn.Dropout(s.dropout) if s.dropout else None

        def forward(self, x):
            for fc in self.hidden:
                x = torch.relu(fc(x))
                if self.dropout is not None:
                    x = self.dropout(x)
            return self.out(x)

    return Net()


def seed_everything() -> None:
    import random

    import numpy as np
    import torch

    random.seed(42)
    np.random.seed(42)
    torch.manual_seed(42)


# ---------------------------------------------------------------- the loops; each returns seconds per epoch


def loop_reference(s: Setting, table: str | None) -> dict:
    """As phone_reference.py writes it, minus its torch.save of the best model (no loop here is timed
    with its checkpoint writes)."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    seed_everything()
    Xtr, ytr, Xva, yva = (torch.tensor(a) for a in reference_split(s, table))
    train_loader = DataLoader(TensorDataset(Xtr, ytr), batch_size=s.batch, shuffle=True)
    val_loader = DataLoader(TensorDataset(Xva, yva), batch_size=s.batch, shuffle=False)
    model = make_net(Xtr.shape[1], s)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    seconds = []
    for _ in range(s.epochs):
        t0 = time.perf_counter()
        model.train()
        for xb, yb in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for xb, yb in val_loader:
                preds = torch.argmax(model(xb), dim=1)
                correct += (preds == yb).sum().item()
                total += yb.size(0)
        accuracy = correct / total
        seconds.append(time.perf_counter() - t0)
    return {"seconds": seconds, "train_rows": len(Xtr), "val_rows": len(Xva), "val_accuracy": accuracy}


def loop_autograd(s: Setting, table: str | None) -> dict:
    """The same model and optimizer without a DataLoader: the rows are already tensors, so an epoch is one
    permutation and a slice per step; the loss stays on the tensor side (no host sync per step), and the
    validation rows go through the model in one batch."""
    import torch
    from torch import nn

    if s.name == "phone":
        torch.set_num_threads(1)  # at 32 x 64 x 128 a second thread costs more to start than it saves
    seed_everything()
    Xtr, ytr, Xva, yva = (torch.tensor(a) for a in reference_split(s, table))
    model = make_net(Xtr.shape[1], s)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    n = len(Xtr)
    seconds = []
    for _ in range(s.epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n)
        total = torch.zeros(())
        for start in range(0, n, s.batch):
            idx = perm[start : start + s.batch]
            loss = criterion(model(Xtr[idx]), ytr[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        model.eval()
        with torch.no_grad():
            accuracy = float((model(Xva).argmax(1) == yva).float().mean())
        train_loss = float(total) / n  # the epoch's one host sync for the training loss
        seconds.append(time.perf_counter() - t0)
    return {
        "seconds": seconds,
        "train_rows": n,
        "val_rows": len(Xva),
        "val_accuracy": accuracy,
        "train_loss": train_loss,
    }


def nntrain_fractions(n_rows: int) -> tuple[float, float, int, int]:
    """data.test_size and data.val_size that leave nntrain exactly the reference's training rows (80%).
    nntrain splits the table itself (test first, then validation out of the rest), so its held-out 20% is
    5% test + 15% validation. sklearn takes ceil(fraction * n) rows for the held-out part; aiming half a
    row low makes the ceiling land on the intended count whatever the float rounding."""
    n_test = n_rows // 20
    n_val = n_rows // 5 - n_test
    return (n_test - 0.5) / n_rows, (n_val - 0.5) / (n_rows - n_test), n_rows - n_test - n_val, n_val


def loop_nntrain(s: Setting, table: str, variant: str) -> dict:
    """nntrain's loop through its library, as `nntrain fit` runs it; the per-epoch seconds are the ones it
    writes to metrics.csv (training + validation of the epoch, without checkpoint writes)."""
    import csv

    from nntrain.config.loading import load_config
    from nntrain.engine.loop import train
    from nntrain.engine.state import start

    engine = variant.removesuffix("-nodiag")
    with tempfile.TemporaryDirectory(prefix="nntrain-bench-runs-") as runs:
        if table is None:  # run on its own (--loop nntrain-* --setting 1m without --table)
            table = write_synthetic(s, Path(runs))
        if s.name == "phone":
            with open(table) as f:
                n_rows = sum(1 for _ in f) - 1  # less the header line
        else:
            n_rows = s.rows
        test_size, val_size, _, _ = nntrain_fractions(n_rows)
        cfg = load_config(
            None,
            raw={
                "name": f"bench-{engine}",
                "seed": 42,
                "device": "cpu",
                "runs_dir": runs,
                "data": {"path": table, "test_size": test_size, "val_size": val_size, "scale": "standard"},
                "model": {"hidden": list(s.hidden), "activation": "relu", "dropout": s.dropout, "init": "default"},
                "loss": "cross_entropy",
                "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
                "scheduler": {"name": "none"},
                "train": {
                    "epochs": s.epochs,
                    "batch_size": s.batch,
                    "engine": engine,
                    "diagnostics": not variant.endswith("-nodiag"),
                },
            },
        )
        run = start(cfg)
        summary = train(run, log=lambda line: None)
        with open(run.run_dir / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    out = {
        "seconds": [float(r["seconds"]) for r in rows],
        "train_rows": summary["rows"]["train"],
        "val_rows": summary["rows"]["val"],
        "val_accuracy": float(rows[-1]["val_accuracy"]),
        "threads": run.threads,
        "path": run.path_note,
    }
    if run.diag is not None:
        out["diagnostics_ms"] = diagnostics_ms(run.diag, summary["rows"]["train"], s.batch)
    return out


def diagnostics_ms(diag, train_rows: int, batch: int, repeats: int = 50) -> float:
    """What the per-layer diagnostics add to one epoch, timed in this process: the sampled gradient norms of
    every step and the activation fractions on the validation rows. Timed apart from the loop, because two
    processes' epoch times differ by more than this on a shared machine."""
    steps = -(-train_rows // batch)
    t0 = time.perf_counter()
    for _ in range(repeats):
        for s in range(steps):
            diag.after_step(s)
        diag.epoch_values()
    return (time.perf_counter() - t0) / repeats * 1000


def loop_lightning(s: Setting, table: str | None) -> dict:
    """A LightningModule as its docs write one, DataLoaders as the reference makes them, validation every
    epoch. An epoch is timed from on_train_epoch_start to on_validation_epoch_end (Lightning runs the
    validation loop before on_train_epoch_end)."""
    import logging
    import warnings

    import lightning as L
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    warnings.filterwarnings("ignore")  # "consider num_workers > 0": the reference uses none either
    logging.getLogger("lightning").setLevel(logging.ERROR)
    seed_everything()
    Xtr, ytr, Xva, yva = (torch.tensor(a) for a in reference_split(s, table))

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = make_net(Xtr.shape[1], s)
            self.criterion = nn.CrossEntropyLoss()

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            return self.criterion(self.net(xb), yb)

        def validation_step(self, batch, batch_idx):
            xb, yb = batch
            self.log("val_acc", (self.net(xb).argmax(1) == yb).float().mean())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)

    class EpochTimer(L.Callback):
        def __init__(self):
            self.seconds, self.t0 = [], None

        def on_train_epoch_start(self, trainer, pl_module):
            self.t0 = time.perf_counter()

        def on_validation_epoch_end(self, trainer, pl_module):
            if not trainer.sanity_checking and self.t0 is not None:
                self.seconds.append(time.perf_counter() - self.t0)
                self.t0 = None

    timer = EpochTimer()
    trainer = L.Trainer(
        max_epochs=s.epochs,
        accelerator="cpu",
        devices=1,
        enable_checkpointing=False,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(
        Module(),
        DataLoader(TensorDataset(Xtr, ytr), batch_size=s.batch, shuffle=True),
        DataLoader(TensorDataset(Xva, yva), batch_size=s.batch, shuffle=False),
    )
    return {
        "seconds": timer.seconds,
        "train_rows": len(Xtr),
        "val_rows": len(Xva),
        "val_accuracy": float(trainer.callback_metrics["val_acc"]),
    }


def loop_skorch(s: Setting, table: str | None) -> dict:
    """A NeuralNetClassifier with a predefined validation set; skorch's own per-epoch 'dur' is the time."""
    import warnings

    import torch
    from skorch import NeuralNetClassifier
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split
    from torch import nn

    warnings.filterwarnings("ignore")
    seed_everything()
    Xtr, ytr, Xva, yva = reference_split(s, table)
    net = NeuralNetClassifier(
        make_net(Xtr.shape[1], s),
        criterion=nn.CrossEntropyLoss,  # skorch's default is NLLLoss
        optimizer=torch.optim.SGD,
        lr=0.01,
        optimizer__momentum=0.9,
        batch_size=s.batch,
        max_epochs=s.epochs,
        iterator_train__shuffle=True,
        train_split=predefined_split(Dataset(Xva, yva)),
        device="cpu",
        verbose=0,
    )
    net.fit(Xtr, ytr)
    return {
        "seconds": list(net.history[:, "dur"]),
        "train_rows": len(Xtr),
        "val_rows": len(Xva),
        "val_accuracy": float(net.history[-1, "valid_acc"]),
    }


def run_child(loop: str, s: Setting, table: str | None) -> None:
    """One loop in this process; prints one JSON line for the parent."""
    import torch

    if loop.startswith("nntrain-"):
        result = loop_nntrain(s, table, loop.removeprefix("nntrain-"))
    else:
        result = {
            "reference": loop_reference,
            "autograd": loop_autograd,
            "lightning": loop_lightning,
            "skorch": loop_skorch,
        }[loop](s, table)
        result["threads"] = torch.get_num_threads()
    print(RESULT_PREFIX + json.dumps({"loop": loop, "setting": s.name, **result}), flush=True)


# ---------------------------------------------------------------- the parent: run every loop, print tables


def steady_ms(seconds: list[float], s: Setting) -> float:
    window = seconds[s.warmup :] or seconds  # e.g. epochs 6-40 of 40
    return 1000 * statistics.median(window)


def spawn(loop: str, s: Setting, tiny: bool, table: str | None, timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--loop", loop, "--setting", s.name]
    cmd += ["--tiny"] if tiny else []
    cmd += ["--table", table] if table else []
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    return {"loop": loop, "error": f"exit {proc.returncode}: {tail}"}


def print_table(s: Setting, results: list[dict], header: str) -> None:
    print(f"\n### {header}\n")
    print(
        "| loop | training rows | validation rows | threads | ms per epoch | samples/s "
        "| x reference (loop ms / reference ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    ref = next((r for r in results if r["loop"] == "reference" and "seconds" in r), None)
    ref_ms = steady_ms(ref["seconds"], s) if ref else None
    for r in results:
        if "seconds" not in r:
            print(f"| {r['loop']} | | | | {r.get('error') or r.get('skipped')} | | |")
            continue
        ms = steady_ms(r["seconds"], s)
        ratio = f"{ms / ref_ms:.2f}" if ref_ms else "n/a"
        print(
            f"| {r['loop']} | {r['train_rows']:,} | {r['val_rows']:,} | {r['threads']} | {ms:.2f} | "
            f"{r['train_rows'] / (ms / 1000):,.0f} | {ratio} |"
        )
    for r in results:
        if "diagnostics_ms" in r and "seconds" in r:
            ms = steady_ms(r["seconds"], s)
            print(
                f"\n{r['loop']}: the per-layer diagnostics cost {r['diagnostics_ms']:.2f} ms per epoch, timed in its "
                f"process ({r['diagnostics_ms'] / ms:.1%} of its {ms:.2f} ms epoch; goal: under 10%)"
            )
    notes = [f"{r['loop']}: {r['path']}" for r in results if r.get("path")]
    accs = ", ".join(f"{r['loop']} {r['val_accuracy']:.3f}" for r in results if "val_accuracy" in r)
    print(f"\nvalidation accuracy after the last epoch (a check that every loop trains): {accs}")
    if notes:
        print("nntrain paths: " + "; ".join(notes))


def time_command(cmd: list[str], repeats: int = 2) -> float:
    """Best wall time of `repeats` runs: the least disturbed by whatever else the machine did."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=600)
        best = min(best, time.perf_counter() - t0)
    return best


def nntrain_command() -> list[str]:
    script = Path(sys.executable).parent / "nntrain"  # the console script of this interpreter's install
    if script.is_file():
        return [str(script)]
    found = shutil.which("nntrain")
    return [found] if found else [sys.executable, "-m", "nntrain"]


def commands(table: Path, tmp: Path) -> None:
    """Whole commands, start-up and imports included: what a user waits for."""
    nn_cmd = nntrain_command()
    print("\n### whole commands (wall seconds, best of 2)\n")
    print("| command | seconds |")
    print("|---|---:|")
    rows = []
    if REFERENCE_SCRIPT.is_file():
        rows.append(
            (
                f"python phone_reference.py {table.name} x.pt 30",
                [sys.executable, str(REFERENCE_SCRIPT), str(table), str(tmp / "x.pt"), "30"],
            )
        )
    else:
        print(f"| python phone_reference.py (skipped: {REFERENCE_SCRIPT} is absent) | |")
    rows += [
        (
            f"nntrain fit configs/phone.yaml data.path={table.name} train.epochs=30",
            [*nn_cmd, "fit", "configs/phone.yaml", f"data.path={table}", "train.epochs=30", f"runs_dir={tmp / 'runs'}"],
        ),
        ("nntrain --help", [*nn_cmd, "--help"]),
        ("nntrain params configs/phone.yaml", [*nn_cmd, "params", "configs/phone.yaml"]),
    ]
    for label, cmd in rows:
        print(f"| {label} | {time_command(cmd):.2f} |", flush=True)
    print(
        "\n(nntrain fit runs configs/phone.yaml as shipped: its split leaves 1,440 training rows, and it adds "
        "L1, weight decay, a cosine schedule and the test evaluation; the reference script trains on 1,600 "
        "unscaled rows and saves its best model.)"
    )


# Under --tiny, 1m runs only these: the other loops' code is the same as on phone, which --tiny already checks.
TINY_1M = ("reference", "nntrain-fused")


def skipped(loop: str, setting_name: str, args: argparse.Namespace) -> str | None:
    """Why a loop is left out of a setting, or None."""
    module = EXTRA.get(loop)
    if module and importlib.util.find_spec(module) is None:
        return 'not installed (pip install -e ".[bench]")'
    if setting_name == "1m" and args.tiny and loop not in TINY_1M:
        return "skipped (--tiny)"
    if module and setting_name == "1m" and args.skip_frameworks_1m:
        return "skipped (--skip-frameworks-1m)"
    return None


def run_loops(s: Setting, args: argparse.Namespace, data_path: str) -> list[dict]:
    """Each loop's result in LOOPS' order, every loop in its own process. One at a time, so that none slows
    another; under --tiny (a check that each runs, its figures meaning little) two at a time."""
    from concurrent.futures import ThreadPoolExecutor

    def one(loop: str) -> dict:
        why = skipped(loop, s.name, args)
        if why:
            return {"loop": loop, "skipped": why}
        print(f"  running {loop} on {s.name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        r = spawn(loop, s, args.tiny, data_path, timeout=args.timeout)
        print(f"  {loop} on {s.name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        return r

    with ThreadPoolExecutor(max_workers=2 if args.tiny else 1) as pool:
        return list(pool.map(one, LOOPS))


def parent(args: argparse.Namespace) -> int:
    table, table_note = phone_table()
    settings = [args.setting] if args.setting else ["phone", "1m"]
    print("# nntrain loop benchmark" + (" (--tiny: sizes too small for the figures to mean much)" if args.tiny else ""))
    import torch

    print(
        f"machine: {platform.processor() or platform.machine()}, os.cpu_count()={os.cpu_count()}, "
        f"torch {torch.__version__} (default threads {torch.get_num_threads()}), Python {platform.python_version()}"
    )
    failed = []
    with tempfile.TemporaryDirectory(prefix="nntrain-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for name in settings:
            s = setting(name, args.tiny)
            if name == "phone":
                data_path = str(table)
                header = (
                    f"phone: {table_note}; 20-64-128-4, dropout 0.2, batch 32; {s.epochs} epochs, "
                    f"median of epochs {s.warmup + 1}-{s.epochs}"
                )
            else:
                # nntrain reads a file; the other loops build the same seeded table in memory.
                data_path = write_synthetic(s, tmp)
                header = (
                    f"1m: synthetic {s.rows:,} x {s.features} float32 (numpy default_rng(0)), 4 classes; "
                    f"{s.features}-256-256-4, no dropout, batch 1024; {s.epochs} epochs, "
                    f"median of epochs {s.warmup + 1}-{s.epochs}"
                )
            load_before = os.getloadavg()[0]
            results = run_loops(s, args, data_path)
            failed += [f"{r['loop']} on {name}" for r in results if "error" in r]
            print_table(s, results, header)
            # Other work on the machine slows the multi-threaded loops most (their threads wait on each
            # other): a load average near or above the core count means the figures above are disturbed.
            print(
                f"load average while it ran: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
                f"(1-minute; {os.cpu_count()} CPUs)"
            )
        if args.commands and not args.tiny:
            commands(table, tmp)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="small sizes and few epochs: a check that it runs")
    ap.add_argument("--setting", choices=["phone", "1m"], help="only this setting (default: both)")
    ap.add_argument("--loop", choices=LOOPS, help="run this one loop in this process and print a JSON line")
    ap.add_argument("--table", help="(with --loop) the phone CSV, or the synthetic table nntrain reads")
    ap.add_argument(
        "--commands",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time whole commands (reference script vs nntrain fit); off with --tiny",
    )
    ap.add_argument("--skip-frameworks-1m", action="store_true", help="leave Lightning and skorch out of 1m")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds allowed per loop process")
    args = ap.parse_args(argv)
    if args.loop:
        s = setting(args.setting or "phone", args.tiny)
        table = args.table or (str(phone_table()[0]) if s.name == "phone" else None)
        run_child(args.loop, s, table)
        return 0
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
