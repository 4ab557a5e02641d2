"""Many models for the price of one: the stacked engine (nntrain/stack.py) against the same models one by one.

    python benchmarks/stacked.py            # the three figures below (a few minutes on 2 cores)
    python benchmarks/stacked.py --tiny     # small sizes: a check that it runs (what the tests do)

1. epochs  The phone setting (configs/phone.yaml: 20-64-128-4, ReLU, dropout 0.2, SGD with momentum, L1,
           batch 32; the real table from ../shared/data when it is there, else the repository's synthetic
           one): the seconds of an epoch (training and validation, metrics.csv's `seconds`) of 8 and 16
           members trained together (seeds 0..K-1, each its own split and scaling) over one member's alone,
           median over the epochs, alternated rounds in this one process.
2. sweep   `nntrain sweep --grid` of 16 trials (optimizer.lr x seed, 4 x 4) on the same table: the whole
           command's wall time with the default batching over the same with --batch 1, each in a fresh
           process and a fresh runs folder.
3. big     A seeded 1,000,000 x 50 float32 table, 50-256-256-4, batch 1024, Adam: training steps of 4
           stacked members against one member's fused step, on all cores; the member-rows per second of the
           4 together over one member's alone, i.e. the time of 4 members one after another over the time of
           the 4 together (>= 0.9: batching must not lose where the arithmetic dominates). Steps on the
           matrix in memory (the data path is benchmarks/load.py's), median of alternated rounds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "phone_price.csv"
sys.path.insert(0, str(REPO))


def phone_config(workdir: Path, epochs: int | None, plots: bool = False, **extra) -> Path:
    """configs/phone.yaml on the phone table; `epochs` None: the config's own (200)."""
    raw = yaml.safe_load((REPO / "configs" / "phone.yaml").read_text())
    raw["data"]["path"] = str(REAL if REAL.exists() else REPO / "data" / "phone_price.csv")
    raw["train"].update(plots=plots, checkpoint_every=3600, **({"epochs": epochs} if epochs else {}))
    raw["runs_dir"] = str(workdir / "runs")
    raw.update(extra)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "phone.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def epoch_seconds(run_dirs: list[str]) -> float:
    """The median epoch of the first run (the members of one batch share their epochs' wall time)."""
    import csv

    with open(Path(run_dirs[0]) / "metrics.csv") as f:
        rows = [float(r["seconds"]) for r in csv.DictReader(f)]
    return statistics.median(rows[1:] if len(rows) > 2 else rows)


def bench_epochs(workdir: Path, sizes: list[int], epochs: int, rounds: int) -> dict[int, float]:
    from nntrain.config.loading import load_config
    from nntrain.engine.run_groups import fit_many

    path = phone_config(workdir, epochs)
    found: dict[int, list[float]] = {k: [] for k in [1, *sizes]}
    for r in range(rounds):
        for k in [1, *sizes]:
            cfgs = [load_config(path, [f"seed={s}"], name=f"e{r}-{k}-{s}") for s in range(k)]
            results = fit_many(cfgs, log=lambda m: None)
            found[k].append(epoch_seconds([res["run_dir"] for res in results]))
    return {k: statistics.median(v) for k, v in found.items()}


def bench_sweep(workdir: Path, epochs: int | None, lrs: int, seeds: int) -> dict[str, float]:
    """Whole `nntrain sweep` commands as a user runs them: plots and all."""
    grid = {"optimizer.lr": [0.003, 0.01, 0.03, 0.1][:lrs], "seed": list(range(seeds)), "pruner": "none"}
    times = {}
    for batch in ("1", "auto"):
        folder = workdir / f"sweep-{batch}"
        path = phone_config(folder, epochs, plots=True, sweep=grid)
        cmd = [sys.executable, "-m", "nntrain", "sweep", str(path), "--grid", "--json"]
        cmd += ["--batch", "1"] if batch == "1" else []
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
        times[batch] = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"sweep --batch {batch} failed:\n{proc.stdout}\n{proc.stderr}")
    return times


def bench_big(rows: int, features: int, hidden: list[int], batch: int, k: int, steps: int, rounds: int) -> dict:
    import torch

    from nntrain.config.components import build
    from nntrain.config.loading import load_config
    from nntrain.engine.fused import FusedStep
    from nntrain.engine.stacked import FusedStack, Stack
    from nntrain.engine.stacked_optim import stacked_optimizer
    from nntrain.model.mlp import build_mlp

    torch.set_num_threads(os.cpu_count() or 1)
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(rows, features, generator=gen)
    y = (X[:, :4].argmax(1)).long()
    spec = {"name": "adam", "lr": 1e-3}
    raw = {"data": {"path": "x"}, "model": {"hidden": hidden}, "optimizer": spec}
    cfg = load_config(None, raw=raw)

    def lone_step():
        model = build_mlp(cfg.model, features, 4)
        fused = FusedStep(model, cfg, "multiclass")
        opt = build("optimizer", spec, model.parameters())

        def step(idx):
            fused.loss_and_grads(X[idx], y[idx])
            opt.step()

        return step

    def stacked_step():
        models = [build_mlp(cfg.model, features, 4) for _ in range(k)]
        stack = Stack(models)
        fused = FusedStack(stack, [0.0] * k, "cross_entropy")
        opt = stacked_optimizer(stack, [build("optimizer", spec, m.parameters()) for m in models], [spec] * k)

        def step(idx):
            fused.loss_and_grads(X[idx[0]], y[idx])
            opt.step()

        return step

    def rate(step, members: int) -> float:
        idx = torch.randint(0, rows, (steps + 3, max(members, 1), batch), generator=gen)
        one = members == 0
        for s in range(3):
            step(idx[s, 0] if one else idx[s])
        t0 = time.perf_counter()
        for s in range(3, steps + 3):
            step(idx[s, 0] if one else idx[s])
        return (max(members, 1) * batch * steps) / (time.perf_counter() - t0)

    lone, stacked = [], []
    for _ in range(rounds):
        lone.append(rate(lone_step(), 0))
        stacked.append(rate(stacked_step(), k))
    return {"lone": statistics.median(lone), "stacked": statistics.median(stacked)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()
    import torch

    tiny = args.tiny
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, Python {sys.version[:6]}")
    print(f"phone table: {'the real one' if REAL.exists() else 'the synthetic stand-in (no ../shared/data)'}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sizes = [2] if tiny else [8, 16]
        ep = bench_epochs(work / "e", sizes, epochs=3 if tiny else 12, rounds=1 if tiny else 3)
        print("\n### epochs: phone setting, seconds per epoch (median), K members together over one alone")
        print("| members | s per epoch | over one member | per member |")
        print("|---|---|---|---|")
        for k, s in ep.items():
            print(f"| {k} | {s:.4f} | {s / ep[1]:.2f}x | {s / ep[1] / k:.3f}x |")
        sw = bench_sweep(work, epochs=2 if tiny else None, lrs=2 if tiny else 4, seeds=2 if tiny else 4)
        n = (2 if tiny else 4) ** 2
        print(f"\n### sweep: {n}-trial grid (optimizer.lr x seed), configs/phone.yaml's epochs, whole command")
        print(f"--batch 1: {sw['1']:.1f} s; default batching: {sw['auto']:.1f} s; ratio: {sw['auto'] / sw['1']:.2f}x")
        big = bench_big(
            rows=20_000 if tiny else 1_000_000,
            features=50,
            hidden=[32, 32] if tiny else [256, 256],
            batch=256 if tiny else 1024,
            k=4,
            steps=5 if tiny else 60,
            rounds=1 if tiny else 3,
        )
        print("\n### big: 1M x 50, [256, 256], batch 1024, Adam: member-rows per second")
        print(
            f"one member: {big['lone']:,.0f}; 4 stacked: {big['stacked']:,.0f}; "
            f"4 stacked over one member alone: {big['stacked'] / big['lone']:.2f}x"
        )


if __name__ == "__main__":
    main()
