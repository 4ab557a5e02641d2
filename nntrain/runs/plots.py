"""PNG plots for a run folder, drawn on a bare Agg Figure: no pyplot state, so they work headless and in threads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nntrain import metrics as M
from nntrain.runs.files import write_atomic

DPI = 100
FIGSIZE = (6.0, 4.0)
DIAGNOSTICS = {"grad_norm": "grad norm", "dead_frac": "dead fraction", "saturated_frac": "saturated fraction"}


def _figure(figsize: tuple[float, float] = FIGSIZE) -> Figure:
    """Fixed margins rather than a layout engine: constrained layout doubled the time to draw a figure."""
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)  # attach Agg now, rather than savefig switching canvases per call
    wide = figsize[0] > 8
    fig.subplots_adjust(
        left=0.06 if wide else 0.15,
        right=0.98 if wide else 0.96,
        bottom=0.13 if wide else 0.12,
        top=0.9,
        wspace=0.3,
        hspace=0.45,
    )
    return fig


def origin(fig: Figure, text: str) -> Figure:
    """Which run and which rows a figure shows, in small print above its panels."""
    fig.suptitle(text, fontsize="small", color="dimgray", y=0.995)
    fig.subplots_adjust(top=min(fig.subplotpars.top, 1 - 0.55 / fig.get_figheight()))
    return fig


def save_png(fig: Figure, path: Path, **savefig: Any) -> Path:
    options = {"dpi": DPI, **savefig}
    write_atomic(path, lambda f: fig.savefig(f, format="png", **options))  # a reader never sees half a PNG
    return path


def _style(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if xlabel == "epoch" or not xlabel:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5
    ax.grid(True, alpha=0.3)


def _single(title: str, xlabel: str, ylabel: str):
    """One styled axes on a fresh small figure: the shape of most plots here."""
    fig = _figure()
    ax = fig.subplots()
    _style(ax, title, xlabel, ylabel)
    return fig, ax


def _spans(values, factor: float) -> bool:
    """Log scale only helps when everything is positive and the range is wide."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    return v.size > 0 and bool((v > 0).all()) and v.max() / v.min() > factor


def _epochs(df: pd.DataFrame) -> tuple[pd.Series, dict]:
    """x values, and markers for short runs (points isolated between NaNs stay visible); long runs read as lines."""
    x = df["epoch"] if "epoch" in df else pd.Series(np.arange(1, len(df) + 1), index=df.index)
    return x, {"marker": "o" if len(df) <= 40 else "", "markersize": 3}


def _column(df: pd.DataFrame, metric: str) -> str | None:
    """Accept `accuracy` as well as `val_accuracy`."""
    return next((name for name in (metric, f"val_{metric}") if name in df), None)


def curve_plots(run_dir: Path, monitor: str) -> list[Path]:
    """Training curves from metrics.csv, the first place to look when a run went wrong: curves.png (loss,
    monitored metric, learning rate side by side; one figure, since each figure costs about 0.2 s to draw)
    and diagnostics.png."""
    run_dir = Path(run_dir)
    df = pd.read_csv(run_dir / "metrics.csv")
    if df.empty:
        return []
    diagnostics = _diagnostics_png(df, run_dir / "diagnostics.png", run_dir.name)
    return [_curves_png(df, run_dir / "curves.png", monitor, run_dir.name), *([diagnostics] if diagnostics else [])]


def _curves_png(df: pd.DataFrame, path: Path, monitor: str, run: str) -> Path:
    x, mk = _epochs(df)
    rows = f"{run}: train_loss on the training rows (the loss alone), val_ on the validation rows"
    fig = origin(_figure((12.0, 3.6)), rows)
    ax_loss, ax_metric, ax_lr = fig.subplots(1, 3)
    _style(ax_loss, "loss", "epoch", "loss")
    for c in (c for c in ("train_loss", "val_loss", "train_l1_penalty") if c in df):
        ax_loss.plot(x, df[c], label=c, **mk, **({"linestyle": ":"} if c == "train_l1_penalty" else {}))
    if _spans(df[[c for c in ("train_loss", "val_loss") if c in df]], 20):
        ax_loss.set_yscale("log")
    if ax_loss.lines:
        ax_loss.legend()

    col = _column(df, monitor)
    _style(ax_metric, col or monitor, "epoch", col or monitor)
    if col is not None and df[col].notna().any():
        s = df[col]
        ax_metric.plot(x, s, label=col, **mk)
        best = s.idxmax() if M.maximize(col) else s.idxmin()
        ax_metric.axvline(x[best], color="gray", linestyle="--", linewidth=1)
        ax_metric.plot([x[best]], [s[best]], marker="*", markersize=12, color="C3", linestyle="", label="best")
        ax_metric.set_title(f"{col}: best {s[best]:.4g} at epoch {x[best]}")
        ax_metric.legend()

    _style(ax_lr, "learning rate", "epoch", "lr")
    if "lr" in df:
        ax_lr.plot(x, df["lr"], drawstyle="steps-post")
        if _spans(df["lr"], 10):
            ax_lr.set_yscale("log")
    return save_png(fig, path)


def _diagnostics_png(df: pd.DataFrame, path: Path, run: str) -> Path | None:
    """One panel per kind of diagnostic column (grad_norm.fc1, dead_frac.fc1, ...), a line per layer."""
    x, mk = _epochs(df)
    panels = {p: [c for c in df.columns if c.startswith(p + ".")] for p in DIAGNOSTICS}
    panels = {p: cols for p, cols in panels.items() if cols}
    if not panels:
        return None
    fig = _figure((7.5, 1.0 + 2.2 * len(panels)))
    fig.subplots_adjust(left=0.12, right=0.85, top=1 - 0.45 / fig.get_figheight(), bottom=0.55 / fig.get_figheight())
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (prefix, cols) in zip(axes, panels.items()):
        log = prefix == "grad_norm"  # norms span decades; fractions live in [0, 1]
        for c in cols:
            y = df[c].astype(float).where(lambda v: v > 0) if log else df[c].astype(float)
            if y.notna().any():  # NaN stays a gap, never a zero
                ax.plot(x, y, label=c.removeprefix(prefix + "."), **mk)
        if log and ax.lines:
            ax.set_yscale("log")
        elif not log:
            ax.set_ylim(-0.02, 1.02)
        _style(ax, DIAGNOSTICS[prefix], "", DIAGNOSTICS[prefix])
        if ax.lines:  # beside the axes: with many layers a legend inside hides the lines
            ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1].set_xlabel("epoch")
    origin(fig, f"{run}: gradient norms on the training rows, unit fractions on the validation rows")
    return save_png(fig, path)


def prediction_plots(run_dir: Path, task: str, y_true, output, classes: list[str] | None = None) -> list[Path]:
    """Where the model is wrong, not just how much: confusion, ROC/PR, or residuals; of the test split."""
    run_dir = Path(run_dir)
    y = np.asarray(y_true).ravel()
    out = np.asarray(output, dtype=float)
    if y.size == 0 or out.size == 0:
        return []
    shown = f"{run_dir.name}: the test split, {y.size:,} rows"
    if task == "regression":
        return _regression_plots(run_dir, y.astype(float), out.ravel(), shown)
    return _classification_plots(run_dir, y.astype(int), out, classes, shown)  # out: (n, k) class probabilities


def _classification_plots(
    run_dir: Path, y: np.ndarray, proba: np.ndarray, classes: list[str] | None, shown: str
) -> list[Path]:
    k = proba.shape[1]
    pred = proba.argmax(axis=1)
    cm = M.confusion(y, pred, k)
    labels = [str(c) for c in classes] if classes is not None and len(classes) == k else [str(i) for i in range(k)]
    fig, ax = _single(f"confusion matrix (accuracy {np.mean(pred == y):.4g})", "predicted", "true")
    ax.grid(False)
    im = ax.imshow(cm, cmap="Blues", vmin=0)
    fig.colorbar(im, ax=ax)
    if k <= 20:  # beyond that the numbers overlap
        for i, j in np.ndindex(cm.shape):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize="small",
                color="white" if cm[i, j] > max(cm.max(), 1) / 2 else "black",
            )
    rotate = max(len(s) for s in labels) > 4
    ax.set_xticks(range(k), labels, rotation=45 if rotate else 0, ha="right" if rotate else "center")
    ax.set_yticks(range(k), labels)
    written = [save_png(origin(fig, shown), run_dir / "confusion_matrix.png")]

    if k != 2 or len(np.unique(y)) < 2:  # ROC and PR need both classes
        return written
    p = proba[:, 1]
    c = M.threshold_curves(y, p)
    fig, ax = _single("ROC curve", "false positive rate", "true positive rate")
    ax.plot(c["fpr"], c["tpr"], label=f"AUC = {M.roc_auc(y, p):.4g}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="chance")
    ax.legend(loc="lower right")
    written.append(save_png(origin(fig, shown), run_dir / "roc.png"))

    rate = float(np.mean(y == 1))
    fig, ax = _single("precision-recall curve", "recall", "precision")
    ax.plot(c["recall"], c["precision"], drawstyle="steps-post", label=f"AP = {c['average_precision']:.4g}")
    ax.axhline(rate, linestyle="--", color="gray", label=f"positive rate = {rate:.4g}")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="lower left")
    written.append(save_png(origin(fig, shown), run_dir / "pr.png"))
    return written


def _regression_plots(run_dir: Path, y: np.ndarray, pred: np.ndarray, shown: str) -> list[Path]:
    ok = np.isfinite(y) & np.isfinite(pred)
    y, pred = y[ok], pred[ok]
    if y.size == 0:
        return []
    size, alpha = (12, 0.6) if y.size <= 2000 else (4, 0.3)
    r2 = M.regression(y, pred)["r2"]
    said = f"R² = {r2:.4g}" if np.isfinite(r2) else "R² undefined: the target is constant"
    fig, ax = _single(f"predicted vs true ({said})", "true", "predicted")
    ax.scatter(y, pred, s=size, alpha=alpha)
    lo, hi = min(y.min(), pred.min()), max(y.max(), pred.max())
    ax.plot([lo, hi], [lo, hi], linestyle="--", color="gray", label="y = x")
    ax.legend(loc="upper left")
    written = [save_png(origin(fig, shown), run_dir / "pred_vs_true.png")]

    resid = y - pred
    fig = _figure()
    ax, hist = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 1]})
    ax.scatter(pred, resid, s=size, alpha=alpha)
    ax.axhline(0, linestyle="--", color="gray")
    _style(ax, "residuals (true - predicted)", "predicted", "residual")
    hist.hist(resid, bins=min(30, max(5, y.size // 10)), orientation="horizontal", color="C0", alpha=0.7)
    hist.axhline(0, linestyle="--", color="gray")
    _style(hist, "distribution", "count", "")
    for axis in (ax.xaxis, ax.yaxis, hist.xaxis):  # wide numbers (prices) ran together at matplotlib's default
        axis.set_major_locator(MaxNLocator(nbins=4 if axis is hist.xaxis else 5))
    written.append(save_png(origin(fig, shown), run_dir / "residuals.png"))
    return written


def compare_plot(runs: dict[str, pd.DataFrame], out: Path, metric: str, shown: str | None = None) -> Path:
    """Several runs on shared axes, to see which setting helped and when; `shown`: which runs and rows."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = _figure((12.0, 4.0))
    axes = fig.subplots(1, 3)
    label = next((c for c in (_column(df, metric) for df in runs.values()) if c), metric)
    for i, (name, df) in enumerate(runs.items()):
        x, mk = _epochs(df)
        for ax, col in zip(axes, ("val_loss", _column(df, metric), "lr")):
            if col is not None and col in df:
                kw = {"drawstyle": "steps-post"} if col == "lr" else mk
                ax.plot(x, df[col], color=f"C{i % 10}", label=name, **kw)
    lrs = [df["lr"] for df in runs.values() if "lr" in df]
    if lrs and _spans(pd.concat(lrs), 10):
        axes[2].set_yscale("log")
    for ax, col in zip(axes, ("val_loss", label, "lr")):
        _style(ax, col, "epoch", col)
    for ax in [ax for ax in axes if ax.lines][:1]:  # one legend is enough: colors match across panels
        ax.legend(fontsize="small")
    return save_png(origin(fig, shown) if shown else fig, out)


def importance_png(table: pd.DataFrame, path: Path, metric: str, shown: str, most: int = 30) -> Path:
    """Permutation importance as horizontal bars (the most important on top), the spread as error bars."""
    shown = table.head(most).iloc[::-1]
    fig = _figure((7.0, max(2.5, 0.3 * len(shown) + 1.2)))
    fig.subplots_adjust(left=0.3)
    ax = fig.subplots()
    _style(ax, f"permutation importance ({metric} made worse)", f"mean change of {metric} for the worse", "")
    ax.barh([str(c) for c in shown["column"]], shown["importance"], xerr=shown["std"], color="tab:blue", alpha=0.8)
    ax.axvline(0, color="gray", linewidth=1)
    return save_png(origin(fig, shown), path)


def lr_find_png(rows: pd.DataFrame, path: Path, suggested: float, shown: str) -> Path:
    """The range test: the loss (faint) and its smoothed curve against the rate on a log axis, the suggestion
    marked."""
    fig, ax = _single("learning-rate range test", "learning rate", "training loss")
    ax.set_xscale("log")
    ax.plot(rows["lr"], rows["loss"], color="tab:blue", alpha=0.25, linewidth=1, label="loss")
    ax.plot(rows["lr"], rows["smoothed"], color="tab:blue", label="smoothed")
    ax.axvline(suggested, color="tab:red", linestyle="--", linewidth=1, label=f"suggested {suggested:.3g}")
    top = rows["smoothed"].iloc[: max(2, len(rows) // 10)].max()  # the settling start sets the scale, not a blow-up
    ax.set_ylim(rows["smoothed"].min() * 0.9, max(top, rows["smoothed"].min()) * 1.1)
    ax.legend()
    return save_png(origin(fig, shown), path)


def reliability_png(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, shown: str, bins: int = 15) -> Path:
    """A reliability diagram: per confidence bin of the top class, its accuracy against its mean confidence, one
    line per set of probabilities (e.g. before and after calibration); the diagonal is perfect calibration."""
    fig, ax = _single(f"reliability (top class; {bins} bins)", "mean confidence", "accuracy")
    origin(fig, shown)
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfectly calibrated")
    for label, (proba, y) in curves.items():
        conf, right = proba.max(axis=1), proba.argmax(axis=1) == y
        which = np.minimum((conf * bins).astype(int), bins - 1)
        used = [b for b in range(bins) if (which == b).any()]
        ax.plot(
            [conf[which == b].mean() for b in used], [right[which == b].mean() for b in used], marker="o", label=label
        )
    ax.legend(loc="upper left")
    return save_png(fig, path)
