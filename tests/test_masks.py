"""Each stacked member draws its dropout masks from its own generator (Run.masks): members of one seed trained
together differ by their masks alone."""

from __future__ import annotations

import pytest
import torch

from nntrain.config.loading import load_config
from nntrain.engine.run_groups import fit_many
from nntrain.runs.checkpoints import load_checkpoint

from .conftest import write_config

QUIET = lambda m: None  # noqa: E731


@pytest.fixture
def cfg(workdir, table_csv):
    model = {"hidden": [16, 16], "dropout": 0.2}
    return write_config(workdir / "c.yaml", table_csv(n=300), model=model, train={"epochs": 4, "batch_size": 16})


def runs(cfg, prefix: str, overrides):
    names = [f"{prefix}{i}" for i in range(len(overrides))]
    return fit_many([load_config(cfg, o, name=n) for o, n in zip(overrides, names)], log=QUIET)


def same_weights(a, b) -> bool:
    x, y = load_checkpoint(a), load_checkpoint(b)
    return x["epoch"] == y["epoch"] and all(torch.equal(x["model"][k], y["model"][k]) for k in x["model"])


def test_members_of_one_seed_draw_their_own_dropout_masks(cfg, workdir):
    runs(cfg, "m", [["seed=0"]] * 2)  # a bag's members share their seed and, here, their rows
    assert not same_weights(workdir / "runs/m0/last.pt", workdir / "runs/m1/last.pt")
    runs(cfg, "n", [["seed=0", "model.dropout=0"]] * 2)  # without dropout nothing else differs
    assert same_weights(workdir / "runs/n0/last.pt", workdir / "runs/n1/last.pt")
