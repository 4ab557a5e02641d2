"""A fused training step for plain MLPs: forward and backward written out, no autograd graph.

At small batches a step's time is per-op overhead, not arithmetic (DESIGN.md: about 400 us with autograd,
a few us of it arithmetic). Writing the forward and backward of Linear -> activation -> dropout layers out
by hand, and the SGD-momentum update as a few ops on one flat tensor, takes a step to about half.
tests/test_fused.py checks every gradient against autograd in float64.

Covered: Linear layers; relu, leaky_relu, tanh, sigmoid, identity; dropout; cross_entropy, bce, mse (with
no extra loss arguments); an identity output; train.l1. Anything else (batch norm, prelu, rrelu, elu, ...,
softmax outputs, huber) trains through autograd; `plan()` says which path and why.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import torch
from torch import nn

from nntrain.config import components
from nntrain.config.schema import Config, loss_args, loss_name

# What the written-out step implements, from the component records.
ACTIVATIONS = {name for name, r in components.ACTIVATIONS.items() if r.fused}
LOSSES = {name for name, r in components.LOSSES.items() if r.fused}


def plan(cfg: Config, task: str, embedded: bool = False) -> tuple[bool, str]:
    """(fused?, why): the path a config takes (`embedded`: the data has columns learned through embeddings)."""
    m = cfg.model
    if embedded:
        return False, "embedded string columns"
    if m.numeric_embedding is not None:
        return False, "numeric embeddings"
    if m.shared_members > 1:
        return False, "shared members"
    loss = loss_name(cfg, task)
    for i, layer in enumerate(m.resolved_layers()):
        act, slope = activation(layer.activation)
        if act not in ACTIVATIONS:
            return False, f"layer {i + 1} uses {act}"
        extra = set(layer.activation) - {"name", "negative_slope"}
        if extra:
            return False, f"layer {i + 1}'s activation has arguments {', '.join(sorted(extra))}"
        if slope < 0:
            return False, f"layer {i + 1}'s negative_slope is below 0"
        if layer.batch_norm:
            return False, "batch norm"
    if components.record("output_activation", m.output_activation["name"]).family != "linear":
        return False, f"output activation {m.output_activation['name']}"
    if loss not in LOSSES:
        return False, f"loss {loss}"
    args = loss_args(cfg, task)
    if args:
        return False, f"loss arguments {', '.join(args)}"
    return True, "plain MLP"


def written_out(cfg: Config, task: str, prep: dict) -> bool:
    """Whether a model of this config, on data prepared as `prep`, steps with the written-out step."""
    from nntrain.model.embeddings import embeds_of

    return cfg.train.engine != "autograd" and plan(cfg, task, embedded=bool(embeds_of(prep)))[0]


def activation(spec: dict) -> tuple[str, float]:
    """(name, negative slope) of an activation spec; the slope is nn.LeakyReLU's default if unset."""
    return components.canonical("activation", spec["name"]), float(spec.get("negative_slope", 0.01))


@dataclass
class Layer:
    linear: nn.Linear
    act: str
    slope: float
    dropout: float


class FusedStep:
    """loss_and_grads(x, y) for a model that build_mlp made; it fills each parameter's .grad."""

    def __init__(self, model: nn.Sequential, cfg: Config, task: str):
        self.layers = [Layer(h.linear, *activation(h.activation), h.dropout) for h in model.hidden]
        self.out = model.out
        self.loss = loss_name(cfg, task)
        self.l1 = cfg.train.l1
        self.params = [p for layer in self.layers for p in (layer.linear.weight, layer.linear.bias)] + [
            self.out.weight,
            self.out.bias,
        ]
        # Parameters and gradients become views of two flat tensors: the optimizer then updates every layer
        # with a few ops on one tensor, and the backward writes gradients in place (out=) with no allocation.
        self.flat = _flatten(self.params)
        self.flat_grad = torch.zeros_like(self.flat)
        for p, g in zip(self.params, views(self.flat_grad, self.params)):
            p.grad = g
        self.l1_weights = [layer.linear.weight for layer in self.layers] + [self.out.weight]
        self.l1_grads = [w.grad for w in self.l1_weights]  # views of flat_grad: fixed for the run

    @torch.no_grad()  # no graph is recorded: the backward below is the one that runs
    def loss_and_grads(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        saved = []  # per hidden layer: input, activation output, dropout mask
        h = x
        for layer in self.layers:
            a = act(torch.addmm(layer.linear.bias, h, layer.linear.weight.t()), layer)
            mask = None
            if layer.dropout:
                # uniform draws against p: the same masks in distribution as nn.Dropout's bernoulli_, at half the cost
                mask = torch.rand_like(a).ge_(layer.dropout).mul_(1 / (1 - layer.dropout))
            saved.append((h, a, mask))
            h = a if mask is None else a * mask
        z = torch.addmm(self.out.bias, h, self.out.weight.t())
        loss, dz = loss_and_grad(self.loss, z, y, w)
        torch.mm(dz.t(), h, out=self.out.weight.grad)
        torch.sum(dz, 0, out=self.out.bias.grad)
        dh = dz.mm(self.out.weight)
        for i in range(len(self.layers) - 1, -1, -1):
            layer, (h_in, a, mask) = self.layers[i], saved[i]
            if mask is not None:
                dh.mul_(mask)  # dh is always a fresh result here
            dpre = act_backward(dh, a, layer)
            torch.mm(dpre.t(), h_in, out=layer.linear.weight.grad)
            torch.sum(dpre, 0, out=layer.linear.bias.grad)
            if i:
                dh = dpre.mm(layer.linear.weight)
        if self.l1:  # the penalty's gradient; the loss returned is the data's alone (loop.py reports the penalty)
            torch._foreach_add_(self.l1_grads, torch._foreach_sign(self.l1_weights), alpha=self.l1)
        return loss


def views(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    """flat cut into one view per tensor of `like`, each shaped as that tensor."""
    return [t.view_as(p) for t, p in zip(flat.split([p.numel() for p in like]), like)]


def _flatten(params: list[nn.Parameter]) -> torch.Tensor:
    """Copy the parameters into one tensor and make each a view of its slice (same values, same objects)."""
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    for p, v in zip(params, views(flat, params)):
        p.data = v
    return flat


def act(z: torch.Tensor, layer: Layer) -> torch.Tensor:
    if layer.act == "relu":
        return torch.relu(z)
    if layer.act == "leaky_relu":
        return nn.functional.leaky_relu(z, layer.slope)
    if layer.act == "tanh":
        return torch.tanh(z)
    if layer.act == "sigmoid":
        return torch.sigmoid(z)
    return z


def act_backward(da: torch.Tensor, a: torch.Tensor, layer: Layer) -> torch.Tensor:
    """d loss / d pre-activation, from the activation's output (enough for all five)."""
    if layer.act == "relu":
        return torch.ops.aten.threshold_backward(da, a, 0)
    if layer.act == "leaky_relu":
        return torch.ops.aten.leaky_relu_backward(da, a, layer.slope, True)  # a > 0 exactly where z > 0 (slope >= 0)
    if layer.act == "tanh":
        return torch.ops.aten.tanh_backward(da, a)
    if layer.act == "sigmoid":
        return torch.ops.aten.sigmoid_backward(da, a)
    return da


def loss_and_grad(
    kind: str, z: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's mean loss and its gradient in z. z: [B, C] for one model, or [K, B, C] for K stacked ones
    (y and w: [B] or [K, B]), whose loss is then one per model, [K]."""
    if w is not None:
        return _weighted_loss_and_grad(kind, z, y, w)
    n = z.shape[-2]
    if kind == "cross_entropy":
        logp = torch.log_softmax(z, dim=-1)
        picked = logp.gather(-1, y[..., None])
        dz = logp.exp_().scatter_add_(-1, y[..., None], torch.full_like(picked, -1.0))  # softmax - one_hot
        return picked.sum((-2, -1)).div_(-n), dz.div_(n)
    t = y.to(z.dtype)[..., None]
    if kind == "bce":
        loss = nn.functional.binary_cross_entropy_with_logits(z, t, reduction="none").mean((-2, -1))
        return loss, (torch.sigmoid(z) - t).div_(n)
    diff = z - t  # mse
    return diff.pow(2).mean((-2, -1)), diff.mul_(2.0 / n)


def _weighted_loss_and_grad(
    kind: str, z: torch.Tensor, y: torch.Tensor, w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """sum(w * loss) / sum(w) and its gradient: each row's part scaled by its share of the weight."""
    share = (w / w.sum(-1, keepdim=True))[..., None]
    if kind == "cross_entropy":
        logp = torch.log_softmax(z, dim=-1)
        picked = logp.gather(-1, y[..., None])
        dz = logp.exp_().scatter_add_(-1, y[..., None], torch.full_like(picked, -1.0))
        return -(picked * share).sum((-2, -1)), dz.mul_(share)
    t = y.to(z.dtype)[..., None]
    if kind == "bce":
        loss = nn.functional.binary_cross_entropy_with_logits(z, t, reduction="none").mul_(share).sum((-2, -1))
        return loss, (torch.sigmoid(z) - t).mul_(share)
    diff = z - t  # mse
    return (diff.pow(2) * share).sum((-2, -1)), diff.mul_(2.0 * share)


@dataclass
class Held:
    """What FlatSGD reads of a FusedStep when another engine computes and applies the step (stacked.py's members):
    the parameters, and a tensor of their dtype and device."""

    params: list[nn.Parameter]
    flat: torch.Tensor


class FlatSGD(torch.optim.Optimizer):
    """torch.optim.SGD (momentum, nesterov, weight decay) on the fused step's flat tensors: three ops per step
    for the whole model instead of three per parameter.

    Its state_dict is torch.optim.SGD's, so a checkpoint resumes on either path. It sets itself up without
    Optimizer.__init__ and overrides state_dict / load_state_dict, because those base methods import
    torch._dynamo on first use (1.2 s, a quarter of a small run); an LR scheduler needs only param_groups
    and step, which it wraps to know a step was taken."""

    ARGS = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize", "foreach", "differentiable", "fused")

    def __init__(
        self,
        fused: FusedStep,
        lr: float = 0.001,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        **ignored: object,
    ):
        self.fused = fused
        self.defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": 0,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": False,
            "foreach": None,
            "differentiable": False,
            "fused": None,
        }
        self.param_groups = [{"params": list(fused.params), **self.defaults}]
        self.state = collections.defaultdict(dict)
        self.buf: torch.Tensor | None = None  # flat momentum buffer; state[p]["momentum_buffer"] are views of it

    @staticmethod
    def applies(spec: dict) -> bool:
        """SGD whose every argument FlatSGD implements (torch checks the values before this runs)."""
        return (
            components.record("optimizer", spec["name"]).fused
            and not spec.get("dampening", 0)
            and not spec.get("maximize", False)
            and set(spec) - {"name"} <= set(FlatSGD.ARGS)
        )

    def _share_buffer(self) -> None:
        for p, b in zip(self.fused.params, views(self.buf, self.fused.params)):
            self.state[p]["momentum_buffer"] = b

    def state_dict(self) -> dict:
        group = self.param_groups[0]
        return {
            "state": {
                i: {"momentum_buffer": self.state[p]["momentum_buffer"]}
                for i, p in enumerate(self.fused.params)
                if p in self.state
            },
            "param_groups": [
                {**{k: v for k, v in group.items() if k != "params"}, "params": list(range(len(self.fused.params)))}
            ],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self.param_groups[0].update({k: v for k, v in state_dict["param_groups"][0].items() if k != "params"})
        buffers = [state_dict["state"].get(i, {}).get("momentum_buffer") for i in range(len(self.fused.params))]
        if all(b is not None for b in buffers):
            self.buf = torch.cat([b.reshape(-1) for b in buffers]).to(self.fused.flat)
            self._share_buffer()

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass  # the fused step overwrites every gradient each step

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        group = self.param_groups[0]
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        grad = self.fused.flat_grad
        if wd:
            grad = grad.add(self.fused.flat, alpha=wd)
        if momentum:
            if self.buf is None:
                self.buf = grad.clone()
                self._share_buffer()
            else:
                self.buf.mul_(momentum).add_(grad)
            grad = grad.add(self.buf, alpha=momentum) if group["nesterov"] else self.buf
        self.fused.flat.add_(grad, alpha=-lr)
