"""The fused step against autograd: every activation, loss, dropout and L1 it claims, in float64."""

from __future__ import annotations

import itertools

import pytest
import torch

from nntrain.config.loading import load_config
from nntrain.engine.fused import ACTIVATIONS, LOSSES, FlatSGD, FusedStep, plan
from nntrain.errors import UserError
from nntrain.model.heads import make_criterion
from nntrain.model.mlp import build_mlp

TASK = {"cross_entropy": "multiclass", "bce": "binary", "mse": "regression"}


def cfg_for(act, loss, dropout, l1, slope=None):
    activation = {"name": act, **({"negative_slope": slope} if slope is not None else {})}
    return load_config(
        None,
        raw={
            "data": {"path": "x"},
            "loss": loss,
            "model": {"hidden": [7, 5], "activation": activation, "dropout": dropout},
            "train": {"l1": l1},
        },
    )


def data(loss, n=11):
    x = torch.randn(n, 4, dtype=torch.float64)
    if loss == "cross_entropy":
        return x, torch.randint(0, 3, (n,))
    if loss == "bce":
        return x, torch.randint(0, 2, (n,))
    return x, torch.randn(n, dtype=torch.float64)


COMBOS = list(itertools.product(sorted(ACTIVATIONS), sorted(LOSSES), [0.0, 0.3], [0.0, 0.01]))


def autograd_loss(model, cfg, task, x, y, dropout, l1):
    """The same function through torch's modules and autograd; dropout masks drawn as the fused step draws them
    (the same seed gives the same masks)."""
    h = x
    for k in range(1, len(cfg.model.resolved_layers()) + 1):
        h = getattr(model, f"act{k}")(getattr(model, f"fc{k}")(h))
        if dropout:
            h = h * torch.rand_like(h).ge_(dropout).mul_(1 / (1 - dropout))
    weights = sum(m.weight.abs().sum() for m in model if isinstance(m, torch.nn.Linear))
    return make_criterion(cfg, task)(model.out(h), y) + l1 * weights


@pytest.mark.parametrize("act, loss, dropout, l1", COMBOS)
def test_gradients_match_autograd(act, loss, dropout, l1):
    cfg = cfg_for(act, loss, dropout, l1, slope=0.2 if act == "leaky_relu" else None)
    task = TASK[loss]
    assert plan(cfg, task) == (True, "plain MLP")
    torch.manual_seed(1)
    model = build_mlp(cfg.model, 4, 3 if loss == "cross_entropy" else 1).double()
    x, y = data(loss)
    model.train()
    torch.manual_seed(7)
    ref = autograd_loss(model, cfg, task, x, y, dropout, l1)
    grads = torch.autograd.grad(ref, list(model.parameters()))
    penalty = l1 * sum(m.weight.abs().sum() for m in model if isinstance(m, torch.nn.Linear))
    if not dropout:  # the written-out forward is the model's own forward
        assert torch.allclose(ref - penalty, make_criterion(cfg, task)(model(x), y), rtol=1e-12)
    torch.manual_seed(7)
    fused = FusedStep(model, cfg, task)
    loss_value = fused.loss_and_grads(x, y)  # the data's loss: the penalty is reported apart
    assert loss_value.item() == pytest.approx((ref - penalty).item(), rel=1e-12)
    by_param = {id(p): p.grad for p in fused.params}
    for p, g in zip(model.parameters(), grads):
        rel = (by_param[id(p)] - g).norm() / g.norm().clamp_min(1e-30)
        assert rel <= 1e-5, (act, loss, dropout, l1, rel.item())


@pytest.mark.parametrize(
    "cfg_changes, why",
    [
        ({"model": {"hidden": [4], "activation": "elu"}}, "layer 1 uses elu"),
        ({"model": {"hidden": [4], "batch_norm": True}}, "batch norm"),
        ({"model": {"hidden": [4], "activation": "prelu"}}, "layer 1 uses prelu"),
        ({"loss": "huber", "data": {"path": "x", "task": "regression"}, "recipe": "course"}, "loss huber"),
        (
            {"loss": {"name": "cross_entropy", "label_smoothing": 0.1}, "recipe": "course"},
            "loss arguments label_smoothing",
        ),
        ({}, "numeric embeddings"),  # the tabular recipe's, for a config that names no model
        (
            {"model": {"hidden": [4], "activation": {"name": "leaky_relu", "negative_slope": -0.1}}},
            "negative_slope is below 0",
        ),
    ],
)
def test_everything_else_takes_the_autograd_path(cfg_changes, why):
    raw = {"data": {"path": "x"}, **cfg_changes}
    cfg = load_config(None, raw=raw)
    fused, reason = plan(cfg, "regression" if cfg.data.task == "regression" else "multiclass")
    assert not fused and why in reason


@pytest.mark.parametrize(
    "momentum, nesterov, wd", [(0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 1e-3), (0.5, False, 1e-2)]
)
def test_flat_sgd_equals_torch_sgd_and_resumes_from_its_state(momentum, nesterov, wd):
    cfg = cfg_for("relu", "mse", 0.0, 0.0)
    torch.manual_seed(0)
    a = build_mlp(cfg.model, 4, 1).double()
    b = build_mlp(cfg.model, 4, 1).double()
    b.load_state_dict(a.state_dict())
    kw = {"lr": 0.1, "momentum": momentum, "nesterov": nesterov, "weight_decay": wd}
    opt_a = torch.optim.SGD(a.parameters(), **kw)
    assert FlatSGD.applies({"name": "sgd", **kw}) and not FlatSGD.applies({"name": "sgd", "dampening": 0.1})
    fused = FusedStep(b, cfg, "regression")
    opt_b = FlatSGD(fused, **kw)

    def steps(k, fused, opt_b):
        for _ in range(k):
            fused.flat_grad.copy_(torch.randn_like(fused.flat_grad))
            for p, q in zip(a.parameters(), b.parameters()):
                p.grad = q.grad.clone()
            opt_a.step()
            opt_b.step()

    steps(3, fused, opt_b)
    saved_model, saved_opt = {k: v.clone() for k, v in b.state_dict().items()}, opt_b.state_dict()
    # torch's SGD reads FlatSGD's state, and FlatSGD reads torch's: checkpoints cross paths
    other = torch.optim.SGD(build_mlp(cfg.model, 4, 1).double().parameters(), **kw)
    other.load_state_dict(saved_opt)
    b.load_state_dict(saved_model)
    fused = FusedStep(b, cfg, "regression")
    opt_b = FlatSGD(fused, **kw)
    opt_b.load_state_dict(opt_a.state_dict())
    steps(3, fused, opt_b)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, rtol=1e-12, atol=1e-14)
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert sa["state"].keys() == sb["state"].keys()
    assert dict(sa["param_groups"][0].items()) == sb["param_groups"][0]
    for k in sa["state"]:
        assert torch.allclose(sa["state"][k]["momentum_buffer"], sb["state"][k]["momentum_buffer"], rtol=1e-12)


def test_flat_parameters_keep_their_values_and_checkpoint_normally():
    cfg = cfg_for("tanh", "cross_entropy", 0.0, 0.0)
    model = build_mlp(cfg.model, 4, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    FusedStep(model, cfg, "multiclass")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    fresh = build_mlp(cfg.model, 4, 3)
    fresh.load_state_dict(after)
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())


def val_losses(workdir, raw: dict, log=lambda m: None) -> list[float]:
    """Fit `raw` on d.csv in workdir; its validation loss per epoch."""
    from nntrain.engine.loop import fit

    from .conftest import metrics_rows

    fit(load_config(None, raw={"data": {"path": "d.csv"}, **raw}), log=log)
    return [float(r["val_loss"]) for r in metrics_rows(workdir / "runs" / raw["name"])]


@pytest.mark.parametrize(
    "model, optimizer, train",
    [
        ({"hidden": [16, 8]}, {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4}, {"l1": 1e-4}),
        # the fused path clips its flat gradient in two ops; the rule is clip_grad_norm_'s
        (
            {"hidden": [16, 8], "activation": "leaky_relu"},
            {"name": "sgd", "lr": 0.2, "momentum": 0.9},
            {"grad_clip": 0.05},
        ),
    ],
    ids=["l1-weight-decay", "leaky-relu-grad-clip"],
)
def test_fused_and_autograd_fits_agree(workdir, model, optimizer, train):
    """Same config, both paths, float32: the same curve to within rounding."""
    from .conftest import make_table

    make_table(n=400).to_csv(workdir / "d.csv", index=False)
    rows = {
        engine: val_losses(
            workdir,
            {
                "name": engine,
                "model": model,
                "optimizer": optimizer,
                "train": {"epochs": 5, "batch_size": 16, "engine": engine, **train},
            },
        )
        for engine in ("fused", "autograd")
    }
    assert rows["fused"] == pytest.approx(rows["autograd"], rel=1e-3)


@pytest.mark.slow
def test_compiled_fit_matches_eager(workdir):
    """train.compile: true runs the autograd step through torch.compile: same curve as eager, same files."""
    from .conftest import make_table

    make_table(n=300).to_csv(workdir / "d.csv", index=False)
    rows, notes = {}, {}
    for name, compiled in (("eager", False), ("compiled", True)):
        raw = {
            "name": name,
            "model": {"hidden": [16]},
            "optimizer": {"name": "adam", "lr": 0.01},
            "train": {"epochs": 3, "batch_size": 32, "engine": "autograd", "compile": compiled},
        }
        lines = []
        rows[name] = val_losses(workdir, raw, log=lines.append)
        notes[name] = next(line for line in lines if "iterations per epoch" in line)
        assert (workdir / "runs" / name / "best.pt").is_file()
    assert "torch.compile" in notes["compiled"] and "torch.compile" not in notes["eager"]
    assert rows["compiled"] == pytest.approx(rows["eager"], rel=1e-4)


def test_compile_with_fused_engine_is_a_config_problem(workdir):
    with pytest.raises(UserError, match=r"train.compile=true.*engine: auto"):
        load_config(None, raw={"data": {"path": "d.csv"}, "train": {"compile": True, "engine": "fused"}})
