"""Export a run's model with its preprocessing folded in: raw feature rows in, predictions out.

The exported graph is `encode -> the trained layers -> head`:
  - encode: as encoding.encode. Numbers: NaN -> the training-split value in imputed columns, then
    (x - shift) / scale, computed in float64 and rounded to float32; a 0/1 "was missing" column per indicator.
    Strings (ONNX only): each column's text -> its level code through an ai.onnx.ml LabelEncoder (a level
    not kept in training -> 0, the unknown level), then one-hot or the embedding's code;
  - head: class probabilities (float32) through heads.to_proba (the very function `nntrain predict` uses), or the
    regression output back in the target's units through encoding.unscale, in float64 and given as float64.
Inputs: `features`, float64 [rows, len(numeric inputs)]: the raw values of the numeric columns and, for each
date column, its parts (year, month, ... as the sidecar lists them, "days" counted from the sidecar's origin)
(float32 would merge values large beside their spread, such as millisecond timestamps, and overflow beyond
3.4e38, where predict does neither);
and, when the run has string columns, `strings`, string [rows, len(string columns)], "" for a missing value.
Unknown levels are encoded as predict encodes them, without predict's warning.

ONNX goes through torch.onnx.export's torch.export-based exporter (dynamo=True, the default since torch 2.9;
the TorchScript-based one, dynamo=False, warns DeprecationWarning); it needs the `export` extra (onnx,
onnxscript). TorchScript is written with torch.jit.trace, which torch 2.13 deprecates: it still works and is
kept for deployers on LibTorch, but ONNX is the format to prefer.
"""

from __future__ import annotations

import io
import json
import logging
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from nntrain.data.columns import numeric_names
from nntrain.errors import Stop, UserError, did_you_mean, first_line, interrupt_in
from nntrain.runs.files import output_file, signals_held, write_output
from nntrain.runs.folders import resolve_run_dir
from nntrain.tools.export_graph import (
    BATCH_DIM,
    CODES_NAME,
    INPUT_NAME,
    ML_OPSET,
    ONNX_OPSET,
    STRINGS_NAME,
    Exported,
    export_bag,
    export_model,
    output_name,
    string_codes,
    string_inputs,
)
from nntrain.tools.export_sidecar import output_labels, sidecar_path, write_sidecar

if TYPE_CHECKING:
    from nntrain.tools.inference import LoadedRun

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
INSTALL_HINT = 'pip install -e ".[export]"'
# Tolerances of the check each export runs on sample rows before writing anything.
CHECK_ATOL = 1e-4


class ExportFailed(Stop):
    """torch could not export this model, or the exported file disagrees with the model: not the user's mistake."""

    exit_code = 1


def export_run(run_dir: Path, fmt: str, out: Path | None = None, checkpoint: str = "best", force: bool = False) -> Path:
    """Write RUN_DIR's model (best.pt or last.pt) as ONNX or TorchScript, with its preprocessing folded in,
    and a sidecar FILE.json naming the input columns in order and the outputs. Returns the model file's path.

    Nothing is written unless the exported model matches the checkpoint's model on sample rows."""
    from nntrain.tools.bag_inference import load_members
    from nntrain.tools.bagging import is_bag
    from nntrain.tools.inference import load_run

    fmt = _check_format(fmt)
    run_dir = resolve_run_dir(str(run_dir))
    if is_bag(run_dir):  # the bag's members averaged (and its linear model mixed in)
        plan, members = load_members(run_dir, checkpoint)
        return export_loaded(members[0], fmt, out, checkpoint, force, (run_dir, plan, members))
    return export_loaded(load_run(run_dir, checkpoint), fmt, out, checkpoint, force)


def export_loaded(
    loaded: LoadedRun, fmt: str, out: Path | None, checkpoint: str, force: bool = False, bag: tuple | None = None
) -> Path:
    """export_run for a run already loaded (a Run in memory, whose folder may be gone: then `out` is given);
    `bag`: (its folder, bag.json, its members loaded), `loaded` being the first member."""
    fmt = _check_format(fmt)
    prep = loaded.prep
    _refuse_unexportable(prep, fmt)  # before asking for the extra: installing it would not help
    out = _output_path(bag[0] if bag else loaded.run_dir, fmt, out, force)
    if fmt == "onnx":
        _require_onnx()
    if bag:
        model = export_bag([m.model for m in bag[2]], loaded.cfg, prep, bag[1].get("linear"), bag[1].get("temperature"))
    else:
        model = export_model(loaded.model, loaded.cfg, prep, loaded.ckpt.get("temperature"))
    # what the file says it came from: a bag's folder and its members' epochs (as eval says), else the run's
    origin = (bag[0], [m.ckpt.get("epoch") for m in bag[2]]) if bag else (loaded.run_dir, loaded.ckpt.get("epoch"))
    sample = sample_rows(prep)
    _check_scaled(model, sample, prep)
    if fmt == "onnx":
        data = _onnx_bytes(model, sample, prep, origin[0], checkpoint)
        _check_onnx(data, model, sample)
    else:
        data = _torchscript_bytes(model, sample)
    # The model file and its sidecar are written together: a Ctrl-C before this point leaves the old pair
    # untouched, one during it comes too late to stop anything and is dropped.
    with signals_held(dropped=True):
        write_output(out, lambda f: f.write(data), f"-o {out}", durable=True)
        write_sidecar(out, fmt, prep, origin, checkpoint)
    return out


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


def _check_scaled(model: Exported, sample: Sample, prep: dict) -> None:
    """Each numeric input's sample values, scaled in float64, must be numbers the float32 layers take: a scale
    so small (or a fill so far out) that they overflow would make the graph answer NaN or inf. Refused by name."""
    with torch.no_grad():
        scaled = model.encode.standardize(sample.features)
    bad = (~torch.isfinite(scaled)).any(dim=0)  # sample_rows puts NaN in imputed columns only: filled here
    if bool(bad.any()):
        names = [c for c, b in zip(numeric_names(prep), bad.tolist()) if b]
        raise UserError(
            f"export: column(s) {', '.join(map(repr, names))}: values near the training ones (or the fill value "
            f"of a missing one) scale beyond float32's range ({np.finfo(np.float32).max:.3g}) with the run's shift "
            f"and scale, and the graph would answer NaN or inf for them; nothing was written; use nntrain predict"
        )


def _is_number(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------- the exported model


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
    x = shift + scale * torch.randn(n, len(shift), generator=g, dtype=torch.float64)  # float64, not rounded
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
        raise interrupt_in(e) or ExportFailed(f"torch.onnx.export failed on {run_dir}: {first_line(e, 300)}") from None
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
    feeds = {}
    for n in (1, None):
        feeds[n] = {INPUT_NAME: sample.features[:n].numpy()}  # float64: the rows predict tells apart stay apart
        if sample.strings is not None:
            feeds[n][STRINGS_NAME] = sample.strings[:n]
    try:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        got = {n: session.run(None, feed)[0] for n, feed in feeds.items()}
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types; said, not a traceback
        raise interrupt_in(e) or ExportFailed(
            f"onnxruntime could not run the exported graph: {first_line(e, 300)}"
        ) from None
    for n, out in got.items():
        _compare(out, model, sample.inputs(n), "onnxruntime")


def _torchscript_bytes(model: Exported, sample: Sample) -> bytes:
    try:
        with _quiet_torch(), torch.no_grad():
            traced = torch.jit.trace(model, sample.inputs(), check_trace=False)
    except Exception as e:  # noqa: BLE001 - as above: any failure of torch's tracer is reported, not a traceback
        raise interrupt_in(e) or ExportFailed(f"torch.jit.trace failed: {first_line(e, 300)}") from None
    with torch.no_grad():
        _compare(traced(*sample.inputs(1)).numpy(), model, sample.inputs(1), "the traced module")
    buffer = io.BytesIO()
    with _quiet_torch():
        torch.jit.save(traced, buffer)
    return buffer.getvalue()


def _compare(got: np.ndarray, model: nn.Module, inputs: tuple, what: str) -> None:
    with torch.no_grad():
        want = model(*inputs).numpy()
    if got.shape != want.shape:
        raise ExportFailed(f"{what} gave shape {got.shape} for {len(inputs[0])} row(s), the model {want.shape}")
    if got.dtype != want.dtype:
        raise ExportFailed(f"{what} gave {got.dtype}, the model {want.dtype}; nothing was written")
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(got.astype(np.float64) - want)
        ok = (diff <= CHECK_ATOL * np.maximum(1.0, np.abs(want))) | (got == want) | (np.isnan(got) & np.isnan(want))
    if not ok.all():
        row = int(np.flatnonzero(~ok.reshape(len(ok), -1).all(axis=1))[0])
        raise ExportFailed(
            f"{what} disagrees with the model on sample rows: row {row} gave {got[row]}, the model {want[row]} "
            f"(tolerance {CHECK_ATOL:g} relative); nothing was written"
        )


# ---------------------------------------------------------------- the sidecar
