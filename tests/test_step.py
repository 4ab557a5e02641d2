"""The step activation of the course's activation lesson: accepted with a warning, and nothing before it learns."""

from __future__ import annotations

import pandas as pd
import torch

from nntrain.config import components as C
from nntrain.config.schema import ModelConfig
from nntrain.model.mlp import build_mlp

from .conftest import write_config


def test_step_is_zero_below_one_above_and_passes_a_zero_gradient():
    step = C.build("activation", {"name": "step"})
    x = torch.tensor([-2.0, -0.1, 0.0, 0.1, 3.0], requires_grad=True)
    out = step(x)
    assert out.tolist() == [0, 0, 0, 1, 1]
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().max() == 0  # a real zero, not a missing gradient


def test_a_step_network_warns_and_its_first_layer_never_moves(workdir, table_csv, cli):
    config = write_config(workdir / "c.yaml", table_csv(n=150), model={"hidden": [8], "activation": "step"})
    r = cli("fit", config)
    assert r.exit_code == 0, r.output
    assert "warning: model.activation = step: its derivative is 0 everywhere, so no layer before it learns" in r.stdout
    metrics = pd.read_csv(workdir / "runs/t/metrics.csv")
    assert (metrics["grad_norm.fc1"] == 0).all() and (metrics["grad_norm.out"] > 0).all()
    best = torch.load(workdir / "runs/t/best.pt", weights_only=False)["model"]
    torch.manual_seed(0)  # the config's seed: the first layer as it was built
    fresh = build_mlp(ModelConfig(hidden=[8], activation="step"), 3, 3).state_dict()
    assert torch.equal(best["fc1.weight"], fresh["fc1.weight"]) and not torch.equal(
        best["out.weight"], fresh["out.weight"]
    )
    layers = {"hidden": None, "layers": [{"size": 4}, {"size": 4, "activation": "step"}]}
    layered = write_config(workdir / "l.yaml", table_csv(n=150), name="l", model=layers)
    assert "warning: model.layers[1].activation = step" in cli("fit", layered).stdout
