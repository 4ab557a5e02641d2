"""model.shared_members (TabM-mini): k members sharing one MLP's layers, each with its own input scaling and output
layer; what they predict, what a step trains on, the stacked engines against a lone model, and a bag of them from
fit to predict and export."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from nntrain.config.loading import load_config
from nntrain.config.schema import ModelConfig
from nntrain.engine.stacked import AutogradStack, Stack
from nntrain.engine.stacked_batched import BatchedStack, stacked_step
from nntrain.model.embeddings import first_inputs
from nntrain.model.heads import make_criterion
from nntrain.model.mlp import build_mlp, param_table, planned_table
from nntrain.model.shared import members_loss

K, J = 3, 4  # bag members, shared members in each


def by_hand(m, x: torch.Tensor) -> torch.Tensor:
    """Member j's outputs [J, rows, outputs] from the shared layers' weights, computed apart for each member."""
    h0 = first_inputs(m, x)
    out = []
    for j in range(m.n_shared):
        h = h0 * m.adapter.weight[j]
        for layer in m.hidden:
            h = layer.act(layer.linear(h))
        W, b = m.out.weight[j * m.n_out : (j + 1) * m.n_out], m.out.bias[j * m.n_out : (j + 1) * m.n_out]
        out.append(h @ W.T + b)
    return torch.stack(out)


@pytest.mark.parametrize("task, n_out", [("multiclass", 3), ("binary", 1), ("regression", 1)])
def test_shared_members_predict_the_mean_of_their_probabilities(task, n_out):
    torch.manual_seed(0)
    cfg = ModelConfig(hidden=[6, 5], shared_members=J, numeric_embedding="periodic")
    m = build_mlp(cfg, 4, n_out, embeds=[[5, 2]], task=task, numeric=[(0, []), (1, [])]).double().eval()
    x = torch.randn(11, 4, dtype=torch.float64)
    x[:, 3] = torch.randint(0, 5, (11,)).double()
    z = by_hand(m, x)
    assert torch.allclose(m(x, members=True), z, rtol=1e-12)
    assert len({tuple(r) for r in m.adapter.weight.tolist()}) > 1  # the members start apart
    if task == "multiclass":
        assert torch.allclose(m(x).softmax(1), z.softmax(2).mean(0), rtol=1e-12)
    elif task == "binary":
        assert torch.allclose(torch.sigmoid(m(x)), torch.sigmoid(z).mean(0), rtol=1e-12)
    else:
        assert torch.allclose(m(x), z.mean(0), rtol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_a_step_trains_on_the_mean_of_the_members_losses(weighted):
    cfg = load_config(None, raw={"data": {"path": "x"}})
    criterion = make_criterion(cfg, "multiclass", weighted)
    z, y = torch.randn(J, 8, 3, dtype=torch.float64), torch.randint(0, 3, (8,))
    w = torch.rand(8, dtype=torch.float64) + 0.5 if weighted else None
    each = [criterion(z[j], y, w) for j in range(J)]
    assert torch.allclose(members_loss(criterion, z, y, w), torch.stack(each).mean(), rtol=1e-12)


@pytest.mark.parametrize("model", [{}, {"batch_norm": True}, {"hidden": []}])
def test_the_count_from_a_config_equals_the_built_shared_members(model):
    cfg = ModelConfig(**{"hidden": [7, 5], **model, "shared_members": J, "numeric_embedding": "periodic"})
    numeric, embeds = [(0, []), (2, [])], [[5, 2]]
    built = build_mlp(cfg, 4, 3, embeds=embeds, task="multiclass", numeric=numeric)
    table = planned_table(cfg, 4, 3, embeds, numeric)
    assert table == param_table(built)
    last = table["layers"][-1]  # one plain number, two numbers embedded 8 wide, one level code embedded 2 wide
    assert (last["layer"], last["shape"]) == ("adapter", [J, 1 + 2 * 8 + 2])


@pytest.mark.parametrize("model, engine", [({}, BatchedStack), ({"batch_norm": True}, AutogradStack)])
def test_stacked_shared_members_get_their_lone_models_gradients(model, engine):
    raw = {"data": {"path": "x"}, "model": {"hidden": [7, 5], "shared_members": J, **model}, "train": {"l1": 0.01}}
    cfg = load_config(None, raw=raw)
    members = []
    for s in range(K):
        torch.manual_seed(s)
        members.append(build_mlp(cfg.model, 4, 3, task="multiclass", numeric=[(0, []), (1, [])]).double())
    lone = [copy.deepcopy(m) for m in members]
    stack = Stack(members)
    criterion = make_criterion(cfg, "multiclass", True)
    step = stacked_step(stack, False, [0.01] * K, "cross_entropy", criterion)
    assert type(step) is engine
    x, y = torch.randn(K, 9, 4, dtype=torch.float64), torch.randint(0, 3, (K, 9))
    w = torch.rand(K, 9, dtype=torch.float64) + 0.5
    losses = step.loss_and_grads(x, y, w)
    for k, m in enumerate(lone):
        m.train()  # batch norm: the batch's statistics, as the stacked step uses them
        data = members_loss(criterion, m(x[k], members=True), y[k], w[k])
        weights = sum(mod.weight.abs().sum() for mod in m.modules() if isinstance(mod, torch.nn.Linear))
        grads = torch.autograd.grad(data + 0.01 * weights, list(m.parameters()))
        assert torch.allclose(losses[k], data, rtol=1e-10)
        for g, q in zip(grads, members[k].parameters()):
            assert torch.allclose(g, q.grad, rtol=1e-9, atol=1e-12)
        m.eval()
        assert torch.allclose(step.forward(x)[k], m(x[k]), rtol=1e-9)


@pytest.fixture()
def wine(workdir):
    from sklearn.datasets import load_wine

    load_wine(as_frame=True).frame.to_csv(workdir / "wine.csv", index=False)
    return workdir / "wine.csv"


def test_a_bag_of_shared_members_fits_predicts_and_exports(wine, workdir, cli):
    over = ["model.shared_members=4", "model.hidden=[32]", "train.epochs=6", "train.bag=3", "train.plots=false"]
    r = cli("fit", str(wine), "--target", "target", *over)
    assert r.exit_code == 0, r.output
    assert "-> 3 x 4 members sharing the hidden layers" in r.output
    run = workdir / "runs" / "wine"
    r = cli("predict", str(run), str(wine), "--output", str(workdir / "p.csv"))
    assert r.exit_code == 0, r.output
    p = pd.read_csv(workdir / "p.csv")
    proba = p[["proba_0", "proba_1", "proba_2"]].to_numpy()
    assert np.allclose(proba.sum(1), 1) and (p["prediction"] == proba.argmax(1)).all()
    assert (p["prediction"] == pd.read_csv(wine)["target"]).mean() > 0.8
    r = cli("export", str(run), "--format", "onnx")  # export compares the file's outputs with the model's
    assert r.exit_code == 0, r.output
    assert (run / "model.onnx").stat().st_size > 0


def test_shared_members_with_an_ensemble_are_refused_naming_the_key(wine, cli):
    r = cli("fit", str(wine), "--target", "target", "model.shared_members=4", "model.ensemble=2")
    assert r.exit_code == 2
    assert "model.shared_members=4: model.ensemble=2 trains members apart" in r.output
    assert "Traceback" not in r.output
