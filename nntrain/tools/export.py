"""Export a run's model with its preprocessing folded in: raw feature rows in, predictions out.

The exported graph is `encode -> the trained layers -> head`:
  - encode: as encoding.encode. Numbers: NaN -> the training-split value in imputed columns, then
    (x - shift) / scale, computed in float64 and rounded to float32; a 0/1 "was missing" column per indicator.
    Strings (ONNX only): each column's text -> its level code through an ai.onnx.ml LabelEncoder (a level
    not kept in training -> 0, the unknown level), then one-hot or the embedding's code;
  - head: class probabilities through heads.to_proba (the very function `nntrain predict` uses), or the
    regression output back in the target's units through encoding.unscale (in float64, then float32).
Inputs: `features`, float32 [rows, len(numeric inputs)]: the raw values of the numeric columns and, for each
date column, its parts (year, month, ... as the sidecar lists them, "days" counted from the sidecar's origin);
and, when the run has string columns, `strings`, string [rows, len(string columns)], "" for a missing value.
Unknown levels are encoded as predict encodes them, without predict's warning.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from nntrain.config.schema import Config
from nntrain.data.dates import part_name
from nntrain.data.encoding import CLIP, level_lookup, numeric_names, source_names, unscale
from nntrain.errors import Stop, UserError, did_you_mean, first_line
from nntrain.model.heads import to_proba
from nntrain.runs.folders import json_bytes, output_file, resolve_run_dir, write_output

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
ONNX_OPSET = 18  # onnxruntime >= 1.14 runs it; torch 2.13 writes 20 unless told
INSTALL_HINT = 'pip install -e ".[export]"'
TORCHSCRIPT_NOTE = (
    "TorchScript is deprecated in torch 2.13 (torch.jit.trace and torch.jit.load warn "
    "DeprecationWarning); prefer --format onnx"
)
INPUT_NAME = "features"
STRINGS_NAME = "strings"
CODES_NAME = "codes"  # the level codes the string front hands the torch graph
ML_OPSET = 3  # ai.onnx.ml: LabelEncoder with keys_strings / values_int64
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

    def __init__(self, shift: list[float], scale: list[float], fill: list[float | None], clip: bool = False):
        super().__init__()
        self.clip = clip
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
        x = (x - self.shift) / self.scale
        if self.clip:
            x = x / torch.sqrt(1 + (x / CLIP) ** 2)
        return x.float()


def string_inputs(prep: dict) -> list[str]:
    """The `strings` input's columns: one-hot and embedded columns, in the table's order."""
    return [c for c in prep["columns"] if prep["kinds"][c] in ("categorical", "embedded")]


class Encode(nn.Module):
    """(raw numbers, level codes) -> the matrix the model was trained on, in encoding.encode's column order:
    per column its scaled number or date parts or one-hot block, then the indicators, then the embedded codes."""

    def __init__(self, prep: dict):
        super().__init__()
        numeric, strings = numeric_names(prep), string_inputs(prep)
        fill = [float(prep["impute"][c]) if c in prep["impute"] else None for c in numeric]
        self.standardize = Standardize(prep["shift"], prep["scale"], fill, prep.get("scale_kind") == "robust")
        self.pieces = []  # ("num", start, stop) | ("hot", code column, levels)
        for col in prep["columns"]:
            kind = prep["kinds"][col]
            if kind in ("numeric", "date"):
                names = source_names(prep, col)
                start = numeric.index(names[0])
                self.pieces.append(("num", start, start + len(names)))
            elif kind == "categorical":
                self.pieces.append(("hot", strings.index(col), len(prep["categories"][col])))
        # a date's indicator reads its first part: missing dates have every part missing
        self.indicators = [
            numeric.index(c if c in numeric else part_name(c, prep["dates"][c]["parts"][0]))
            for c in prep.get("indicators", [])
        ]
        self.embedded = [strings.index(c) for c in strings if prep["kinds"][c] == "embedded"]

    def forward(self, features: torch.Tensor, codes: torch.Tensor | None = None) -> torch.Tensor:
        scaled = self.standardize(features)
        out = []
        for kind, a, b in self.pieces:
            if kind == "num":
                out.append(scaled[:, a:b])
            else:
                levels = torch.arange(1, b + 1, device=codes.device, dtype=codes.dtype)
                out.append((codes[:, a : a + 1] == levels).float())
        out += [torch.isnan(features[:, j : j + 1]).float() for j in self.indicators]
        out += [codes[:, j : j + 1].float() for j in self.embedded]
        return torch.cat(out, dim=1)


class Exported(nn.Module):
    """encode -> the trained layers -> head; takes `codes` only when the run has string columns."""

    def __init__(self, encode: Encode, net: nn.Sequential, strings: bool):
        super().__init__()
        self.encode, self.net, self.strings = encode, net, strings

    def forward(self, features: torch.Tensor, codes: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(self.encode(features, codes))


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
    from nntrain.tools.inference import load_run

    fmt = _check_format(fmt)
    run_dir = resolve_run_dir(str(run_dir))
    loaded = load_run(run_dir, checkpoint)
    prep = loaded.prep
    _refuse_unexportable(prep, fmt)  # before asking for the extra: installing it would not help
    out = _output_path(run_dir, fmt, out, force)
    if fmt == "onnx":
        _require_onnx()
    model = export_model(loaded.model, loaded.cfg, prep)
    sample = sample_rows(prep)
    if fmt == "onnx":
        data = _onnx_bytes(model, sample, prep, run_dir, checkpoint)
        _check_onnx(data, model, sample)
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


def _refuse_unexportable(prep: dict, fmt: str) -> None:
    strings = string_inputs(prep)
    if strings and fmt != "onnx":
        names = ", ".join(repr(c) for c in strings)
        raise UserError(
            f"--format {fmt} takes numbers only; string column(s) {names} are encoded from their text, which "
            f"ONNX takes (--format onnx) and TorchScript cannot"
        )
    bad = [c for c in numeric_names(prep) if c in prep["impute"] and not _is_number(prep["impute"][c])]
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


def export_model(model: nn.Module, cfg: Config, prep: dict) -> Exported:
    """encode -> a float32 eval-mode copy of the trained layers -> probabilities or unscaled prediction.
    Call _refuse_unexportable(prep, fmt) first."""
    net = copy.deepcopy(model)
    for mlp in getattr(net, "members", [net]):  # model.ensemble: each member's layers
        for name, layer in list(mlp.named_children()):
            if isinstance(layer, nn.RReLU):
                # Its eval-mode forward is a leaky ReLU with the mean slope; the ONNX exporter has no rrelu.
                setattr(mlp, name, nn.LeakyReLU((layer.lower + layer.upper) / 2))
    ensemble = hasattr(net, "members")
    parts: OrderedDict[str, nn.Module] = OrderedDict([("ensemble", net)] if ensemble else net.named_children())
    if prep["task"] == "regression":
        parts["unscale"] = Unscale(prep["target_shift"], prep["target_scale"])
    else:
        parts["proba"] = Probabilities(cfg)
    net = nn.Sequential(parts)
    return Exported(Encode(prep), net, bool(string_inputs(prep))).float().eval()


def output_name(prep: dict) -> str:
    return "prediction" if prep["task"] == "regression" else "probabilities"


@dataclass
class Sample:
    """Example rows for the export and the check after it: numbers, and the strings with their level codes."""

    features: torch.Tensor
    strings: np.ndarray | None  # object array of str
    codes: torch.Tensor | None

    def inputs(self, n: int | None = None) -> tuple:
        """The torch graph's arguments, on the first n rows."""
        rows = slice(n)
        return (self.features[rows],) if self.codes is None else (self.features[rows], self.codes[rows])


def sample_rows(prep: dict, n: int = 7) -> Sample:
    """Raw-looking rows around the training distribution (shift + scale * noise), with a NaN in each imputed
    column; string columns take their levels in turn, a missing value ("") and an unseen one."""
    g = torch.Generator().manual_seed(0)
    shift = torch.tensor(prep["shift"], dtype=torch.float64)
    scale = torch.tensor(prep["scale"], dtype=torch.float64)
    x = (shift + scale * torch.randn(n, len(shift), generator=g, dtype=torch.float64)).float()
    for j, col in enumerate(numeric_names(prep)):
        if col in prep["impute"]:
            x[j % n, j] = math.nan
    columns = string_inputs(prep)
    if not columns:
        return Sample(x, None, None)
    text = np.empty((n, len(columns)), dtype=object)
    for j, col in enumerate(columns):
        choices = [*prep["categories"][col], "", "never seen in training"]
        text[:, j] = [choices[(i + j) % len(choices)] for i in range(n)]
    codes = np.zeros((n, len(columns)), dtype=np.int64)
    for j, col in enumerate(columns):
        lookup, other = string_codes(prep, col)
        codes[:, j] = [lookup.get(v, other) for v in text[:, j]]
    return Sample(x, text, torch.from_numpy(codes))


def string_codes(prep: dict, col: str) -> tuple[dict[str, int], int]:
    """({text: level code}, the code of any other text): what the graph's LabelEncoder holds for a column, the
    codes encoding.level_codes gives. "" stands for a missing value: the fill level's code (0 without one)."""
    lookup, missing = level_lookup(prep, col)
    return {**lookup, "": missing}, 0


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
        warnings.filterwarnings("ignore", message=r"# The axis name: .* will not be used", category=UserWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"nntrain\.heads")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def _onnx_bytes(model: Exported, sample: Sample, prep: dict, run_dir: Path, checkpoint: str) -> bytes:
    import onnx

    rows = torch.export.Dim(BATCH_DIM)
    names = [INPUT_NAME] + ([CODES_NAME] if model.strings else [])
    try:
        with _quiet_torch(), torch.no_grad():
            program = torch.onnx.export(
                model,
                sample.inputs(),
                None,
                dynamo=True,
                opset_version=ONNX_OPSET,
                verbose=False,
                input_names=names,
                output_names=[output_name(prep)],
                dynamic_shapes=tuple({0: rows} for _ in names),
            )
    except Exception as e:  # noqa: BLE001 - the exporter raises its own types from several layers
        raise ExportFailed(f"torch.onnx.export failed on {run_dir}: {first_line(e, 300)}") from None
    proto = program.model_proto
    if model.strings:
        proto = onnx.compose.merge_models(_string_front(prep, proto), proto, io_map=[(CODES_NAME, CODES_NAME)])
    onnx.helper.set_model_props(
        proto,
        {
            "nntrain.run": str(run_dir),
            "nntrain.checkpoint": checkpoint,
            "nntrain.columns": json.dumps(numeric_names(prep)),
            "nntrain.strings": json.dumps(string_inputs(prep)),
            "nntrain.outputs": json.dumps(output_labels(prep)),
        },
    )
    return proto.SerializeToString()


def _string_front(prep: dict, like: Any) -> Any:
    """A graph `strings` [rows, columns] -> `codes` int64 [rows, columns]: per column, a Gather of its text and
    an ai.onnx.ml LabelEncoder holding its levels' codes; made for the ir version and opsets of `like`."""
    from onnx import TensorProto, helper

    columns, nodes, outs = string_inputs(prep), [], []
    for j, col in enumerate(columns):
        lookup, other = string_codes(prep, col)
        index = helper.make_tensor(f"col{j}", TensorProto.INT64, [], [j])
        nodes.append(helper.make_node("Constant", [], [f"col{j}"], value=index))
        nodes.append(helper.make_node("Gather", [STRINGS_NAME, f"col{j}"], [f"text{j}"], axis=1))
        nodes.append(
            helper.make_node(
                "LabelEncoder",
                [f"text{j}"],
                [f"code{j}"],
                domain="ai.onnx.ml",
                keys_strings=list(lookup),
                values_int64s=list(lookup.values()),
                default_int64=other,
            )
        )
        axes = helper.make_tensor(f"axes{j}", TensorProto.INT64, [1], [1])
        nodes.append(helper.make_node("Constant", [], [f"axes{j}"], value=axes))
        nodes.append(helper.make_node("Unsqueeze", [f"code{j}", f"axes{j}"], [f"codes{j}"]))
        outs.append(f"codes{j}")
    nodes.append(helper.make_node("Concat", outs, [CODES_NAME], axis=1))
    graph = helper.make_graph(
        nodes,
        "nntrain_strings",
        [helper.make_tensor_value_info(STRINGS_NAME, TensorProto.STRING, [BATCH_DIM, len(columns)])],
        [helper.make_tensor_value_info(CODES_NAME, TensorProto.INT64, [BATCH_DIM, len(columns)])],
    )
    opsets = {o.domain: o.version for o in like.opset_import}
    opsets["ai.onnx.ml"] = max(opsets.get("ai.onnx.ml", 0), ML_OPSET)
    imports = [helper.make_opsetid(d, v) for d, v in opsets.items()]
    return helper.make_model(graph, opset_imports=imports, ir_version=like.ir_version)


def _check_onnx(data: bytes, model: Exported, sample: Sample) -> None:
    """Run the file in onnxruntime when it is installed; the batch dimension is checked too (1 row, all rows)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    for n in (1, None):
        feed = {INPUT_NAME: sample.features[:n].numpy()}
        if sample.strings is not None:
            feed[STRINGS_NAME] = sample.strings[:n]
        got = session.run(None, feed)[0]
        _compare(got, model, sample.inputs(n), "onnxruntime")


def _write_torchscript(out: Path, model: Exported, sample: Sample, prep: dict) -> None:
    try:
        with _quiet_torch(), torch.no_grad():
            traced = torch.jit.trace(model, sample.inputs(), check_trace=False)
    except Exception as e:  # noqa: BLE001 - as above: any failure of torch's tracer is reported, not a traceback
        raise ExportFailed(f"torch.jit.trace failed: {first_line(e, 300)}") from None
    with torch.no_grad():
        _compare(traced(*sample.inputs(1)).numpy(), model, sample.inputs(1), "the traced module")
    with _quiet_torch():
        write_output(out, lambda f: torch.jit.save(traced, f), f"-o {out}", durable=True)


def _compare(got: np.ndarray, model: nn.Module, inputs: tuple, what: str) -> None:
    with torch.no_grad():
        want = model(*inputs).numpy()
    if got.shape != want.shape:
        raise ExportFailed(f"{what} gave shape {got.shape} for {len(inputs[0])} row(s), the model {want.shape}")
    tol = CHECK_ATOL * np.maximum(1.0, np.abs(want))
    if not np.all((np.abs(got - want) <= tol) | (np.isnan(got) & np.isnan(want))):
        err = float(np.nanmax(np.abs(got - want)))
        raise ExportFailed(
            f"{what} disagrees with the model on sample rows (max difference {err:.3g}); nothing was written"
        )


# ---------------------------------------------------------------- the sidecar


def _text_and_dates(prep: dict) -> dict:
    """The sidecar's account of the `strings` input and of the date columns' parts, where the run has them."""
    doc, strings = {}, string_inputs(prep)
    if strings:
        doc["strings"] = {
            "name": STRINGS_NAME,
            "dtype": "string",
            "shape": [BATCH_DIM, len(strings)],
            "columns": strings,
            "note": 'text as the table holds it (numbers as text: "3", not "3.0"), "" for a missing value; a '
            "level never seen in training is encoded as unknown (all-zero one-hot, or the embedding's unknown "
            "row), as nntrain predict does",
        }
    if prep.get("dates"):
        doc["dates"] = {
            col: {
                "parts": [part_name(col, p) for p in d["parts"]],
                "origin": pd.Timestamp(d["origin"], unit="s").isoformat(),
                "note": "year, month, day (1-31), weekday (Monday 0), hour (with minutes as a fraction), days "
                "since origin; in UTC; NaN for a missing date",
            }
            for col, d in prep["dates"].items()
        }
    return doc


def output_labels(prep: dict) -> list:
    """The output's columns: the class labels in order, or the target's name."""
    return [prep["target"]] if prep["task"] == "regression" else list(prep["classes"])


def write_sidecar(out: Path, fmt: str, loaded: Any, checkpoint: str) -> Path:
    prep = loaded.prep
    numeric = numeric_names(prep)
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
            "shape": [BATCH_DIM, len(numeric)],
            "columns": numeric,
            "imputed": {c: float(prep["impute"][c]) for c in numeric if c in prep["impute"]},
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
    doc.update(_text_and_dates(prep))
    if fmt == "onnx":
        doc["opset"] = ONNX_OPSET
    else:
        doc["note"] = TORCHSCRIPT_NOTE
    path = sidecar_path(out)
    write_output(path, lambda f: f.write(json_bytes(doc)), str(path))
    return path
