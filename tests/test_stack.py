"""K stacked members against K lone models, in float64: the written-out step (fused.py's components), autograd
through the batched forward (embeddings) and through vmap (the rest), every optimizer on the rows, members that
differ in their settings."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

from nntrain.config.components import build
from nntrain.config.loading import load_config
from nntrain.engine.fused import ACTIVATIONS, LOSSES, FusedStep
from nntrain.engine.stacked import AutogradStack, FusedStack, Stack
from nntrain.engine.stacked_batched import BatchedStack, stacked_step
from nntrain.engine.stacked_optim import Each, HeldAdam, StackedAdam, StackedSGD, stacked_optimizer
from nntrain.model.heads import make_criterion
from nntrain.model.mlp import build_mlp

TASK = {"cross_entropy": "multiclass", "bce": "binary", "mse": "regression"}
K = 3


def config(model: dict, loss: str = "cross_entropy", l1: float = 0.0, optimizer: dict | None = None):
    raw = {"data": {"path": "x"}, "loss": loss, "model": {"hidden": [7, 5], **model}, "train": {"l1": l1}}
    return load_config(None, raw={**raw, "optimizer": optimizer or {"name": "sgd", "lr": 0.1}})


def batch(loss: str, n: int = 9, k: int | None = None):
    lead = (k, n) if k else (n,)
    x = torch.randn(*lead, 4, dtype=torch.float64)
    y = torch.randint(0, 3 if loss == "cross_entropy" else 2, lead) if loss != "mse" else torch.randn(*lead).double()
    return x, y


def models(cfg, n_out: int, seeds=range(K)):
    out = []
    for s in seeds:
        torch.manual_seed(s)
        out.append(build_mlp(cfg.model, 4, n_out).double())
    return out


def build_mlp_like(m):
    return copy.deepcopy(m)


@pytest.mark.parametrize("act, loss, l1", list(itertools.product(sorted(ACTIVATIONS), sorted(LOSSES), [0.0, 0.01])))
def test_fused_stack_gives_each_member_its_lone_gradients(act, loss, l1):
    cfgs = [config({"activation": act}, loss, l1 * k) for k in range(K)]  # members differ in train.l1
    n_out = 3 if loss == "cross_entropy" else 1
    members = models(cfgs[0], n_out)
    lone = [build_mlp_like(m) for m in members]
    stack = Stack(members)
    step = FusedStack(stack, [c.train.l1 for c in cfgs], loss)
    x, y = batch(loss, k=K)
    losses = step.loss_and_grads(x, y)
    for k, (m, c) in enumerate(zip(lone, cfgs)):
        ref = FusedStep(m, c, TASK[loss])
        expect = ref.loss_and_grads(x[k], y[k])
        assert torch.allclose(losses[k], expect, rtol=1e-10)
        for p, q in zip(m.parameters(), members[k].parameters()):
            assert torch.allclose(p.grad, q.grad, rtol=1e-9, atol=1e-12)


def test_one_batch_for_all_members_equals_each_its_own_copy():
    cfg = config({"activation": "tanh"})
    members = models(cfg, 3)
    stack = Stack(members)
    step = FusedStack(stack, [0.0] * K, "cross_entropy")
    x, y = batch("cross_entropy")
    shared = step.loss_and_grads(x, y.expand(K, -1)).clone()
    grads = stack.grad.clone()
    own = step.loss_and_grads(x.expand(K, -1, -1).contiguous(), y.expand(K, -1))
    assert torch.allclose(shared, own, rtol=1e-12) and torch.allclose(grads, stack.grad, rtol=1e-12)


def test_weighted_rows_and_members_with_their_own_dropout_rates():
    cfgs = [config({"dropout": p}) for p in (0.0, 0.2, 0.5)]
    members = models(cfgs[0], 3)
    for m, c in zip(members, cfgs):  # the dropout rate is the member's own (same shapes)
        m.hidden = tuple(type(h)(**{**h.__dict__, "dropout": c.model.dropout}) for h in m.hidden)
    lone = [build_mlp_like(m) for m in members]
    stack = Stack(members)
    step = FusedStack(stack, [0.0] * K, "cross_entropy")
    assert isinstance(step.drop[0], torch.Tensor) and step.drop[0].flatten().tolist() == [0.0, 0.2, 0.5]
    x, y = batch("cross_entropy", k=K)
    w = torch.rand(K, 9, dtype=torch.float64) + 0.5
    stack_loss = step.loss_and_grads(x, y, w)
    ref = FusedStep(lone[0], cfgs[0], "multiclass")  # the member without dropout: no random draw matters
    assert torch.allclose(stack_loss[0], ref.loss_and_grads(x[0], y[0], w[0]), rtol=1e-10)
    for p, q in zip(lone[0].parameters(), members[0].parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-9, atol=1e-12)
    assert torch.isfinite(stack_loss).all()


@pytest.mark.parametrize(
    "model, loss",
    [
        ({"activation": "elu", "batch_norm": True}, "cross_entropy"),
        ({"activation": {"name": "prelu"}}, "mse"),
        ({"activation": "gelu", "output_activation": "log_softmax"}, "nll"),
        ({"activation": "selu"}, "huber"),
    ],
)
def test_autograd_stack_gives_each_member_its_lone_gradients_and_batch_norm_statistics(model, loss):
    cfg = config(model, loss, l1=0.01)
    task = {"nll": "multiclass", "cross_entropy": "multiclass"}.get(loss, "regression")
    n_out = 3 if task == "multiclass" else 1
    members = models(cfg, n_out)
    lone = [build_mlp_like(m) for m in members]
    stack = Stack(members)
    criterion = make_criterion(cfg, task)
    for m in members + lone:
        m.train()
    step = AutogradStack(stack, [0.01] * K, criterion)
    x, y = batch("mse" if task == "regression" else "cross_entropy", k=K)
    losses = step.loss_and_grads(x, y)
    for k, m in enumerate(lone):
        weights = sum(mod.weight.abs().sum() for mod in m.modules() if isinstance(mod, torch.nn.Linear))
        data = criterion(m(x[k]), y[k])
        grads = torch.autograd.grad(data + 0.01 * weights, list(m.parameters()))
        assert torch.allclose(losses[k], data, rtol=1e-10)  # the loss reported leaves the penalty out
        for g, q in zip(grads, members[k].parameters()):
            assert torch.allclose(g, q.grad, rtol=1e-9, atol=1e-12)
        for (name, a), b in zip(m.named_buffers(), members[k].buffers()):
            assert torch.allclose(a.double(), b.double()), name


EMBEDDED = [  # (model, rows weighted): numbers through an embedding, and a level-code column of 5 levels
    ({"numeric_embedding": {"name": "periodic", "frequencies": 3, "size": 2}, "activation": "gelu"}, False),
    ({"numeric_embedding": {"name": "piecewise_linear", "bins": 4, "size": 3}}, True),
    ({"activation": "silu"}, True),
]


@pytest.mark.parametrize("model, weighted", EMBEDDED)
@pytest.mark.parametrize("shared", [True, False])
def test_batched_stack_gives_each_member_its_lone_gradients_with_embeddings(model, weighted, shared):
    cfg = config(model, "cross_entropy", l1=0.01)
    members = []
    for s in range(K):
        torch.manual_seed(s)  # inputs: 3 numbers (two embedded), then one level code; each member's own bins
        edges = [[-1.0, -0.2 + s / 10, 0.3, 1.0], [-2.0, s / 5, 2.0]]
        members.append(build_mlp(cfg.model, 4, 3, embeds=[[5, 2]], numeric=list(zip([0, 2], edges))).double())
    lone = [build_mlp_like(m) for m in members]
    stack = Stack(members)
    criterion = make_criterion(cfg, "multiclass", weighted)
    step = stacked_step(stack, False, [0.01] * K, "cross_entropy", criterion)
    assert isinstance(step, BatchedStack)
    x, y = batch("cross_entropy", k=None if shared else K)
    x[..., 3] = torch.randint(0, 5, x.shape[:-1]).double()
    y = y.expand(K, -1) if shared else y
    w = torch.rand(K, 9, dtype=torch.float64) + 0.5 if weighted else None
    losses = step.loss_and_grads(x, y, w)
    outputs = step.forward(x)
    for k, m in enumerate(lone):
        m.eval()  # dropout 0: train and eval forward agree
        xk = x if shared else x[k]
        weights = sum(mod.weight.abs().sum() for mod in m.modules() if isinstance(mod, torch.nn.Linear))
        args = (y[k],) if w is None else (y[k], w[k])
        data = criterion(m(xk), *args)
        grads = torch.autograd.grad(data + 0.01 * weights, list(m.parameters()))
        assert torch.allclose(losses[k], data, rtol=1e-10)
        assert torch.allclose(outputs[k], m(xk), rtol=1e-10)
        for g, q in zip(grads, members[k].parameters()):
            assert torch.allclose(g, q.grad, rtol=1e-9, atol=1e-12)


def test_batched_stack_draws_dropout_for_each_member_at_its_own_rate():
    cfgs = [config({"dropout": p, "numeric_embedding": {"name": "periodic"}}) for p in (0.0, 0.5)]
    members = []
    for c in cfgs:
        torch.manual_seed(0)
        members.append(build_mlp(c.model, 4, 3, numeric=[(0, [])]).double())
    stack = Stack(members)
    step = stacked_step(stack, False, [0.0, 0.0], "cross_entropy", make_criterion(cfgs[0], "multiclass"))
    x, _ = batch("cross_entropy", n=50)
    params = stack.split(stack.flat)
    trained, evaluated = step._forward(params, x, train=True), step.forward(x)
    assert torch.equal(trained[0], evaluated[0])  # rate 0: no mask
    assert (trained[1] - evaluated[1]).abs().max() > 1e-3


OPTIMIZERS = [
    ({"name": "sgd", "lr": 0.1}, StackedSGD),
    ({"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, StackedSGD),
    ({"name": "adam", "lr": 0.01, "weight_decay": 0.01}, StackedAdam),
    ({"name": "adamw", "lr": 0.01, "betas": [0.8, 0.95]}, StackedAdam),
    ({"name": "rmsprop", "lr": 0.01, "momentum": 0.5}, Each),
    ({"name": "adam", "lr": 0.01, "amsgrad": True}, Each),
]


@pytest.mark.parametrize("spec, kind", OPTIMIZERS)
def test_optimizers_on_the_rows_equal_torch_per_member_and_resume_from_a_lone_state(spec, kind):
    cfg = config({})
    # the members' own settings: another rate and, for SGD, one without momentum
    specs = [{**spec, "lr": spec["lr"] * (k + 1)} for k in range(K)]
    if spec.get("momentum") and not spec.get("nesterov"):
        specs[1]["momentum"] = 0.0
    members = models(cfg, 3)
    lone = [build_mlp_like(m) for m in members]
    stack = Stack(members)
    # a bag's members hold Adam as HeldAdam (build_parts): torch's settings, without torch's constructor
    held = HeldAdam.applies(spec)
    mine = [
        HeldAdam(s, list(m.parameters())) if held else build("optimizer", s, m.parameters())
        for s, m in zip(specs, members)
    ]
    theirs = [build("optimizer", s, m.parameters()) for s, m in zip(specs, lone)]
    assert held == (kind is StackedAdam)
    opt = stacked_optimizer(stack, mine, specs)
    assert type(opt) is kind

    def steps(n):
        for _ in range(n):
            stack.grad.copy_(torch.randn_like(stack.grad))
            for k, m in enumerate(lone):
                for p, q in zip(m.parameters(), members[k].parameters()):
                    p.grad = q.grad.clone()
                theirs[k].step()
            opt.step()

    steps(3)
    # a member's state_dict is torch's own: a lone optimizer takes it, and the stack takes a lone one's
    saved = [o.state_dict() for o in mine]
    for k, o in enumerate(theirs):
        lone_state = o.state_dict()
        assert lone_state["state"].keys() == saved[k]["state"].keys()
        for i, st in lone_state["state"].items():
            for key, value in st.items():
                assert torch.allclose(
                    torch.as_tensor(value).double(), torch.as_tensor(saved[k]["state"][i][key]).double()
                )
        assert lone_state["param_groups"] == saved[k]["param_groups"]
        fresh = build("optimizer", specs[k], build_mlp_like(members[k]).parameters())
        fresh.load_state_dict(copy.deepcopy(saved[k]))  # and torch's optimizer takes a member's
        assert fresh.state_dict()["param_groups"] == lone_state["param_groups"]
        mine[k].load_state_dict(copy.deepcopy(lone_state))  # torch would share the tensors otherwise
    opt.adopt()
    steps(3)
    for m, n in zip(lone, members):
        for p, q in zip(m.parameters(), n.parameters()):
            assert torch.allclose(p, q, rtol=1e-10, atol=1e-12)


def test_a_stopped_member_keeps_its_weights_while_the_others_train():
    cfg = config({})
    members = models(cfg, 3)
    stack = Stack(members)
    specs = [{"name": "adam", "lr": 0.01}] * K
    opt = stacked_optimizer(stack, [build("optimizer", s, m.parameters()) for s, m in zip(specs, members)], specs)
    stack.grad.normal_()
    opt.step()
    opt.stop(1)
    frozen = stack.flat[1].clone()
    moving = stack.flat[0].clone()
    for _ in range(3):
        stack.grad.normal_()
        opt.step()
    assert torch.equal(stack.flat[1], frozen) and not torch.equal(stack.flat[0], moving)
    assert all(torch.equal(p, stack.params[n][1]) for n, p in members[1].named_parameters())


@pytest.mark.parametrize("embedded", [False, True])
@pytest.mark.parametrize("loss, n_out", [("mse", 1), ("cross_entropy", 3)])
def test_a_members_numbers_do_not_depend_on_how_many_its_engine_holds(embedded, loss, n_out):
    """In float32 as trained: torch's kernels for one member differ from those for two (one output: a
    matrix-vector product), and a resume or the stopped members leaving regroups the members."""
    model = {"hidden": [64, 32], "numeric_embedding": {"name": "periodic"} if embedded else None}
    cfg = config(model, loss)
    task = "regression" if loss == "mse" else "multiclass"
    torch.manual_seed(5)
    x, y = torch.randn(3, 40, 4), torch.randn(3, 40) if loss == "mse" else torch.randint(0, 3, (3, 40))
    seen = []
    for k in (1, 2, 3):
        members = []
        for s in range(k):
            torch.manual_seed(s)
            members.append(build_mlp(cfg.model, 4, n_out, numeric=[(0, []), (1, [])] if embedded else None))
        stack = Stack(members)
        step = stacked_step(stack, not embedded, [0.0] * k, loss, make_criterion(cfg, task))
        assert isinstance(step, BatchedStack if embedded else FusedStack)
        losses = step.loss_and_grads(x[:k], y[:k])
        seen.append((losses[0], stack.grad[0].clone(), step.forward(x[:k])[0]))
    for other in seen[1:]:
        assert all(torch.equal(a, b) for a, b in zip(seen[0], other))
