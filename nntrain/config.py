"""The config schema, load_config(path, overrides), and the checks that the parts of a config agree.

Every problem in a file is collected and reported at once, each with its key path, the value, what is
allowed and, where the YAML gives it, the line.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from .errors import UserError, did_you_mean

TASKS = ("multiclass", "binary", "regression")


class Loader(yaml.SafeLoader):
    """YAML as a user means it: `1e-3` is a number (PyYAML reads it as a string) and `yes`, `no`, `on`,
    `off` stay strings (only true and false are booleans), as in YAML 1.2."""


Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:bool")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                             list("tTfF"))
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
               r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def _to_spec(value: Any) -> Any:
    """`relu` -> {"name": "relu"}; a mapping must name its component."""
    if isinstance(value, str):
        return {"name": value}
    if not isinstance(value, dict):
        raise ValueError("must be a name, e.g. relu, or a mapping with a name, e.g. {name: leaky_relu, negative_slope: 0.1}")
    if "name" not in value:
        raise ValueError("a mapping here needs a 'name' key, e.g. {name: adam, lr: 0.001}")
    return value


Spec = Annotated[dict[str, Any], BeforeValidator(_to_spec)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, coerce_numbers_to_str=True)


class DataConfig(Strict):
    path: str = Field(description="CSV or Parquet file, or sklearn:iris|wine|breast_cancer|digits|diabetes")
    target: str | None = Field(None, description="target column; default: the last column")
    task: Literal["auto", "multiclass", "binary", "regression"] = "auto"
    val_size: float = Field(0.1, gt=0, lt=1, description="fraction of the non-test rows held out to pick the best epoch")
    test_size: float = Field(0.2, gt=0, lt=1, description="fraction of all rows, touched once at the end")
    split_seed: int | None = Field(None, description="seed of the split; default: the run's seed")
    scale: Literal["standard", "minmax", "none"] = "standard"
    impute: Literal["none", "mean", "median", "most_frequent"] = Field(
        "none", description="fill missing feature values (fitted on the training split); none: missing values are an error")
    drop: list[str] = Field(default_factory=list, description="columns to ignore (ids, leaks)")
    categorical: list[str] = Field(default_factory=list,
                                   description="numeric columns to one-hot encode as categories (codes such as zone: 1, 2, 3)")


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


class ModelConfig(Strict):
    hidden: list[Annotated[int, Field(gt=0)]] | None = Field(
        None, description="hidden layer sizes (shorthand); default [64, 128] unless `layers` is given; [] is a linear model")
    layers: list[LayerConfig] | None = Field(None, description="one entry per hidden layer")
    activation: Spec = Field(default_factory=lambda: {"name": "relu"})
    output_activation: Spec = Field(default_factory=lambda: {"name": "identity"},
                                    description="after the last layer; identity gives logits, as the losses expect")
    dropout: float = Field(0.0, ge=0, lt=1)
    batch_norm: bool = False
    init: Init = Field(default_factory=InitConfig)

    @model_validator(mode="after")
    def _one_layout(self) -> ModelConfig:
        if self.hidden is not None and self.layers is not None:
            raise ValueError("give either model.hidden or model.layers, not both")
        return self

    def resolved_layers(self) -> list[LayerConfig]:
        """Every hidden layer with the model-wide defaults filled in."""
        sizes = DEFAULT_HIDDEN if self.hidden is None else self.hidden
        layers = self.layers if self.layers is not None else [LayerConfig(size=s) for s in sizes]
        return [LayerConfig(size=layer.size,
                            activation=layer.activation or self.activation,
                            init=layer.init or self.init,
                            dropout=self.dropout if layer.dropout is None else layer.dropout,
                            batch_norm=self.batch_norm if layer.batch_norm is None else layer.batch_norm)
                for layer in layers]


class TrainConfig(Strict):
    epochs: int = Field(30, gt=0)
    batch_size: int | Literal["full"] = Field(32, description="an int, or `full` for full-batch gradient descent")
    monitor: str = Field("val_loss", description="val_loss, val_accuracy, val_f1, val_roc_auc, val_rmse, val_mae, val_r2 ...")
    patience: int | None = Field(None, gt=0, description="stop after this many epochs without improvement")
    min_delta: float = Field(0.0, ge=0, description="smallest change of the monitored value that counts")
    l1: float = Field(0.0, ge=0, description="L1 penalty on the weights, added to the loss")
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this value")
    threads: int | None = Field(None, gt=0, description="CPU threads; default: 1 for small models, else all cores")
    checkpoint_every: float = Field(
        1.0, ge=0, description="seconds between writes of last.pt and best.pt (always at the end and on Ctrl-C); "
                               "0 writes every epoch")
    engine: Literal["auto", "fused", "autograd"] = Field(
        "auto", description="fused: forward and backward written out (plain MLPs); auto: fused where it applies")
    diagnostics: bool = Field(True, description="log per-layer gradient norms and dead / saturated unit fractions "
                                                "into metrics.csv, and warn in words when they cross a line")
    plots: bool = Field(True, description="draw the PNG plots into the run folder at the end (about a second)")
    compile: bool = Field(False, description="run the autograd step under torch.compile (a compile of 10-60 s first; "
                                             "pays off on large models and GPUs, not on small ones)")

    @field_validator("batch_size")
    @classmethod
    def _positive(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1:
            raise ValueError("must be at least 1, or `full`")
        return v


class Config(Strict):
    _notes: list[str] = PrivateAttr(default_factory=list)  # what loading changed, for fit to print
    name: str = Field("run", description="run folder runs/NAME, then NAME-2, ...; never overwritten")
    seed: int = 42
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    runs_dir: str = Field("runs", description="where run folders are made")
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: Spec = Field(default_factory=lambda: {"name": "auto"}, description="auto: cross_entropy / mse by task")
    optimizer: Spec = Field(default_factory=lambda: {"name": "adam", "lr": 0.001})
    scheduler: Spec = Field(default_factory=lambda: {"name": "none"})
    train: TrainConfig = Field(default_factory=TrainConfig)
    sweep: dict[str, Any] | None = Field(
        None, description="`nntrain sweep`'s search space (dotted key: [values] or {low, high, log, step}) and its "
                          "trials, direction and pruner; `fit` ignores it")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
            raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):
            raise ValueError("use letters, digits, '.', '_' and '-' (it names a folder)")
        return v


def _default(model: type[BaseModel], field: str) -> dict:
    return model.model_fields[field].default_factory()


# What `optimizer.lr=0.1` builds on when the file has no optimizer section.
SPEC_DEFAULTS = {
    "optimizer": _default(Config, "optimizer"), "scheduler": _default(Config, "scheduler"),
    "loss": _default(Config, "loss"), "model.activation": _default(ModelConfig, "activation"),
    "model.output_activation": _default(ModelConfig, "output_activation"),
    "model.init.weight": {"name": "default"}, "model.init.bias": {"name": "default"},
}


# ---------------------------------------------------------------- loading


def load_config(path: str | Path | None, overrides: list[str] = (), raw: dict | None = None,
                name: str | None = None, arguments_too: bool = True) -> Config:
    """Read YAML, apply dotted KEY=VALUE overrides (and --name), validate, check that the parts agree.
    arguments_too=False checks component names but not their arguments, which needs torch (`params`)."""
    text = ""
    if raw is None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
            raw = parse_yaml(text)
        except UnicodeDecodeError:
            raise UserError(f"{path}: not a UTF-8 text file") from None
        except yaml.YAMLError as e:
            raise UserError(f"{path}: not valid YAML: {e}") from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise UserError(f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}")
        raw.setdefault("name", re.sub(r"[^A-Za-z0-9._-]", "_", path.stem).lstrip("._-") or "run")
    raw = apply_overrides(raw, overrides)
    if name is not None:
        raw["name"] = name  # as typed: --name 001 stays the string '001'
    notes = _prune_after_rename(raw, overrides)
    given = {item.partition("=")[0] for item in overrides} | ({"name"} if name is not None else set())
    locate = lambda msg: _with_line(msg, text, given)  # noqa: E731
    problems: list[str] = []
    removed: list[str] = []
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as e:
        problems = [locate(m) for m in _format_errors(e)]
        cfg, removed = _repaired(raw, e)  # so the checks below still see the rest of the file
    if cfg is not None:
        # a check that leans on a key replaced by its default would only mislead
        problems += [locate(p) for p in semantic_problems(cfg, arguments_too) if not any(r in p for r in removed)]
    if problems:
        problems = sorted(dict.fromkeys(problems), key=_line_of)
        error = UserError(problems, header=f"{path or 'config'}: {len(problems)} problem(s) in the config:")
        error.partial = cfg  # the config with its invalid keys at their defaults, for checks against the data
        raise error
    cfg._notes = notes
    return cfg


RENAMABLE = {"optimizer": "optimizer", "scheduler": "scheduler", "loss": "loss",
             "model.activation": "activation", "model.output_activation": "output_activation"}


def _prune_after_rename(raw: dict, overrides: list[str]) -> list[str]:
    """`optimizer.name=adam` on an SGD config: drop the file's arguments adam does not take (momentum), saying so."""
    from .components import arguments, canonical

    notes = []
    given = {item.partition("=")[0] for item in overrides}
    for path, kind in RENAMABLE.items():
        if f"{path}.name" not in given and path not in given:
            continue
        node: Any = raw
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        name = canonical(kind, node.get("name", "")) if isinstance(node, dict) else None
        if name is None:
            continue
        for key in [k for k in node if k != "name" and k not in arguments(kind, name) and f"{path}.{k}" not in given]:
            notes.append(f"{path}.{key}={node.pop(key)} dropped: {name} takes no '{key}' ({path}.name was overridden)")
    return notes


def _repaired(raw: dict, e: ValidationError) -> tuple[Config | None, list[str]]:
    """The config with every invalid key removed (defaults in their place), or None if that is not valid."""
    import copy

    fixed, removed = copy.deepcopy(raw), []
    for err in e.errors():
        parent, key, node = None, None, fixed
        for part in err["loc"]:  # down to the deepest key that exists (union tags like 'int' do not)
            if isinstance(node, dict) and part in node:
                parent, key, node = node, part, node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                parent, key, node = node, part, node[part]
            else:
                break
        if isinstance(parent, dict):
            parent.pop(key, None)
            removed.append(".".join(str(p) for p in err["loc"][:err["loc"].index(key) + 1]))
    try:
        return Config.model_validate(fixed), removed
    except ValidationError:
        return None, removed


def _line_of(problem: str) -> int:
    m = re.search(r"\(line (\d+)\)$", problem)
    return int(m.group(1)) if m else 10**9


def parse_override(item: str) -> tuple[list[str], Any]:
    key, sep, value = item.partition("=")
    if not sep or not key or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
        raise UserError(f"override '{item}' must look like KEY=VALUE with a dotted key, e.g. optimizer.lr=0.001")
    try:
        parsed = parse_yaml(value) if value else ""
    except yaml.YAMLError:
        parsed = value
    return key.split("."), parsed


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for item in overrides:
        keys, value = parse_override(item)
        node = raw
        for depth, k in enumerate(keys[:-1]):
            child = node.get(k)
            if isinstance(child, str):  # `optimizer: adam` then optimizer.lr=0.1
                child = {"name": child}
            elif not isinstance(child, dict):
                # optimizer.lr=0.1 with no optimizer section: start from the default optimizer
                child = dict(SPEC_DEFAULTS.get(".".join(keys[:depth + 1]), {}))
            node[k] = child
            node = child
        node[keys[-1]] = value
    return raw


def _format_errors(e: ValidationError) -> list[str]:
    out: list[tuple[str, str]] = []
    for err in e.errors():
        loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal[", "list[", "int", "dict["))]
        loc = [p for p in loc if p not in ("str", "bool", "float", "InitConfig", "LayerConfig", "constrained-int")]
        key = ".".join(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1])
            fields = list(parent.model_fields) if parent else []
            out.append((key, f"{key}: unknown key{did_you_mean(loc[-1], fields)}; allowed here: {', '.join(fields)}"))
        elif err["type"] == "missing":
            out.append((key, f"{key}: required key is missing"))
        elif out and out[-1][0] == key:
            # one key failing every member of a union (batch_size: an int or 'full'): one line
            out[-1] = (key, f"{out[-1][1]}, or {err['msg'].removeprefix('Input should be ')}")
        else:
            out.append((key, f"{key}={flow(err.get('input'), width=80)}: {err['msg'].removeprefix('Value error, ')}"))
    lines = []
    for key, msg in out:
        leaf = key.rsplit(".", 1)[-1]
        if leaf in EXAMPLES and "unknown key" not in msg and "missing" not in msg:
            msg += f"; e.g. {leaf}: {EXAMPLES[leaf]}"
        lines.append(msg)
    return lines


EXAMPLES = {
    "epochs": "30", "batch_size": "32", "lr": "0.001", "val_size": "0.1", "test_size": "0.2", "seed": "42",
    "dropout": "0.2", "hidden": "[64, 128]", "size": "64", "patience": "10", "scale": "standard",
    "task": "auto", "device": "auto", "batch_norm": "false",
}


def flow(value: Any, width: int = 10**6) -> str:
    """A value in YAML's one-line form, as an override's right-hand side takes it: [64, 128], adam, 0.001, null."""
    return yaml.safe_dump(value, default_flow_style=True, width=width).strip().removesuffix("...").strip()


def _model_at(loc: list[str]) -> type[BaseModel] | None:
    model: Any = Config
    for part in loc:
        if part.isdigit():
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "init": InitConfig,
                 "layers": LayerConfig}.get(part)
        if model is None:
            return None
    return model


def _with_line(msg: str, text: str, overridden: set[str] = frozenset()) -> str:
    """Append ' (line N)' when the message's key path is found in the YAML text (and was not overridden)."""
    key = msg.split(":", 1)[0].split("=", 1)[0]
    if any(key == o or key.startswith(o + ".") or o.startswith(key + ".") for o in overridden):
        return msg + " (from the command line)"
    line = yaml_line(text, key.split(".")) if text else None
    return f"{msg} (line {line})" if line else msg


def yaml_line(text: str, keys: list[str]) -> int | None:
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == key]
            if not match:
                return line
            line, node = match[0][0].start_mark.line + 1, match[0][1]
        elif isinstance(node, yaml.SequenceNode) and key.isdigit() and int(key) < len(node.value):
            node = node.value[int(key)]
            line = node.start_mark.line + 1
        else:
            return line
    return line


# ---------------------------------------------------------------- agreement

MONITORS = {
    "multiclass": {"val_loss", "val_accuracy", "val_f1_macro"},
    "binary": {"val_loss", "val_accuracy", "val_f1_macro", "val_roc_auc"},
    "regression": {"val_loss", "val_mse", "val_rmse", "val_mae", "val_r2"},
}
MONITOR_ALIASES = {"val_f1": "val_f1_macro", "val_acc": "val_accuracy", "val_auc": "val_roc_auc"}
MAXIMIZE = {"val_accuracy", "val_f1_macro", "val_roc_auc", "val_r2"}


def monitor_name(cfg: Config) -> str:
    m = cfg.train.monitor.strip().lower()
    return MONITOR_ALIASES.get(m, m)


def loss_name(cfg: Config, task: str) -> str:
    from .components import canonical

    name = str(cfg.loss["name"]).lower()
    if name == "auto":
        return "cross_entropy" if task in ("multiclass", "binary") else "mse"
    return canonical("loss", name) or name


def semantic_problems(cfg: Config, arguments_too: bool = True) -> list[str]:
    """Problems pydantic's types cannot see: component names and arguments, and parts that disagree."""
    from .components import MATRIX_ONLY_INITS, canonical
    from .components import spec_problems as check

    spec_problems = functools.partial(check, arguments_too=arguments_too)

    problems: list[str] = []
    m = cfg.model
    problems += spec_problems("activation", m.activation, "model.activation")
    problems += spec_problems("output_activation", m.output_activation, "model.output_activation")
    inits = [("model.init", m.init)] + [(f"model.layers.{i}.init", l.init) for i, l in enumerate(m.layers or []) if l.init]
    for path, init in inits:
        problems += spec_problems("init", init.weight, f"{path}.weight")
        problems += spec_problems("init", init.bias, f"{path}.bias")
        if canonical("init", init.bias["name"]) in MATRIX_ONLY_INITS:
            problems.append(f"{path}.bias={init.bias['name']}: a bias is 1-D and has no fan-in/fan-out; "
                            f"use zeros, constant, uniform, normal or default")
    for i, layer in enumerate(m.layers or []):
        if layer.activation:
            problems += spec_problems("activation", layer.activation, f"model.layers.{i}.activation")
    out_act = canonical("output_activation", m.output_activation["name"])
    if out_act in ("softmax", "log_softmax") and "dim" in m.output_activation:
        problems.append(f"model.output_activation.dim={m.output_activation['dim']}: {out_act} always runs across "
                        f"the classes (dim 1); remove dim")
    if cfg.train.compile and cfg.train.engine == "fused":
        problems.append("train.compile=true: compile runs the autograd step, and engine: fused asks for the "
                        "written-out step; use engine: auto with compile, or drop compile")
    if cfg.train.batch_size == 1 and any(l.batch_norm for l in m.resolved_layers()):
        problems.append("train.batch_size=1: batch norm needs at least two rows per batch to normalise; "
                        "use a larger batch or model.batch_norm: false")
    if str(cfg.loss["name"]).lower() == "auto":
        if len(cfg.loss) > 1:
            problems.append(f"loss: 'auto' takes no arguments ({', '.join(k for k in cfg.loss if k != 'name')}); "
                            f"name the loss, e.g. {{name: huber, delta: 2.0}}")
    else:
        problems += spec_problems("loss", cfg.loss, "loss")
    problems += spec_problems("optimizer", cfg.optimizer, "optimizer")
    lr = cfg.optimizer.get("lr")
    if isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr <= 0:
        problems.append(f"optimizer.lr={lr}: must be greater than 0, e.g. lr: 0.001")
    sched = canonical("scheduler", cfg.scheduler["name"])
    if sched == "cosine":
        cfg.scheduler.setdefault("T_max", cfg.train.epochs)
    problems += spec_problems("scheduler", cfg.scheduler, "scheduler")
    if sched == "multistep":
        milestones = cfg.scheduler.get("milestones")
        late = [x for x in milestones if isinstance(x, int) and x >= cfg.train.epochs] if isinstance(milestones, list) else []
        if late:
            problems.append(f"scheduler.milestones={cfg.scheduler['milestones']}: {late} at or past the last epoch "
                            f"({cfg.train.epochs}) never take effect; lower them or raise train.epochs")
    if cfg.data.task != "auto":
        problems += task_problems(cfg, cfg.data.task, None)
    return problems


def task_problems(cfg: Config, task: str, n_classes: int | None) -> list[str]:
    """Loss, output and monitor against the task (and the number of classes, once the data is read)."""
    problems = []
    from .components import canonical

    loss = loss_name(cfg, task)
    out_act = canonical("output_activation", cfg.model.output_activation["name"])
    classes = f" ({n_classes} classes)" if n_classes else ""
    if task == "regression" and loss in ("cross_entropy", "nll", "bce"):
        problems.append(f"loss={loss}: the target is a regression target; use mse, l1, smooth_l1 or huber")
    if task == "multiclass" and loss == "bce":
        problems.append(f"loss=bce: bce is for two classes, the target has more{classes}; use cross_entropy")
    if task in ("multiclass", "binary") and loss not in ("cross_entropy", "nll", "bce"):
        problems.append(f"loss={loss}: the target is {task} classification{classes}; use cross_entropy"
                        + (" or bce" if task == "binary" else ""))
    if loss == "cross_entropy" and out_act in ("softmax", "log_softmax"):
        problems.append(f"model.output_activation={out_act}: cross_entropy applies log-softmax itself; "
                        f"use output_activation: identity (or loss: nll with log_softmax)")
    if loss == "nll" and out_act != "log_softmax":
        problems.append("loss=nll: nll expects log-probabilities; set model.output_activation: log_softmax "
                        "(or use cross_entropy)")
    if task == "regression" and out_act not in (None, "identity"):
        problems.append(f"model.output_activation={out_act}: a regression output must be free to take any value "
                        f"(the target is standardized, half of it negative); use identity")
    if loss == "bce" and out_act in ("softmax", "log_softmax"):
        problems.append(f"model.output_activation={out_act}: with bce there is one output, and {out_act} over one "
                        f"value is constant; use identity")
    if loss == "bce" and out_act == "sigmoid":
        problems.append("model.output_activation=sigmoid: bce here takes logits and applies the sigmoid itself; "
                        "use output_activation: identity")
    monitor = monitor_name(cfg)
    if monitor not in MONITORS[task]:
        problems.append(f"train.monitor={cfg.train.monitor}: not measured for {task}{did_you_mean(monitor, MONITORS[task])};"
                        f" choose one of: {', '.join(sorted(MONITORS[task]))}")
    return problems


def to_plain(cfg: Config) -> dict:
    """The resolved config as plain YAML-able data."""
    return cfg.model_dump(mode="json")


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_plain(cfg), sort_keys=False)
