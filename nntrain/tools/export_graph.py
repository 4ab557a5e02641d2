"""The exported graph as torch modules: encode (numbers imputed and scaled, level codes) -> the trained layers
-> the head (probabilities, or predictions in the target's units); its input and output names."""

from __future__ import annotations

import copy
import math
from collections import OrderedDict

import torch
from torch import nn

from nntrain.config.schema import Config
from nntrain.data.columns import numeric_names, source_names
from nntrain.data.dates import part_name
from nntrain.data.encoding import CLIP, level_lookup, unscale
from nntrain.model.heads import to_proba
from nntrain.model.shared import is_shared
from nntrain.tools.linear_path import unranked


class Standardize(nn.Module):
    """Raw float64 feature rows -> the scaled float32 matrix the first layer was trained on.

    As encoding.encode: imputed columns get their fill value for NaN, then (x - shift) / scale in float64, rounded
    once to float32. The raw values must reach it in float64: float32 would merge values large beside their
    spread (1.7e12 ms timestamps lie 131072 apart in float32) and make inf of values beyond 3.4e38, where predict
    tells them apart. A NaN in a column that was not imputed stays NaN (nntrain predict refuses such a row)."""

    def __init__(
        self,
        shift: list[float],
        scale: list[float],
        fill: list[float | None],
        clip: bool = False,
        knots: list | None = None,
    ):
        super().__init__()
        self.clip = clip
        self.quantile = QuantileMap(knots) if knots else None  # data.scale: quantile, in place of the scale
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
        if self.quantile is not None:
            return self.quantile(x).float()
        x = (x - self.shift) / self.scale
        if self.clip:
            x = x / torch.sqrt(1 + (x / CLIP) ** 2)
        return x.float()


class QuantileMap(nn.Module):
    """quantiles.mapped in the graph: each column's piecewise-linear map through its knots. The knot below a
    value is found by a branchless binary search (gathers and compares: ONNX has no searchsorted), over the
    knots padded with +inf to a power of two."""

    def __init__(self, knots: list[list[list[float]]]):
        super().__init__()
        width = 1 << max(1, (max(len(k) for k, _ in knots) - 1).bit_length())
        at = torch.full((width, len(knots)), math.inf, dtype=torch.float64)
        value = torch.zeros((width, len(knots)), dtype=torch.float64)
        for j, (k, z) in enumerate(knots):
            at[: len(k), j] = torch.tensor(k, dtype=torch.float64)
            value[: len(k), j], value[len(k) :, j] = torch.tensor(z, dtype=torch.float64), z[-1]
        self.register_buffer("at", at)
        self.register_buffer("value", value)
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        below = torch.zeros(x.shape, dtype=torch.long, device=x.device)  # the last knot <= x (0 under the first)
        step = self.width // 2
        while step:
            higher = below + step
            below = torch.where(self.at.gather(0, higher) <= x, higher, below)
            step //= 2
        below = below.clamp(max=self.width - 2)
        k0, k1 = self.at.gather(0, below), self.at.gather(0, below + 1)
        z0, z1 = self.value.gather(0, below), self.value.gather(0, below + 1)
        return z0 + ((x - k0) / (k1 - k0)).clamp(0.0, 1.0) * (z1 - z0)  # past the last knot: k1 is inf, t 0


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
        knots = [prep["quantiles"][c] for c in numeric] if prep.get("quantiles") is not None else None
        clip = prep.get("scale_kind") == "robust"
        self.standardize = Standardize(prep["shift"], prep["scale"], fill, clip, knots)
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
    """The standardized regression output -> the prediction in the target's units, one float64 value per row (a
    target beyond float32's range, or large beside its spread, keeps predict's value)."""

    def __init__(self, prep: dict):
        super().__init__()
        hold_units(self, prep)

    def forward(self, out: torch.Tensor) -> torch.Tensor:
        return in_units(self, out[:, 0].double())


def hold_units(module: nn.Module, prep: dict) -> None:
    """encoding.unscale's part of prep on `module`, its shift and scale as float64 buffers: as Python numbers the
    ONNX exporter writes them as float32 constants (3e39 becomes inf)."""
    for key in ("target_shift", "target_scale"):
        module.register_buffer(key, torch.tensor(float(prep[key]), dtype=torch.float64))
    module.target_transform = prep.get("target_transform")


def in_units(module: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """encoding.unscale of float64 values with the units hold_units put on `module`."""
    units = {"target_shift": module.target_shift, "target_scale": module.target_scale}
    return unscale({**units, "target_transform": module.target_transform}, y)


def export_model(model: nn.Module, cfg: Config, prep: dict, temperature: float | None = None) -> Exported:
    """encode -> a float32 eval-mode copy of the trained layers -> probabilities (calibrated by a lone run's
    temperature) or unscaled prediction. Call _refuse_unexportable(prep, fmt) first."""
    net = copy.deepcopy(model).float()  # float32 layers; encode and unscale keep their float64 buffers
    for mlp in getattr(net, "members", [net]):  # model.ensemble: each member's layers
        for name, layer in list(mlp.named_children()):
            if isinstance(layer, nn.RReLU):
                # Its eval-mode forward is a leaky ReLU with the mean slope; the ONNX exporter has no rrelu.
                setattr(mlp, name, nn.LeakyReLU((layer.lower + layer.upper) / 2))
    whole = hasattr(net, "members") or is_shared(net)  # model.ensemble or shared_members
    parts: OrderedDict[str, nn.Module] = OrderedDict([("ensemble", net)] if whole else net.named_children())
    if prep["task"] == "regression":
        parts["unscale"] = Unscale(prep)
    else:
        parts["proba"] = Probabilities(cfg)
        if temperature and temperature != 1.0:
            parts["calibrate"] = Tempered(temperature)
    net = nn.Sequential(parts)
    return Exported(Encode(prep), net, bool(string_inputs(prep))).eval()


class Averaged(nn.Module):
    """A bag's members (each its layers and head) averaged: class probabilities, or predictions."""

    def __init__(self, nets: list[nn.Module]):
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(x) for net in self.nets]).mean(dim=0)


class LinearMix(nn.Module):
    """The members' mean mixed with the bag's linear model (linear_path.py) by its weight: the fold models'
    probabilities (softmax of their logits) or predictions (unscaled), averaged, on the matrix's columns."""

    def __init__(self, net: nn.Module, linear: dict, prep: dict):
        super().__init__()
        self.net, self.weight = net, float(linear["weight"])
        self.regression = prep["task"] == "regression"
        self.register_buffer("cols", torch.tensor(linear["columns"], dtype=torch.long))
        self.register_buffer("coef", torch.tensor([m["coef"] for m in linear["models"]], dtype=torch.float32))
        self.register_buffer("intercept", torch.tensor([m["intercept"] for m in linear["models"]], dtype=torch.float32))
        if self.regression:
            hold_units(self, prep)
        undo = unranked(prep, linear["columns"])  # data.scale: quantile: numbers back from their ranks
        self.unrank = QuantileMap([[z, k] for _, (k, z), _, _ in undo]) if undo else None
        if undo:  # then scaled as data.scale: robust scales them
            clip = linear.get("clip", CLIP) is not None  # linear_path: ridge's clip is chosen out of fold
            self.rescale = Standardize([s for *_, s, _ in undo], [s for *_, s in undo], [None] * len(undo), clip)
            self.register_buffer("at", torch.tensor([j for j, *_ in undo], dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x[:, self.cols]
        if self.unrank is not None:  # as linear_path.linear_inputs
            z = z.index_copy(1, self.at, self.rescale(self.unrank(z[:, self.at].double())))
        if self.regression:  # coef [M, d] -> [N, M]
            lin = in_units(self, (z @ self.coef.T + self.intercept).double()).mean(dim=1)
        else:  # coef [M, C, d] -> logits [M, N, C]
            logits = torch.matmul(z[None], self.coef.transpose(1, 2)) + self.intercept[:, None, :]
            lin = torch.softmax(logits, dim=-1).mean(dim=0)
        return (1 - self.weight) * self.net(x) + self.weight * lin


class Tempered(nn.Module):
    """Class probabilities calibrated by a temperature (calibration.py): softmax(log p / T)."""

    def __init__(self, temperature: float):
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return torch.softmax(torch.log(p.clamp(min=1e-12)) / self.temperature, dim=-1)


def export_bag(
    models: list[nn.Module], cfg: Config, prep: dict, linear: dict | None = None, temperature: float | None = None
) -> Exported:
    """One encode (the members share the bag's preprocessing) -> every member's layers and head, averaged (and
    mixed with the bag's linear model, where it has one; calibrated by its temperature)."""
    net: nn.Module = Averaged([export_model(model, cfg, prep).net for model in models])
    if linear and linear["weight"] > 0:
        net = LinearMix(net, linear, prep)
    if temperature and temperature != 1.0 and prep["task"] != "regression":
        net = nn.Sequential(net, Tempered(temperature))
    return Exported(Encode(prep), net, bool(string_inputs(prep))).eval()


def output_name(prep: dict) -> str:
    return "prediction" if prep["task"] == "regression" else "probabilities"


def string_codes(prep: dict, col: str) -> tuple[dict[str, int], int]:
    """({text: level code}, the code of any other text): what the graph's LabelEncoder holds for a column, the
    codes encoding.level_codes gives. "" stands for a missing value: the fill level's code (0 without one)."""
    lookup, missing = level_lookup(prep, col)
    return {**lookup, "": missing}, 0


ONNX_OPSET = 18  # onnxruntime >= 1.14 runs it; torch 2.13 writes 20 unless told


TORCHSCRIPT_NOTE = (
    "TorchScript is deprecated in torch 2.13 (torch.jit.trace and torch.jit.load warn "
    "DeprecationWarning); prefer --format onnx"
)


INPUT_NAME = "features"


STRINGS_NAME = "strings"


CODES_NAME = "codes"  # the level codes the string front hands the torch graph


ML_OPSET = 3  # ai.onnx.ml: LabelEncoder with keys_strings / values_int64


BATCH_DIM = "rows"
