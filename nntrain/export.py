"""Export a run's model with its preprocessing folded in: raw numeric feature rows in, predictions out.

The exported graph is `standardize -> the trained layers -> head`:
  - standardize: NaN -> the training-split value in imputed columns, then (x - shift) / scale, computed in
    float64 and rounded to float32 exactly as encoding.encode does;
  - head: class probabilities through heads.to_proba (the very function `nntrain predict` uses), or the
    regression output back in the target's units through encoding.unscale (in float64, then float32).
Input: float32 [rows, len(columns)], the raw values of prep["columns"] in that order. Categorical columns
are refused: their one-hot encoding takes text, which a float graph cannot.

ONNX goes through torch.onnx.export's torch.export-based exporter (dynamo=True, the default since torch 2.9;
the TorchScript-based one, dynamo=False, warns DeprecationWarning); it needs the `export` extra (onnx,
onnxscript). TorchScript is written with torch.jit.trace, which torch 2.13 deprecates: it still works and is
kept for deployers on LibTorch, but ONNX is the format to prefer.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import Config
from .encoding import unscale
from .errors import Stop, UserError, did_you_mean, first_line
from .heads import to_proba
from .runs import json_bytes, output_file, resolve_run_dir, write_output

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
ONNX_OPSET = 18  # onnxruntime >= 1.14 runs it; torch 2.13 writes 20 unless told
INSTALL_HINT = 'pip install -e ".[export]"'
TORCHSCRIPT_NOTE = (
    "TorchScript is deprecated in torch 2.13 (torch.jit.trace and torch.jit.load warn "
    "DeprecationWarning); prefer --format onnx"
)
INPUT_NAME = "features"
BATCH_DIM = "rows"
# Tolerances of the check each export runs on sample rows before writing anything.
CHECK_ATOL = 1e-4


class ExportFailed(Stop):
    """torch could not export this model, or the exported file disagrees with the model: not the user's mistake."""

    exit_code = 1


class Standardize(nn.Module):
    """Raw float32 feature rows -> the scaled matrix the first layer was trained on.

    As encoding.encode: imputed columns get their fill value for NaN, then (x - shift) / scale in float64, rounded
    once to float32. A NaN in a column that was not imputed stays NaN (nntrain predict refuses such a row)."""

    def __init__(self, shift: list[float], scale: list[float], fill: list[float | None]):
        super().__init__()
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float64))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float64))
        self.impute = any(f is not None for f in fill)
        if self.impute:
            self.register_buffer(
                "fill", torch.tensor([math.nan if f is None else f for f in fill], dtype=torch.float64)
            )
            self.register_buffer("imputed", torch.tensor([f is not None for f in fill]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        if self.impute:
            x = torch.where(torch.isnan(x) & self.imputed, self.fill, x)
        return ((x - self.shift) / self.scale).float()


class Probabilities(nn.Module):
    """Model outputs -> class probabilities: heads.to_proba itself, so an export cannot drift from predict."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg

    def forward(self, out: torch.Tensor) -> torch.Tensor:
        return to_proba(out, self.cfg)


class Unscale(nn.Module):
    """The standardized regression output -> the prediction in the target's units, one value per row."""

    def __init__(self, target_shift: float, target_scale: float):
        super().__init__()
        self.prep = {"target_shift": float(target_shift), "target_scale": float(target_scale)}

    def forward(self, out: torch.Tensor) -> torch.Tensor:
        return unscale(self.prep, out[:, 0].double()).float()


def export_run(run_dir: Path, fmt: str, out: Path | None = None, checkpoint: str = "best", force: bool = False) -> Path:
    """Write RUN_DIR's model (best.pt or last.pt) as ONNX or TorchScript, with its preprocessing folded in,
    and a sidecar FILE.json naming the input columns in order and the outputs. Returns the model file's path.

    Nothing is written unless the exported model matches the checkpoint's model on sample rows."""
    from .inference import load_run

    fmt = _check_format(fmt)
    run_dir = resolve_run_dir(str(run_dir))
    loaded = load_run(run_dir, checkpoint)
    prep = loaded.prep
    _refuse_unexportable(prep)  # before asking for the extra: installing it would not help
    out = _output_path(run_dir, fmt, out, force)
    if fmt == "onnx":
        _require_onnx()
    model = export_model(loaded.model, loaded.cfg, prep)
    sample = sample_rows(prep)
    if fmt == "onnx":
        data = _onnx_bytes(model, sample, prep, run_dir, checkpoint)
        _check_onnx(data, model, sample, prep)
        write_output(out, lambda f: f.write(data), f"-o {out}", durable=True)
    else:
        _write_torchscript(out, model, sample, prep)
    write_sidecar(out, fmt, loaded, checkpoint)
    return out


def sidecar_path(out: Path) -> Path:
    """model.onnx -> model.onnx.json: an ONNX and a TorchScript export in one folder keep their own."""
    return out.with_name(out.name + ".json")


# ---------------------------------------------------------------- checks


def _check_format(fmt: str) -> str:
    key = str(fmt).strip().lower()
    if key not in FORMATS:
        raise UserError(
            f"--format={fmt}: unknown export format{did_you_mean(str(fmt), FORMATS)}; "
            f"choose one of: {', '.join(FORMATS)}"
        )
    return key


def _require_onnx() -> None:
    missing = []
    for module in ("onnx", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise UserError(
            f"--format onnx needs {' and '.join(missing)}, which are not installed; install the export "
            f"extra: {INSTALL_HINT}"
        )


def _output_path(run_dir: Path, fmt: str, out: Path | None, force: bool) -> Path:
    """The model file and its sidecar, both checked as outputs; without -o, the run's own model file, which the
    next export of the run replaces."""
    if out is None:
        return run_dir / f"model{FORMATS[fmt]}"
    out = Path(out)
    if out.is_dir():
        raise UserError(f"-o {out}: is a folder; name the file, e.g. {out / ('model' + FORMATS[fmt])}")
    output_file(out, force)
    output_file(sidecar_path(out), force, shown=f"-o {out} (its sidecar {sidecar_path(out).name})")
    return out


def _refuse_unexportable(prep: dict) -> None:
    categorical = [c for c in prep["columns"] if prep["kinds"][c] != "numeric"]
    if categorical:
        names = ", ".join(repr(c) for c in categorical)
        raise UserError(
            f"export takes numeric features only; categorical column(s) {names} are one-hot encoded from "
            f"their text values, which an exported float model cannot take. Retrain without them "
            f"(data.drop: [{', '.join(categorical)}]) or use nntrain predict"
        )
    bad = [c for c, v in prep["impute"].items() if not _is_number(v)]
    if bad:
        raise UserError(
            f"export: column(s) {', '.join(map(repr, bad))} are imputed with a non-number "
            f"({prep['impute'][bad[0]]!r}); use nntrain predict"
        )


def _is_number(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------- the exported model


def export_model(model: nn.Module, cfg: Config, prep: dict) -> nn.Sequential:
    """standardize -> a float32 eval-mode copy of the trained layers -> probabilities or unscaled prediction.
    Call _refuse_unexportable(prep) first."""
    fill = [float(prep["impute"][c]) if c in prep["impute"] else None for c in prep["columns"]]
    parts: OrderedDict[str, nn.Module] = OrderedDict(standardize=Standardize(prep["shift"], prep["scale"], fill))
    for name, layer in copy.deepcopy(model).named_children():
        if isinstance(layer, nn.RReLU):
            # Its eval-mode forward is a leaky ReLU with the mean slope; the ONNX exporter has no rrelu.
            layer = nn.LeakyReLU((layer.lower + layer.upper) / 2)
        parts[name] = layer
    if prep["task"] == "regression":
        parts["unscale"] = Unscale(prep["target_shift"], prep["target_scale"])
    else:
        parts["proba"] = Probabilities(cfg)
    return nn.Sequential(parts).float().eval()


def output_name(prep: dict) -> str:
    return "prediction" if prep["task"] == "regression" else "probabilities"


def sample_rows(prep: dict, n: int = 7) -> torch.Tensor:
    """Raw-looking rows around the training distribution (shift + scale * noise), with a NaN in each imputed
    column: used as the example input of the export and for the check after it."""
    g = torch.Generator().manual_seed(0)
    shift = torch.tensor(prep["shift"], dtype=torch.float64)
    scale = torch.tensor(prep["scale"], dtype=torch.float64)
    x = (shift + scale * torch.randn(n, len(shift), generator=g, dtype=torch.float64)).float()
    for j, col in enumerate(prep["columns"]):
        if col in prep["impute"]:
            x[j % n, j] = math.nan
    return x


@contextmanager
def _quiet_torch() -> Iterator[None]:
    """torch's own notices, not the user's business: the exporter logs one line per missing torchvision op, its
    pytree code warns a FutureWarning about itself, torch.jit warns that it is deprecated (TORCHSCRIPT_NOTE
    says so once, in our words), and tracing to_proba warns that `out.shape[1] == 1` becomes a constant, which
    it is: the number of outputs is fixed by the checkpoint."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx._internal.exporter._registration", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
        )
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"nntrain\.heads")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def _onnx_bytes(model: nn.Sequential, sample: torch.Tensor, prep: dict, run_dir: Path, checkpoint: str) -> bytes:
    import onnx

    rows = torch.export.Dim(BATCH_DIM)
    try:
        with _quiet_torch(), torch.no_grad():
            program = torch.onnx.export(
                model,
                (sample,),
                None,
                dynamo=True,
                opset_version=ONNX_OPSET,
                verbose=False,
                input_names=[INPUT_NAME],
                output_names=[output_name(prep)],
                dynamic_shapes=({0: rows},),
            )
    except Exception as e:  # noqa: BLE001 - the exporter raises its own types from several layers
        raise ExportFailed(f"torch.onnx.export failed on {run_dir}: {first_line(e, 300)}") from None
    proto = program.model_proto
    onnx.helper.set_model_props(
        proto,
        {
            "nntrain.run": str(run_dir),
            "nntrain.checkpoint": checkpoint,
            "nntrain.columns": json.dumps(prep["columns"]),
            "nntrain.outputs": json.dumps(output_labels(prep)),
        },
    )
    return proto.SerializeToString()


def _check_onnx(data: bytes, model: nn.Module, sample: torch.Tensor, prep: dict) -> None:
    """Run the file in onnxruntime when it is installed; the batch dimension is checked too (1 row, all rows)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    for x in (sample[:1], sample):
        got = session.run(None, {INPUT_NAME: x.numpy()})[0]
        _compare(got, model, x, "onnxruntime")


def _write_torchscript(out: Path, model: nn.Sequential, sample: torch.Tensor, prep: dict) -> None:
    try:
        with _quiet_torch(), torch.no_grad():
            traced = torch.jit.trace(model, (sample,), check_trace=False)
    except Exception as e:  # noqa: BLE001 - as above: any failure of torch's tracer is reported, not a traceback
        raise ExportFailed(f"torch.jit.trace failed: {first_line(e, 300)}") from None
    with torch.no_grad():
        _compare(traced(sample[:1]).numpy(), model, sample[:1], "the traced module")
    with _quiet_torch():
        write_output(out, lambda f: torch.jit.save(traced, f), f"-o {out}", durable=True)


def _compare(got: np.ndarray, model: nn.Module, x: torch.Tensor, what: str) -> None:
    with torch.no_grad():
        want = model(x).numpy()
    if got.shape != want.shape:
        raise ExportFailed(f"{what} gave shape {got.shape} for {len(x)} row(s), the model {want.shape}")
    tol = CHECK_ATOL * np.maximum(1.0, np.abs(want))
    if not np.all((np.abs(got - want) <= tol) | (np.isnan(got) & np.isnan(want))):
        err = float(np.nanmax(np.abs(got - want)))
        raise ExportFailed(
            f"{what} disagrees with the model on sample rows (max difference {err:.3g}); nothing was written"
        )


# ---------------------------------------------------------------- the sidecar


def output_labels(prep: dict) -> list:
    """The output's columns: the class labels in order, or the target's name."""
    return [prep["target"]] if prep["task"] == "regression" else list(prep["classes"])


def write_sidecar(out: Path, fmt: str, loaded: Any, checkpoint: str) -> Path:
    prep = loaded.prep
    n_in = len(prep["columns"])
    regression = prep["task"] == "regression"
    doc = {
        "format": fmt,
        "file": out.name,
        "run_dir": str(loaded.run_dir),
        "checkpoint": checkpoint,
        "epoch": loaded.ckpt.get("epoch"),
        "task": prep["task"],
        "input": {
            "name": INPUT_NAME,
            "dtype": "float32",
            "shape": [BATCH_DIM, n_in],
            "columns": list(prep["columns"]),
            "imputed": {c: float(v) for c, v in prep["impute"].items()},
            "note": "raw values, in this column order; standardization (and NaN -> the imputed value in the "
            "imputed columns) happens inside the model",
        },
        "output": (
            {"name": output_name(prep), "dtype": "float32", "shape": [BATCH_DIM], "target": prep["target"]}
            if regression
            else {
                "name": output_name(prep),
                "dtype": "float32",
                "shape": [BATCH_DIM, len(prep["classes"])],
                "classes": list(prep["classes"]),
                "target": prep["target"],
                "note": "one probability per class, in the order of classes; the prediction is the argmax",
            }
        ),
        "torch": torch.__version__,
    }
    if fmt == "onnx":
        doc["opset"] = ONNX_OPSET
    else:
        doc["note"] = TORCHSCRIPT_NOTE
    path = sidecar_path(out)
    write_output(path, lambda f: f.write(json_bytes(doc)), str(path))
    return path
