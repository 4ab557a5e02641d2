"""PNG plots for a run folder: each file is a real, non-blank, small image of the expected size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")

from matplotlib.image import imread

from nntrain.runs.plots import compare_plot, curve_plots, prediction_plots

from .conftest import PNG_SIGNATURE

SMALL = (400, 600, 4)  # 6x4 inches at dpi 100, RGBA
WIDE = (360, 1200, 4)  # curves.png: loss, metric and lr side by side, 12x3.6 inches


def metrics_frame(epochs: int = 12, diagnostics: bool = True, task: str = "multiclass", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    e = np.arange(1, epochs + 1)
    df = pd.DataFrame(
        {
            "epoch": e,
            "train_loss": 2.0 * np.exp(-0.4 * e) + 0.01,
            "val_loss": 2.2 * np.exp(-0.3 * e) + 0.05 + rng.uniform(0, 0.02, epochs),
        }
    )
    if task == "regression":
        df["val_mse"] = df["val_loss"]
        df["val_r2"] = 1 - df["val_loss"]
    else:
        df["val_accuracy"] = np.minimum(0.5 + 0.05 * e, 0.98)
        df["val_f1_macro"] = df["val_accuracy"] - 0.02
    df["lr"] = 1e-2 * 0.1 ** (e // 4)  # StepLR(step_size=4, gamma=0.1): spans 1000x
    df["seconds"] = 0.1 * e
    if diagnostics:
        for layer, scale in (("fc1", 1.0), ("fc2", 0.3)):
            df[f"grad_norm.{layer}"] = scale * np.exp(-0.2 * e)
            df[f"saturated_frac.{layer}"] = np.linspace(0.0, 0.2, epochs)
        df["dead_frac.fc1"] = np.linspace(0.05, 0.4, epochs)
        df["dead_frac.fc2"] = np.nan  # output-side layer without ReLU: no dead fraction
    return df


def write_metrics(run_dir: Path, df: pd.DataFrame) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(run_dir / "metrics.csv", index=False)
    return run_dir


def assert_png(path: Path, shape: tuple[int, int, int] = SMALL) -> None:
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size < 150_000
    img = imread(path)
    assert img.shape == shape
    assert (img != img[0, 0]).any(), "blank image: one pixel value everywhere"


def no_tmp_left(folder: Path) -> None:
    assert not list(folder.rglob("*.tmp*")), list(folder.rglob("*.tmp*"))


def test_curve_plots_with_diagnostics(tmp_path):
    run = write_metrics(tmp_path / "run", metrics_frame())
    written = curve_plots(run, "val_accuracy")
    assert sorted(p.name for p in written) == ["curves.png", "diagnostics.png"]
    assert_png(run / "curves.png", WIDE)
    assert_png(run / "diagnostics.png", (760, 750, 4))  # three stacked panels: 7.5 x (1 + 3 * 2.2) inches
    no_tmp_left(tmp_path)


def test_curve_plots_without_diagnostics(tmp_path):
    run = write_metrics(tmp_path / "run", metrics_frame(diagnostics=False, task="regression"))
    written = curve_plots(run, "val_loss")
    assert [p.name for p in written] == ["curves.png"]
    assert not (run / "diagnostics.png").exists()
    assert_png(run / "curves.png", WIDE)
    no_tmp_left(tmp_path)


def test_curve_plots_one_diagnostic_panel_and_missing_columns(tmp_path):
    df = metrics_frame()[["epoch", "grad_norm.fc1", "grad_norm.fc2"]]  # no losses, no monitor, no lr
    run = write_metrics(tmp_path / "run", df)
    assert [p.name for p in curve_plots(run, "val_f1_macro")] == ["curves.png", "diagnostics.png"]
    assert_png(run / "diagnostics.png", (320, 750, 4))  # one panel: 7.5 x (1 + 2.2)


def test_binary_writes_confusion_roc_pr(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p1 = np.clip(0.3 * y + rng.uniform(0, 0.7, 200), 0, 1)
    written = prediction_plots(tmp_path, "binary", y, np.column_stack([1 - p1, p1]), classes=["no", "yes"])
    assert sorted(p.name for p in written) == ["confusion_matrix.png", "pr.png", "roc.png"]
    for p in written:
        assert_png(p)
    no_tmp_left(tmp_path)


def test_multiclass_writes_confusion_only(tmp_path):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 150)
    logits = rng.normal(size=(150, 4)) + 2.0 * np.eye(4)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    written = prediction_plots(tmp_path, "multiclass", y, proba, classes=["low", "medium", "high", "very high"])
    assert [p.name for p in written] == ["confusion_matrix.png"]
    assert_png(tmp_path / "confusion_matrix.png")
    assert not (tmp_path / "roc.png").exists()
    assert not (tmp_path / "pr.png").exists()


def test_regression_writes_pred_vs_true_and_residuals(tmp_path):
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 300)
    pred = y + rng.normal(0, 0.8, 300)
    written = prediction_plots(tmp_path, "regression", y, pred)
    assert sorted(p.name for p in written) == ["pred_vs_true.png", "residuals.png"]
    for p in written:
        assert_png(p)
    no_tmp_left(tmp_path)


def test_every_plot_says_which_run_and_which_rows_it_shows(tmp_path, monkeypatch):
    import nntrain.runs.plots as plots

    said, save = {}, plots.save_png
    monkeypatch.setattr(plots, "save_png", lambda fig, path, **kw: said.setdefault(path.name, fig) and save(fig, path))
    run = tmp_path / "house"
    run.mkdir()
    rng = np.random.default_rng(3)
    y = rng.normal(50_000, 20_000, 300)  # prices: wide numbers on the axes
    prediction_plots(run, "regression", y, y + rng.normal(0, 5_000, 300))
    prediction_plots(run, "binary", (y > 50_000).astype(int), np.stack([np.full(300, 0.4), np.full(300, 0.6)], 1))
    for name in ("pred_vs_true.png", "residuals.png", "confusion_matrix.png", "roc.png", "pr.png"):
        assert said[name].get_suptitle() == "house: the test split, 300 rows", name
    ticks = [t for t in said["residuals.png"].axes[0].get_xticks() if t > 0]
    assert len(ticks) <= 6  # few enough that 50,000-like labels do not run together
    pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "lr": [0.1, 0.1]}).to_csv(
        run / "metrics.csv", index=False
    )
    curve_plots(run, "val_loss")
    assert said["curves.png"].get_suptitle().startswith("house: train_loss on the training rows")


def test_binary_single_class_skips_roc_and_pr(tmp_path):
    rng = np.random.default_rng(4)
    p1 = rng.uniform(size=30)
    written = prediction_plots(tmp_path, "binary", np.ones(30, dtype=int), np.column_stack([1 - p1, p1]))
    assert [p.name for p in written] == ["confusion_matrix.png"]
    assert not (tmp_path / "roc.png").exists()
    assert not (tmp_path / "pr.png").exists()


def test_no_rows_writes_nothing(tmp_path):
    assert prediction_plots(tmp_path, "binary", np.array([], dtype=int), np.empty((0, 2))) == []
    assert prediction_plots(tmp_path, "regression", np.array([]), np.array([])) == []
    assert list(tmp_path.iterdir()) == []


def test_compare_plot_two_runs(tmp_path):
    runs = {"baseline": metrics_frame(seed=0), "wider": metrics_frame(epochs=9, diagnostics=False, seed=1)}
    out = compare_plot(runs, tmp_path / "compare" / "val_accuracy.png", "val_accuracy")
    assert out == tmp_path / "compare" / "val_accuracy.png"
    assert_png(out, (400, 1200, 4))
    no_tmp_left(tmp_path)


def test_threshold_curves_match_scikit_learn():
    """The ROC and PR points are computed with numpy (no scikit-learn import at the end of every fit)."""
    skm = pytest.importorskip("sklearn.metrics")
    from nntrain.metrics import threshold_curves

    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(5, 300))
        y = np.r_[0, 1, rng.integers(0, 2, n)]
        p = np.round(rng.random(n + 2), int(rng.integers(1, 4)))  # ties, as real scores have
        c = threshold_curves(y, p)
        fpr, tpr, _ = skm.roc_curve(y, p, drop_intermediate=False)
        precision, recall, _ = skm.precision_recall_curve(y, p)
        assert np.allclose(c["fpr"], fpr) and np.allclose(c["tpr"], tpr)
        assert np.allclose(c["precision"][1:], precision[::-1][1:]) and np.allclose(c["recall"], recall[::-1])
        assert c["average_precision"] == pytest.approx(skm.average_precision_score(y, p))
