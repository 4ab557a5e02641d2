"""Every entry of every component table, parametrized over the tables so a new entry is tested for free."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from nntrain.config import components as C
from nntrain.config.loading import load_config
from nntrain.config.schema import ModelConfig
from nntrain.engine.loop import fit
from nntrain.model.heads import make_criterion
from nntrain.model.mlp import build_mlp, param_table, planned_table

from .conftest import make_table


def run_fit(workdir, task="multiclass", n=160, **sections):
    path = workdir / f"{task}.csv"
    if not path.exists():
        make_table(n=n, task=task).to_csv(path, index=False)
    raw = {
        "name": "t",
        "seed": 0,
        "data": {"path": str(path)},
        "model": {"hidden": [8]},
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 6, "batch_size": 16},
    }
    for k, v in sections.items():
        raw[k] = {**raw[k], **v} if isinstance(v, dict) and isinstance(raw.get(k), dict) else v
    summary = fit(load_config(None, raw=raw), log=lambda m: None)
    with open(f"{summary['run_dir']}/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return summary, rows


@pytest.mark.parametrize("name", list(C.ACTIVATIONS))
def test_activation_builds_trains_and_is_per_layer(name):
    torch.manual_seed(0)
    model = build_mlp(ModelConfig(hidden=[5, 4], activation=name), 3, 2)
    acts = [m for n, m in model.named_children() if n.startswith("act")]
    assert len(acts) == 2 and acts[0] is not acts[1]
    assert all(type(a) is C.factory("activation", name) for a in acts)
    x = torch.randn(7, 3)
    out = model(x)
    out.sum().backward()
    assert out.shape == (7, 2)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_prelu_layers_do_not_share_their_weight():
    model = build_mlp(ModelConfig(hidden=[4, 4], activation="prelu"), 3, 2)
    assert model.act1.weight is not model.act2.weight
    assert sum(p.numel() for p in model.parameters()) == (3 * 4 + 4) + 1 + (4 * 4 + 4) + 1 + (4 * 2 + 2)


@pytest.mark.parametrize("name", list(C.INITS))
def test_init_fills_weights_as_its_formula_says(name):
    fan_out, fan_in = 256, 512
    spec = {"name": name, **({"val": 0.3} if name == "constant" else {})}
    torch.manual_seed(0)
    model = build_mlp(ModelConfig(hidden=[fan_out], init={"weight": spec, "bias": "zeros"}), fan_in, 2)
    w = model.fc1.weight.detach()
    assert torch.equal(model.fc1.bias, torch.zeros(fan_out))
    expected_std = {
        "kaiming_normal": math.sqrt(2 / fan_in),
        "kaiming_uniform": math.sqrt(2 / fan_in),
        "xavier_normal": math.sqrt(2 / (fan_in + fan_out)),
        "xavier_uniform": math.sqrt(2 / (fan_in + fan_out)),
        "normal": 1.0,
        "uniform": 1 / math.sqrt(12),
        "default": 1 / math.sqrt(3 * fan_in),
        "trunc_normal": 0.88,
        "orthogonal": 1 / math.sqrt(fan_in),
    }
    if name == "zeros":
        assert torch.equal(w, torch.zeros_like(w))
    elif name == "ones":
        assert torch.equal(w, torch.ones_like(w))
    elif name == "constant":
        assert torch.allclose(w, torch.full_like(w, 0.3))
    else:
        assert w.std().item() == pytest.approx(expected_std[name], rel=0.05)
    if name == "uniform":
        assert w.min() >= 0 and w.max() <= 1
    if name == "xavier_uniform":
        assert w.abs().max() <= math.sqrt(6 / (fan_in + fan_out))


def test_init_arguments_reach_the_init_function():
    model = build_mlp(
        ModelConfig(
            hidden=[64],
            init={"weight": {"name": "normal", "mean": 5.0, "std": 0.01}, "bias": {"name": "constant", "val": 0.5}},
        ),
        32,
        2,
    )
    assert model.fc1.weight.mean().item() == pytest.approx(5.0, abs=0.01)
    assert torch.equal(model.fc1.bias, torch.full((64,), 0.5))


LOSS_TASK = {
    "cross_entropy": "multiclass",
    "nll": "multiclass",
    "bce": "binary",
    "mse": "regression",
    "l1": "regression",
    "smooth_l1": "regression",
    "huber": "regression",
}


def test_loss_table_and_task_map_agree():
    assert set(LOSS_TASK) == set(C.LOSSES)


@pytest.mark.parametrize("name", list(C.LOSSES))
def test_loss_trains_and_equals_the_torch_formula(workdir, name):
    task = LOSS_TASK[name]
    model = {"output_activation": "log_softmax"} if name == "nll" else {}
    summary, rows = run_fit(workdir, task=task, loss=name, model=model)
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    cfg = load_config(None, raw={"data": {"path": "x"}, "loss": name, "model": model})
    crit = make_criterion(cfg, task)
    torch.manual_seed(0)
    if task == "regression":
        out, y = torch.randn(6, 1), torch.randn(6)
        ref = {
            "mse": nn.functional.mse_loss,
            "l1": nn.functional.l1_loss,
            "smooth_l1": nn.functional.smooth_l1_loss,
            "huber": nn.functional.huber_loss,
        }[name](out[:, 0], y)
    elif task == "binary":
        out, y = torch.randn(6, 1), torch.randint(0, 2, (6,))
        ref = -(y * torch.log(torch.sigmoid(out[:, 0])) + (1 - y) * torch.log(1 - torch.sigmoid(out[:, 0]))).mean()
    else:
        logits, y = torch.randn(6, 3), torch.randint(0, 3, (6,))
        out = torch.log_softmax(logits, 1) if name == "nll" else logits
        ref = -torch.log_softmax(logits, 1)[torch.arange(6), y].mean()
    assert crit(out, y).item() == pytest.approx(ref.item(), rel=1e-5)


STATE_KEY = {"sgd": "momentum_buffer", "adagrad": "sum", "rmsprop": "square_avg", "adam": "exp_avg", "adamw": "exp_avg"}


@pytest.mark.parametrize("name", list(C.OPTIMIZERS))
def test_optimizer_trains_and_its_state_is_checkpointed(workdir, name):
    lr = {"sgd": 0.1, "adagrad": 0.1}.get(name, 0.01)
    extra = {"momentum": 0.9} if name == "sgd" else {}
    summary, rows = run_fit(workdir, optimizer={"name": name, "lr": lr, **extra})
    assert float(rows[-1]["train_loss"]) < 0.8 * float(rows[0]["train_loss"])
    ckpt = torch.load(f"{summary['run_dir']}/last.pt", weights_only=True)
    state = ckpt["optimizer"]["state"]
    assert state and all(STATE_KEY[name] in s for s in state.values())


SCHEDULES = {
    "none": ({}, lambda e: 0.1),
    "step": ({"step_size": 2, "gamma": 0.5}, lambda e: 0.1 * 0.5 ** ((e - 1) // 2)),
    "multistep": ({"milestones": [1, 4], "gamma": 0.1}, lambda e: 0.1 * 0.1 ** ((e > 1) + (e > 4))),
    "exponential": ({"gamma": 0.8}, lambda e: 0.1 * 0.8 ** (e - 1)),
    "cosine": ({"T_max": 6}, lambda e: 0.05 * (1 + math.cos(math.pi * (e - 1) / 6))),
    # no epoch improves by 10 (an absolute threshold), so after the first each one halves the rate
    "plateau": (
        {"patience": 0, "factor": 0.5, "threshold": 10, "threshold_mode": "abs"},
        lambda e: 0.1 * 0.5 ** max(0, e - 2),
    ),
    # no epoch improves by 10, so the stall is found after epoch 2 and the rate falls to 0 over 4 epochs
    "anneal": (
        {"patience": 1, "min_delta": 10, "min_epochs": 4},
        lambda e: 0.1 if e <= 2 else 0.05 * (1 + math.cos(math.pi * (e - 2) / 5)),
    ),
    # stepped after each of an epoch's 8 steps (115 training rows / 16): the rate at each epoch's first step
    "onecycle": ({}, lambda e: one_cycle_rates(0.1, steps=8, epochs=6)[e - 1]),
}


def one_cycle_rates(max_lr: float, steps: int, epochs: int) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=max_lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps * epochs)
    rates = []
    for _ in range(epochs):
        rates.append(opt.param_groups[0]["lr"])
        for _ in range(steps):
            opt.step()
            sched.step()
    return rates


def test_schedule_table_is_covered():
    assert set(SCHEDULES) == set(C.SCHEDULERS)


@pytest.mark.parametrize("name", list(C.SCHEDULERS))
def test_scheduler_sets_the_learning_rate_of_every_epoch(workdir, name):
    kwargs, expected = SCHEDULES[name]
    _, rows = run_fit(workdir, optimizer={"name": "sgd", "lr": 0.1}, scheduler={"name": name, **kwargs})
    assert [float(r["lr"]) for r in rows] == pytest.approx([expected(e) for e in range(1, 7)], rel=1e-5)


def test_the_anneal_schedule_ends_the_run_where_its_anneal_ends(workdir):
    scheduler = {"name": "anneal", "patience": 1, "min_delta": 10, "min_epochs": 3}
    summary, rows = run_fit(workdir, optimizer={"name": "sgd", "lr": 0.1}, scheduler=scheduler, train={"epochs": 50})
    assert len(rows) == 5 and summary["status"] == "early_stop"
    assert "had not improved for 1 epochs at epoch 2; the rate then annealed to 0 over 3 epochs" in summary["stopped"]


def test_the_anneal_starts_at_its_fraction_of_the_rate(workdir):
    """start 0.25: after the stall (epoch 2) the rate falls along the same half cosine, from a quarter of sgd's."""
    scheduler = {"name": "anneal", "patience": 1, "min_delta": 10, "min_epochs": 4, "start": 0.25}
    summary, rows = run_fit(workdir, optimizer={"name": "sgd", "lr": 0.1}, scheduler=scheduler, train={"epochs": 50})
    expected = [0.1, 0.1] + [0.0125 * (1 + math.cos(math.pi * t / 5)) for t in range(1, 5)]
    assert [float(r["lr"]) for r in rows] == pytest.approx(expected, rel=1e-5)
    assert summary["stopped"].endswith("annealed to 0 over 4 epochs, from 0.25 times the optimizer's")


def test_an_anneal_start_out_of_range_is_refused_naming_the_key(workdir):
    from nntrain.errors import UserError

    with pytest.raises(UserError, match="start"):
        run_fit(workdir, optimizer={"name": "sgd", "lr": 0.1}, scheduler={"name": "anneal", "start": 0})


@pytest.mark.parametrize("from_best", [True, False])
def test_the_anneal_from_best_starts_from_the_best_epochs_weights(workdir, from_best):
    """min_delta 10: epoch 1 stays the best. Trained 2 epochs, then resumed for a third, after which the anneal
    begins: the resumed run reads the best weights from best.pt, and last.pt holds what the anneal starts from."""
    from nntrain.engine.loop import train
    from nntrain.engine.state import resume
    from nntrain.runs.checkpoints import load_checkpoint

    scheduler = {"name": "anneal", "patience": 2, "min_delta": 10, "min_epochs": 3, "from_best": from_best}
    sections = {"optimizer": {"name": "sgd", "lr": 0.1}, "scheduler": scheduler}
    summary, _ = run_fit(workdir, train={"epochs": 2, "min_delta": 10}, **sections)
    run_dir = Path(summary["run_dir"])
    train(resume(run_dir, ["train.epochs=3"]), lambda m: None)
    best, last = (load_checkpoint(run_dir / f) for f in ("best.pt", "last.pt"))
    assert best["epoch"] == 1 and last["epoch"] == 3
    same = all(torch.equal(best["model"][k], last["model"][k]) for k in best["model"])
    assert same == from_best


def test_the_l1_penalty_is_reported_apart_from_the_training_loss(workdir):
    """train_loss is the data's loss (comparable with val_loss); train_l1_penalty the penalty of the weights at
    the epoch's end, here checked against last.pt's."""
    from nntrain.runs.checkpoints import load_checkpoint

    summary, rows = run_fit(workdir, train={"epochs": 3, "batch_size": 16, "l1": 0.01})
    last = load_checkpoint(Path(summary["run_dir"]) / "last.pt")["model"]
    weights = sum(float(v.abs().sum()) for k, v in last.items() if k.endswith(".weight"))
    assert float(rows[-1]["train_l1_penalty"]) == pytest.approx(0.01 * weights, rel=1e-5)
    assert float(rows[-1]["train_loss"]) < 2 * float(rows[-1]["val_loss"])  # was 4-5x it, the penalty included
    _, plain = run_fit(workdir, train={"epochs": 3, "batch_size": 16})
    assert "train_l1_penalty" not in plain[0]


def test_a_warmup_rises_linearly_then_the_schedule_runs_over_the_epochs_left(workdir):
    scheduler = {"name": "cosine", "warmup_epochs": 2}
    _, rows = run_fit(workdir, optimizer={"name": "sgd", "lr": 0.1}, scheduler=scheduler)
    cosine = [0.05 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]  # T_max: the 6 epochs less the 2 of warmup
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.1 / 3, 0.2 / 3, *cosine], rel=1e-5)
    _, rows = run_fit(workdir, optimizer={"name": "sgd", "lr": 0.1}, scheduler={"name": "none", "warmup_epochs": 3})
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1], rel=1e-5)


def test_warmup_and_onecycle_refuse_what_they_cannot_do(workdir):
    from nntrain.errors import ConfigError

    def problems(**raw):
        with pytest.raises(ConfigError) as e:
            load_config(None, raw={"data": {"path": "x"}, "train": {"epochs": 5}, **raw})
        return str(e.value)

    assert "scheduler.warmup_epochs=5: must be fewer than train.epochs (5)" in problems(
        scheduler={"name": "step", "step_size": 1, "warmup_epochs": 5}
    )
    assert "plateau does not follow a warmup" in problems(scheduler={"name": "plateau", "warmup_epochs": 1})
    assert "cycle_momentum" in problems(optimizer={"name": "adagrad", "lr": 0.1}, scheduler="onecycle")


def test_plateau_follows_the_monitor_and_waits_for_a_real_stall(workdir):
    cfg = load_config(None, raw={"data": {"path": "x"}, "scheduler": "plateau", "train": {"monitor": "val_accuracy"}})
    assert cfg.scheduler == {"name": "plateau", "mode": "max"}
    _, rows = run_fit(workdir, optimizer={"name": "sgd", "lr": 0.1}, scheduler={"name": "plateau", "patience": 100})
    assert {float(r["lr"]) for r in rows} == {0.1}  # an improving (or patient) run keeps its rate


def test_batch_norm_and_dropout_are_placed_as_documented():
    model = build_mlp(ModelConfig(hidden=[4, 3], batch_norm=True, dropout=0.3), 2, 2)
    assert list(dict(model.named_children())) == ["fc1", "bn1", "act1", "drop1", "fc2", "bn2", "act2", "drop2", "out"]


@pytest.mark.parametrize("batch_size, iterations", [(16, 9), (1, 144), ("full", 1)])
def test_full_stochastic_and_mini_batch_descent(workdir, batch_size, iterations):
    """One update per batch: the iteration count the course's three flavours of gradient descent differ in."""
    summary, rows = run_fit(workdir, n=200, train={"epochs": 2, "batch_size": batch_size})
    ckpt = torch.load(f"{summary['run_dir']}/last.pt", weights_only=True)
    steps = [s["step"] for s in ckpt["optimizer"]["state"].values()]
    assert all(int(s) == 2 * iterations for s in steps)


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "uniform", "a": -0.1, "b": 0.1},
        {"name": "normal", "mean": 0.5, "std": 0.01},
        {"name": "constant", "val": 0.1},
        {"name": "kaiming_normal", "a": 0.01, "mode": "fan_out"},
        {"name": "xavier_uniform", "gain": 2.0},
        {"name": "trunc_normal", "mean": 0.0, "std": 0.02},
    ],
)
def test_every_init_argument_is_accepted_from_a_config(spec):
    """Each argument of the torch init function after the tensor, the first one included (uniform's a)."""
    cfg = load_config(None, raw={"data": {"path": "d.csv"}, "model": {"init": {"weight": spec}}})
    assert cfg.model.init.weight == spec


@pytest.mark.parametrize(
    "model",
    [
        {"hidden": [64, 128]},
        {"hidden": [5, 4], "batch_norm": True, "dropout": 0.3, "activation": "prelu"},
        {
            "layers": [{"size": 7, "activation": "prelu", "batch_norm": True}, {"size": 3, "activation": "tanh"}],
            "output_activation": "prelu",
        },
        {
            "hidden": [9],
            "activation": {"name": "leaky_relu", "negative_slope": 0.2},
            "output_activation": "log_softmax",
        },
        {"hidden": [], "batch_norm": True},
    ],
)
@pytest.mark.parametrize("n_out", [1, 3])
def test_the_count_from_a_config_equals_the_built_models(model, n_out):
    cfg = ModelConfig(**model)
    assert planned_table(cfg, 6, n_out) == param_table(build_mlp(cfg, 6, n_out))


@pytest.mark.parametrize("kind", list(C.TABLES))
def test_every_table_name_resolves_to_its_torch_object(kind):
    for name, entry in C.TABLES[kind].items():
        attr = entry.attr
        obj = C.factory(kind, name)
        assert obj is None if attr is None else obj.__name__ == attr.rpartition(":")[2]


@pytest.mark.parametrize("name", list(C.ACTIVATIONS))
def test_an_activations_record_says_what_torch_does(name):
    """The family the diagnostics rely on, checked against the activation itself: a relu-family unit passes no
    gradient below zero (it can die), every other one passes some there; a saturating one stays in its bounds
    and comes close to both."""
    record = C.ACTIVATIONS[name]
    act = C.build("activation", {"name": name}).eval()
    x = torch.linspace(-3, -0.1, 30, requires_grad=True)
    act(x).sum().backward()
    assert (x.grad.abs().max() == 0) == (record.family == "relu"), record.family
    wide = act(torch.linspace(-50, 50, 101)).detach()
    if record.family == "saturating":
        lo, hi = record.bounds
        assert lo <= wide.min() < lo + 0.01 and hi - 0.01 < wide.max() <= hi
    else:
        assert record.bounds is None
    if record.family == "linear":
        assert torch.equal(wide, torch.linspace(-50, 50, 101))


@pytest.mark.parametrize("name", list(C.ACTIVATIONS))
def test_the_diagnostics_measure_what_the_family_allows(name):
    from nntrain.engine.diagnostics import Diagnostics

    model = build_mlp(ModelConfig(hidden=[4], activation=name), 3, 2)
    columns = Diagnostics(model, 1, torch.zeros(5, 3)).columns()
    family = C.ACTIVATIONS[name].family
    assert ("dead_frac.fc1" in columns) == (family == "relu")
    assert ("saturated_frac.fc1" in columns) == (family == "saturating")


@pytest.mark.parametrize("name", list(C.LOSSES))
def test_a_losss_record_gives_its_outputs_and_criterion(name):
    """one_output: one column per row (bce's logit, a regression value), else one per class."""
    from nntrain.model.mlp import n_outputs

    record = C.LOSSES[name]
    task = LOSS_TASK[name]
    assert task in record.tasks
    model = {"output_activation": "log_softmax"} if name == "nll" else {}
    cfg = load_config(None, raw={"data": {"path": "x", "task": task}, "loss": name, "model": model})
    assert n_outputs(cfg, task, 3 if task == "multiclass" else 2) == (1 if record.one_output else 3)
