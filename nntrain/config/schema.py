"""The config schema: every key, its type, its default and what it means (pydantic models).

Defaults that follow from other keys are resolved here, in validators (a cosine schedule's T_max is
train.epochs), so the resolved config.yaml shows them and no check has to fill them in. Reading YAML and
overrides is loading.py's job; whether the parts agree is checks.py's.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, Field, PrivateAttr, field_validator, model_validator

from nntrain.config.components import canonical, record
from nntrain.config.data_section import DataConfig
from nntrain.config.strict import MAX_SEED, Strict
from nntrain.metrics import maximize, monitor_name


def _to_spec(value: Any) -> Any:
    """`relu` -> {"name": "relu"}; a mapping must name its component."""
    if isinstance(value, str):
        return {"name": value}
    if not isinstance(value, dict):
        raise ValueError(
            "must be a name, e.g. relu, or a mapping with a name, e.g. {name: leaky_relu, negative_slope: 0.1}"
        )
    if "name" not in value:
        raise ValueError("a mapping here needs a 'name' key, e.g. {name: adam, lr: 0.001}")
    return value


Spec = Annotated[dict[str, Any], BeforeValidator(_to_spec)]


class InitConfig(Strict):
    weight: Spec = Field(default_factory=lambda: {"name": "default"})
    bias: Spec = Field(default_factory=lambda: {"name": "default"})


def _to_init(value: Any) -> Any:
    """A bare name or spec in `init:` sets the weight init."""
    if isinstance(value, str) or (isinstance(value, dict) and "name" in value):
        return {"weight": value}
    return value


Init = Annotated[InitConfig, BeforeValidator(_to_init)]


class LayerConfig(Strict):
    size: int = Field(gt=0)
    activation: Spec | None = Field(None, description="default: model.activation")
    init: Init | None = Field(None, description="default: model.init")
    dropout: float | None = Field(None, ge=0, lt=1, description="default: model.dropout")
    batch_norm: bool | None = Field(None, description="default: model.batch_norm")


DEFAULT_HIDDEN = [64, 128]


class NumericEmbeddingConfig(Strict):
    """Each numeric column x through its own embedding (Gorishniy et al., NeurIPS 2022), then ReLU(Linear(...))
    per column: periodic, [cos(2 pi c x), sin(2 pi c x)] with `frequencies` learned c ~ N(0, sigma^2);
    piecewise_linear, x's position in each of `bins` quantile bins of the training values (0 below, 1 above)."""

    name: Literal["periodic", "piecewise_linear"] = "periodic"
    frequencies: int = Field(16, gt=0, le=256, description="periodic: learned frequencies c per column")
    sigma: float = Field(0.1, gt=0, description="periodic: the standard deviation of the frequencies' first values")
    bins: int = Field(
        16,
        gt=0,
        le=64,
        description="piecewise_linear: quantile bins per column (fewer if it has fewer distinct values)",
    )
    size: int = Field(8, gt=0, le=256, description="the embedding's width per column")


def _to_embedding(value: Any) -> Any:
    if value in (None, "none"):
        return None
    return {"name": value} if isinstance(value, str) else value


class ModelConfig(Strict):
    hidden: list[Annotated[int, Field(gt=0)]] | None = Field(
        None,
        description="hidden layer sizes (shorthand); default [64, 128] unless `layers` is given; [] is a linear model",
    )
    layers: list[LayerConfig] | None = Field(None, description="one entry per hidden layer")
    activation: Spec = Field(default_factory=lambda: {"name": "relu"})
    output_activation: Spec = Field(
        default_factory=lambda: {"name": "identity"},
        description="after the last layer; identity gives logits, as the losses expect",
    )
    dropout: float = Field(0.0, ge=0, lt=1)
    batch_norm: bool = False
    init: Init = Field(default_factory=InitConfig)
    numeric_embedding: Annotated[NumericEmbeddingConfig | None, BeforeValidator(_to_embedding)] = Field(
        None,
        description="none, periodic or piecewise_linear (or {name: ..., size, ...}): each number and date part "
        "embedded before the first layer",
    )
    ensemble: int = Field(
        1,
        ge=1,
        le=256,
        description="members of this shape trained together (their own initial weights, the same batches); "
        "eval, predict and export average their probabilities (regression: their predictions)",
    )
    shared_members: int = Field(
        1,
        ge=1,
        le=256,
        description="k members sharing one MLP's embeddings and hidden layers (TabM-mini): each scales the first "
        "layer's inputs by its own weights and has its own output layer; trained on the mean of their losses, "
        "predicting the mean of their probabilities (regression: predictions); 1: one model",
    )

    @model_validator(mode="after")
    def _one_layout(self) -> ModelConfig:
        if self.hidden is not None and self.layers is not None:
            raise ValueError("give either model.hidden or model.layers, not both")
        return self

    def resolved_layers(self) -> list[LayerConfig]:
        """Every hidden layer with the model-wide defaults filled in."""
        sizes = DEFAULT_HIDDEN if self.hidden is None else self.hidden
        layers = self.layers if self.layers is not None else [LayerConfig(size=s) for s in sizes]
        return [
            LayerConfig(
                size=layer.size,
                activation=layer.activation or self.activation,
                init=layer.init or self.init,
                dropout=self.dropout if layer.dropout is None else layer.dropout,
                batch_norm=self.batch_norm if layer.batch_norm is None else layer.batch_norm,
            )
            for layer in layers
        ]


AUTO_BATCH = (64, 256)  # train.batch_size auto: the power of 2 nearest training rows / 32, clipped


class TrainConfig(Strict):
    epochs: int | Literal["auto"] = Field(
        30,
        description="passes over the training split; auto: about 1,000,000 training rows in all, from 10 to 100 "
        "epochs (said when fit starts, and written into the run's config.yaml)",
    )
    batch_size: int | Literal["full", "auto"] = Field(
        32,
        description="an int, `full` for full-batch gradient descent, or auto: the power of 2 nearest the training "
        "rows / 32, from 64 to 256",
    )
    monitor: str = Field(
        "val_loss", description="val_loss, val_accuracy, val_f1, val_roc_auc, val_rmse, val_mae, val_r2 ..."
    )
    patience: int | None = Field(None, gt=0, description="stop after this many epochs without improvement")
    bag: int | Literal["auto"] = Field(
        0,
        description="a cross-fitted bag of K members, each early-stopped on its own fold of the non-test rows; "
        "0 or 1: one model; auto: 5 from 20 to 10,000 non-test rows, else one model",
    )
    linear: bool = Field(
        False, description="with train.bag: a linear model beside the members, mixed in by its out-of-fold weight"
    )
    min_delta: float = Field(0.0, ge=0, description="smallest change of the monitored value that counts")
    l1: float = Field(0.0, ge=0, description="L1 penalty on the weights, added to the loss")
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this value")
    threads: int | None = Field(
        None,
        gt=0,
        le=4096,
        description=(
            "CPU threads; default: 1 for small models, else the cores no other process keeps busy (a large "
            "stacked group, such as a bag, trains in two parts side by side, a thread each)"
        ),
    )
    checkpoint_every: float = Field(
        1.0,
        ge=0,
        description="seconds between writes of last.pt and best.pt (always at the end and on Ctrl-C); "
        "0 writes every epoch",
    )
    engine: Literal["auto", "fused", "autograd"] = Field(
        "auto", description="fused: forward and backward written out (plain MLPs); auto: fused where it applies"
    )
    diagnostics: bool = Field(
        True,
        description="log per-layer gradient norms and dead / saturated unit fractions "
        "into metrics.csv, and warn in words when they cross a line",
    )
    plots: bool = Field(True, description="draw the PNG plots into the run folder at the end (about a second)")
    mlflow: bool | str | None = Field(
        None,
        description="log the run to MLflow when it ends (needs nntrain[mlflow]): true for $MLFLOW_TRACKING_URI "
        "(else ./mlruns), or a tracking URI (http://HOST:PORT, sqlite:///FILE, a folder); as fit --mlflow",
    )
    compile: bool = Field(
        False,
        description="run the autograd step under torch.compile (a compile of 10-60 s first; "
        "pays off on large models and GPUs, not on small ones)",
    )

    def batch_rows(self, n_train: int) -> int:
        """Rows a step takes: `full` is every training row, and never more rows than there are."""
        if self.batch_size == "full":
            return n_train
        if self.batch_size == "auto":
            low, high = AUTO_BATCH
            return min(max(low, 2 ** round(math.log2(max(n_train, 1) / 32))), high, n_train)
        return min(self.batch_size, n_train)

    @field_validator("batch_size")
    @classmethod
    def _positive(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1:
            raise ValueError("must be at least 1, `full` or `auto`")
        return v

    @field_validator("bag")
    @classmethod
    def _bag(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 0 <= v <= 20:
            raise ValueError("must be from 0 to 20 members, or `auto`")
        return v

    @field_validator("l1")
    @classmethod
    def _l1(cls, v: float) -> float:
        if v > 1e30:  # the float32 weights' gradient overflows
            raise ValueError("must be at most 1e30")
        return v

    @field_validator("epochs")
    @classmethod
    def _epochs(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 0 < v <= 1_000_000:
            raise ValueError("must be from 1 to 1,000,000, or `auto`")
        return v


class Config(Strict):
    _notes: list[str] = PrivateAttr(default_factory=list)  # what loading changed, for fit to print
    _bag: int = PrivateAttr(0)  # a bag's member: the bag's size, for the header's recipe line
    name: str = Field("run", description="run folder runs/NAME, then NAME-2, ...; never overwritten")
    seed: int = Field(
        42, ge=0, le=MAX_SEED, description="weights, dropout, shuffling and (unless data.split_seed) the split"
    )
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    recipe: Literal["tabular", "course"] = Field(
        "course",
        description="the defaults of the keys a config leaves out: tabular (recipe.py; the default of a file that "
        "names no model) or course (the schema's own, as each key says)",
    )
    runs_dir: str = Field("runs", description="where run folders are made")
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: Spec = Field(
        default_factory=lambda: {"name": "auto"},
        description="auto: cross_entropy / mse by task ({name: auto, label_smoothing: 0.1}: for classes only)",
    )
    optimizer: Spec = Field(default_factory=lambda: {"name": "adam", "lr": 0.001})
    scheduler: Spec = Field(default_factory=lambda: {"name": "none"})
    train: TrainConfig = Field(default_factory=TrainConfig)
    sweep: dict[str, Any] | None = Field(
        None,
        description="`nntrain sweep`'s search space (dotted key: [values] or {low, high, log, step}) and its "
        "trials, direction and pruner; `fit` ignores it",
    )

    @model_validator(mode="after")
    def _resolve(self) -> Config:
        """Defaults that follow from other keys. The spec dict is changed in place: an assignment would run
        the validators again."""
        if canonical("scheduler", self.scheduler["name"]) == "cosine" and self.train.epochs != "auto":
            self.scheduler.setdefault("T_max", self.train.epochs - int(self.scheduler.get("warmup_epochs") or 0))
        if canonical("scheduler", self.scheduler["name"]) in ("plateau", "anneal"):
            self.scheduler.setdefault("mode", "max" if maximize(monitor_name(self.train.monitor)) else "min")
        return self

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
            raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not folder_name(v):
            raise ValueError(FOLDER_NAME_RULE)
        return v


FOLDER_NAME_RULE = (
    "use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 200 of them (it names a folder)"
)


def folder_name(text: str) -> bool:
    """A name that makes one folder inside runs_dir: no '/', no '..', not absolute, not hidden, not longer than a
    file system takes (255 bytes, less the -N of a name taken)."""
    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}", text) is not None


def name_from(text: str, fallback: str = "run") -> str:
    """A run name made from a file's name, under folder_name's rule: accents dropped (données -> donnees), any
    other character not allowed a '_' (Sales Data (final) -> Sales_Data_final), else `fallback` (数据)."""
    import unicodedata

    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    name = re.sub(r"_{2,}", "_", re.sub(r"[^A-Za-z0-9._-]", "_", plain)).strip("._-")[:200].rstrip("._-")
    return name if name and folder_name(name) else fallback


def _default(model: type[BaseModel], field: str) -> dict:
    return model.model_fields[field].default_factory()


# What `optimizer.lr=0.1` builds on when the file has no optimizer section.
SPEC_DEFAULTS = {
    "optimizer": _default(Config, "optimizer"),
    "scheduler": _default(Config, "scheduler"),
    "loss": _default(Config, "loss"),
    "model.activation": _default(ModelConfig, "activation"),
    "model.output_activation": _default(ModelConfig, "output_activation"),
    "model.init.weight": {"name": "default"},
    "model.init.bias": {"name": "default"},
}


def loss_name(cfg: Config, task: str) -> str:
    """The loss a config trains with: `auto` is cross_entropy for classes, mse for regression."""
    name = str(cfg.loss["name"]).lower()
    if name == "auto":
        return "cross_entropy" if task in ("multiclass", "binary") else "mse"
    return canonical("loss", name) or name


# The one argument `loss: auto` takes: it reaches cross_entropy (a class target) and is left out for mse.
AUTO_LOSS_ARGS = ("label_smoothing",)


def loss_args(cfg: Config, task: str) -> dict[str, Any]:
    """The loss's arguments as it is built for this task: those given, less `auto`'s label_smoothing where
    `auto` resolves to mse (a regression target)."""
    args = {k: v for k, v in cfg.loss.items() if k != "name"}
    auto = str(cfg.loss["name"]).lower() == "auto"
    return {} if auto and loss_name(cfg, task) != "cross_entropy" else args


def output_activation(cfg: Config) -> Any:
    """The output activation's record (components.Activation) of a checked config."""
    return record("output_activation", cfg.model.output_activation["name"])


def to_plain(cfg: Config) -> dict:
    """The resolved config as plain YAML-able data."""
    return cfg.model_dump(mode="json")


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_plain(cfg), sort_keys=False)
