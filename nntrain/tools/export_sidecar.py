"""The JSON written beside an export: its inputs (columns in order, text and date columns), its outputs and
labels, the versions and checkpoint it came from: what a program loading the file needs to feed it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nntrain.data.columns import numeric_names
from nntrain.data.dates import WRITTEN, part_name, shown
from nntrain.data.durations import EXAMPLE
from nntrain.runs.files import json_bytes, write_output
from nntrain.tools.export_graph import (
    BATCH_DIM,
    INPUT_NAME,
    ONNX_OPSET,
    STRINGS_NAME,
    TORCHSCRIPT_NOTE,
    output_name,
    string_inputs,
)

CLOCKS = {
    "utc": "in UTC",
    "local": "of the wall clock a value is written in (2020-01-01T00:00+01:00: midnight of January 1st)",
}


def sidecar_path(out: Path) -> Path:
    """model.onnx -> model.onnx.json: an ONNX and a TorchScript export in one folder keep their own."""
    return out.with_name(out.name + ".json")


def _text_and_dates(prep: dict) -> dict:
    """The sidecar's account of the `strings` input and of the date columns' parts, where the run has them."""
    doc, strings = {}, string_inputs(prep)
    if strings:
        doc["strings"] = {
            "name": STRINGS_NAME,
            "dtype": "string",
            "shape": [BATCH_DIM, len(strings)],
            "columns": strings,
            "note": 'text as the table holds it (numbers as text: "3", not "3.0") without outer spaces, which '
            "nntrain predict strips, and in the case most training rows wrote it (predict reads RED as red); "
            '"" for a missing value; a level never seen in training is encoded as '
            "unknown (all-zero one-hot, or the embedding's unknown row), as nntrain predict does",
        }
    if prep.get("dates"):
        doc["dates"] = {
            col: {
                "parts": [part_name(col, p) for p in d["parts"]],
                "origin": shown(d["origin"]),
                "written": WRITTEN[d.get("order", "iso")],
                "note": "year, month, day (1-31), weekday (Monday 0), yearday (1-366), hour (minutes as a fraction), "
                "days since origin; P_sin and P_cos: sin and cos of 2 pi P / its period (month 12, weekday 7, "
                f"yearday 365.25, hour 24); {CLOCKS[d.get('clock', 'utc')]}; NaN for a missing date",
            }
            for col, d in prep["dates"].items()
        }
    return doc


def output_labels(prep: dict) -> list:
    """The output's columns: the class labels in order, or the target's name."""
    return [prep["target"]] if prep["task"] == "regression" else list(prep["classes"])


def write_sidecar(out: Path, fmt: str, prep: dict, origin: tuple[Path, Any], checkpoint: str) -> Path:
    """origin: (the run or bag folder, its checkpoint's epoch or its members' epochs)."""
    numeric = numeric_names(prep)
    regression = prep["task"] == "regression"
    doc = {
        "format": fmt,
        "file": out.name,
        "run_dir": str(origin[0]),
        "checkpoint": checkpoint,
        "epoch": origin[1],
        "task": prep["task"],
        "input": {
            "name": INPUT_NAME,
            "dtype": "float64",
            "shape": [BATCH_DIM, len(numeric)],
            "columns": numeric,
            "imputed": {c: float(prep["impute"][c]) for c in numeric if c in prep["impute"]},
            "note": "raw values as float64 (float32 would merge values large beside their spread, such as "
            "millisecond timestamps), in this column order; standardization (and NaN -> the imputed value in the "
            "imputed columns) happens inside the model, in float64",
        },
        "output": (
            {"name": output_name(prep), "dtype": "float64", "shape": [BATCH_DIM], "target": prep["target"]}
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
    if prep.get("durations"):
        doc["input"]["durations"] = prep["durations"]
        doc["input"]["note"] += f"; the durations columns in seconds ({EXAMPLE})"
    if prep.get("flags"):  # a column of yes / no, Y / N, TRUE / FALSE: one number
        doc["input"]["flags"] = prep["flags"]
        doc["input"]["note"] += "; the flags columns 1 for true (yes, Y, TRUE), 0 for false"
    doc.update(_text_and_dates(prep))
    if fmt == "onnx":
        doc["opset"] = ONNX_OPSET
    else:
        doc["note"] = TORCHSCRIPT_NOTE
    path = sidecar_path(out)
    write_output(path, lambda f: f.write(json_bytes(doc)), str(path))
    return path
