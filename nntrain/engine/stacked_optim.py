"""The optimizer step of K stacked members at once. Each member keeps its own torch optimizer (or, for the
members of one model.ensemble, its own param group of the run's one optimizer): its hyperparameters are read
from there at every step (so a member's scheduler changes that member's rate), and its state tensors are
views of the stacked state, so its state_dict is the one a lone run would save and a lone run can resume it.
SGD and Adam/AdamW (the records' `stacked` field) are written out on the [K, P] rows as torch writes them;
any other optimizer steps each member's own (correct, at K times the ops).
"""

from __future__ import annotations

import collections

import torch

from nntrain.config.components import optimizer_settings, record
from nntrain.engine.stacked import Stack

UNPLAIN = ("maximize", "amsgrad", "capturable", "differentiable", "dampening")  # what the stacked steps do not write


def stacked_optimizer(stack: Stack, optimizers: list[torch.optim.Optimizer], specs: list[dict]) -> Each:
    kind = record("optimizer", specs[0]["name"]).stacked
    group = optimizers[0].param_groups[0]
    plain = not any(group.get(k) for k in UNPLAIN)
    if kind == "sgd" and plain:
        return StackedSGD(stack, optimizers)
    if kind == "adam" and plain:
        return StackedAdam(stack, optimizers)
    return Each(stack, optimizers)


class Each:
    """Each member's own optimizer, stepped in turn (a stopped member is not); or the one optimizer whose param
    groups are the members'."""

    KEYS: tuple[str, ...] = ("lr",)

    def __init__(self, stack: Stack, optimizers: list[torch.optim.Optimizer]):
        self.stack, self.opts = stack, optimizers
        if len(optimizers) == stack.k:
            self.groups, self.states = [o.param_groups[0] for o in optimizers], [o.state for o in optimizers]
        else:  # model.ensemble: one optimizer, a param group per member
            self.groups, self.states = optimizers[0].param_groups, [optimizers[0].state] * stack.k
        self.active = torch.ones(stack.k, 1, dtype=stack.flat.dtype, device=stack.flat.device)
        self.seen: list | None = None
        self.values: list[torch.Tensor] = []
        self.params = [[dict(m.named_parameters())[n] for n in stack.names] for m in stack.models]  # stack order

    def stop(self, k: int) -> None:
        """Member k's weights stay as they are from here (its rate is 0); the others go on."""
        self.active[k] = 0
        self.seen = None

    def step(self) -> None:
        if len(self.opts) < self.stack.k:
            self.opts[0].step()
            return
        for o, on in zip(self.opts, self.active[:, 0].tolist()):
            if on:
                o.step()

    def adopt(self) -> None:
        """Take the members' optimizer states as they are now (fresh, or loaded from a checkpoint)."""

    def hyper(self) -> list[torch.Tensor]:
        """Each of KEYS as a [K, 1] tensor (the rate times `active`), rebuilt only when a value changed."""
        now = [self.read(g) for g in self.groups]
        if now != self.seen:
            self.seen = now
            like = self.stack.flat
            self.values = [torch.tensor(col, dtype=like.dtype, device=like.device)[:, None] for col in zip(*now)]
            self.values[0] = self.values[0] * self.active
            for o in self.opts:
                o._opt_called = True  # read by a scheduler: the member's optimizer has stepped (through here)
        return self.values

    def read(self, group: dict) -> tuple:
        return tuple(group[key] for key in self.KEYS)

    def _share(self, k: int, key: str, rows: torch.Tensor) -> None:
        """state[p][key] of member k's parameters: views of its row of `rows`."""
        for p, view in zip(self.params[k], self.stack.split(rows).values()):
            self.states[k][p][key] = view[k]

    def _gather(self, key: str, members: list[bool] | None = None) -> torch.Tensor | None:
        """The members' state[p][key] as [K, P] rows (zeros for a member not in `members`), when every member
        asked for has it (after a resume); else None."""
        rows = []
        for k, (st, ps) in enumerate(zip(self.states, self.params)):
            if members is not None and not members[k]:
                rows.append(torch.zeros_like(self.stack.flat[k]))
                continue
            state = [st.get(p, {}).get(key) for p in ps]
            if any(t is None for t in state):
                return None
            rows.append(self.stack.row(state).to(self.stack.flat))
        return torch.stack(rows)


class StackedSGD(Each):
    """torch.optim.SGD (momentum, nesterov, weight decay) on the rows: three ops for all members."""

    KEYS = ("lr", "momentum", "weight_decay")

    def __init__(self, stack: Stack, optimizers: list[torch.optim.Optimizer]):
        super().__init__(stack, optimizers)
        self.nesterov = self.groups[0]["nesterov"]
        self.momentum = [g["momentum"] != 0 for g in self.groups]
        self.buf: torch.Tensor | None = None
        self.adopt()

    def adopt(self) -> None:
        if any(self.momentum):
            self.buf = self._gather("momentum_buffer", self.momentum)
            if self.buf is not None:
                self._share_buffer()

    def _share_buffer(self) -> None:
        for k, on in enumerate(self.momentum):
            if on:  # torch keeps no buffer for a member without momentum
                self._share(k, "momentum_buffer", self.buf)

    @torch.no_grad()
    def step(self) -> None:
        lr, momentum, wd = self.hyper()
        flat, grad = self.stack.flat, self.stack.grad
        if any(v[2] for v in self.seen):
            grad = grad.addcmul(flat, wd)
        if any(self.momentum):
            if self.buf is None:
                self.buf = grad.clone()
                self._share_buffer()
            else:  # buf = momentum * buf + grad, in one pass (the rows are memory-bound at these sizes)
                torch.addcmul(grad, self.buf, momentum, out=self.buf)
            grad = grad.addcmul(self.buf, momentum) if self.nesterov else self.buf
        flat.addcmul_(grad, lr, value=-1.0)


FUSED = hasattr(torch, "_fused_adamw_") and hasattr(torch, "_fused_adam_")  # torch >= 2.4 on the CPU


class StackedAdam(Each):
    """torch.optim.Adam and AdamW (decoupled weight decay) on the rows, as torch's single-tensor update."""

    KEYS = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, stack: Stack, optimizers: list[torch.optim.Optimizer]):
        super().__init__(stack, optimizers)
        group = optimizers[0].param_groups[0]
        self.decoupled = isinstance(optimizers[0], torch.optim.AdamW) or bool(group.get("decoupled_weight_decay"))
        self.m = self.v = self.steps = None
        self.adopt()

    def read(self, group: dict) -> tuple:
        return (group["lr"], *group["betas"], group["eps"], group["weight_decay"])

    def adopt(self) -> None:
        m, v = self._gather("exp_avg"), self._gather("exp_avg_sq")
        if m is not None and v is not None:
            first = self.states[0][self.params[0][0]]
            self._start(m, v, float(first["step"]))

    def _start(self, m: torch.Tensor, v: torch.Tensor, t: float) -> None:
        self.m, self.v, self.t = m, v, t
        n = len(self.params[0])
        self.steps = torch.full((self.stack.k, n), t, dtype=torch.float32)  # torch keeps "step" as a float tensor
        for k in range(self.stack.k):
            self._share(k, "exp_avg", m)
            self._share(k, "exp_avg_sq", v)
            for i, p in enumerate(self.params[k]):
                self.states[k][p]["step"] = self.steps[k, i]

    @torch.no_grad()
    def step(self) -> None:
        lr, beta1, beta2, eps, wd = self.hyper()
        flat, grad = self.stack.flat, self.stack.grad
        if self.m is None:
            self._start(torch.zeros_like(flat), torch.zeros_like(flat), 0.0)
        self.t += 1
        self.steps.add_(1)
        if FUSED:  # torch's fused kernel on each member's row: one pass where the ops below take ten
            self._fused_rows(flat, grad)
            return
        if self.decoupled:
            flat.mul_(1 - lr * wd)
        elif any(v[4] for v in self.seen):
            grad = grad.addcmul(flat, wd)
        self.m.lerp_(grad, 1 - beta1)
        self.v.mul_(beta2).addcmul_(grad, grad * (1 - beta2))
        step_size = lr / (1 - beta1**self.t)
        denom = (self.v.sqrt() / (1 - beta2**self.t).sqrt()).add_(eps)
        flat.addcdiv_(self.m * step_size, denom, value=-1.0)

    def _fused_rows(self, flat: torch.Tensor, grad: torch.Tensor) -> None:
        """Adam / AdamW as torch's fused kernel writes it, a member at a time with its own settings; a stopped
        member is not stepped (its rate is 0)."""
        kernel = torch._fused_adamw_ if self.decoupled else torch._fused_adam_
        step = torch.tensor(self.t, dtype=torch.float32, device=flat.device)
        for k, (lr, beta1, beta2, eps, wd) in enumerate(self.seen):
            if self.active[k, 0]:
                kernel(
                    [flat[k]], [grad[k]], [self.m[k]], [self.v[k]], [], [step],
                    lr=lr, beta1=beta1, beta2=beta2, weight_decay=wd, eps=eps, amsgrad=False, maximize=False,
                )  # fmt: skip


class HeldAdam(torch.optim.Optimizer):
    """A stacked member's Adam or AdamW as StackedAdam steps it: its settings and state, in torch's own format
    (its state_dict loads into torch.optim.Adam / AdamW and theirs into it), but never stepped itself. Set up
    without Optimizer.__init__ and with its own state_dict / load_state_dict, whose torch versions import
    torch._dynamo (2 s, a fifth of a small table's bagged fit); an LR scheduler needs only param_groups and
    step."""

    def __init__(self, spec: dict, params: list[torch.nn.Parameter]):
        _, self.defaults = optimizer_settings(spec)
        self.param_groups = [{"params": params, **self.defaults}]
        self.state: dict = collections.defaultdict(dict)

    @staticmethod
    def applies(spec: dict) -> bool:
        return record("optimizer", spec["name"]).stacked == "adam" and not any(spec.get(k) for k in UNPLAIN)

    def state_dict(self) -> dict:
        params = self.param_groups[0]["params"]
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        state = {i: dict(self.state[p]) for i, p in enumerate(params) if self.state.get(p)}
        return {"state": state, "param_groups": [{**group, "params": list(range(len(params)))}]}

    def load_state_dict(self, state_dict: dict) -> None:
        group = self.param_groups[0]
        group.update({k: v for k, v in state_dict["param_groups"][0].items() if k != "params"})
        for i, p in enumerate(group["params"]):
            saved = state_dict["state"].get(i)
            if saved:  # as torch casts them: the moments to the parameter, the step count kept a float tensor
                self.state[p] = {k: v if k == "step" else v.to(p) for k, v in saved.items()}

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass  # the stacked step computes every gradient afresh

    def step(self, closure: None = None) -> None:
        raise RuntimeError("a stacked member's Adam is stepped by StackedAdam, on the stacked rows")
