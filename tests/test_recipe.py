"""The tabular recipe (recipe.py): what a config naming only its data trains with, where it applies and where
it does not, and the parts it is built from (robust scaling, periodic numeric embeddings)."""

from __future__ import annotations

import json
from statistics import NormalDist

import numpy as np
import pytest
import yaml

from nntrain.config.loading import load_config
from nntrain.config.recipe import TABULAR
from nntrain.config.schema import Config, to_plain

from .conftest import REPO, make_table, metrics_rows


def data_only(tmp_path, **extra) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"path": "t.csv", "target": "y"}, **extra}))
    return str(path)


def test_a_config_naming_only_its_data_gets_every_value_of_the_recipe(tmp_path):
    cfg = load_config(data_only(tmp_path))
    plain = to_plain(cfg)
    assert cfg.recipe == "tabular"
    assert plain["data"]["scale"] == TABULAR["data"]["scale"]
    for key, value in TABULAR["model"].items():
        got = plain["model"][key]
        assert ({k: got[k] for k in value} if isinstance(value, dict) else got) == value, key
    for key, value in TABULAR["train"].items():
        assert plain["train"][key] == value, key
    assert {k: plain["optimizer"][k] for k in TABULAR["optimizer"]} == TABULAR["optimizer"]
    assert plain["scheduler"]["name"] == TABULAR["scheduler"]["name"]
    assert plain["loss"] == TABULAR["loss"] == {"name": "auto", "label_smoothing": 0.1}


def test_a_config_naming_a_model_trains_what_it_names_with_the_course_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"path": "t.csv"}, "model": {"hidden": [8]}}))
    cfg = load_config(str(path))
    plain = to_plain(cfg)
    assert cfg.recipe == "course"
    schema = to_plain(Config.model_validate({"data": {"path": "t.csv"}, "model": {"hidden": [8]}}))
    assert {**plain, "name": schema["name"]} == schema  # exactly the schema's defaults, as before the recipe


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_lesson_config_keeps_the_course_defaults(path):
    raw = yaml.safe_load(path.read_text())
    cfg = load_config(path)
    assert cfg.recipe == "course"
    schema = to_plain(Config.model_validate({**raw, "name": cfg.name}))
    assert to_plain(cfg) == schema


def test_recipe_can_be_chosen_either_way_and_an_override_changes_one_key(tmp_path):
    course = load_config(data_only(tmp_path), ["recipe=course"])
    assert to_plain(course)["model"]["hidden"] is None and course.optimizer == {"name": "adam", "lr": 0.001}
    explicit = load_config(data_only(tmp_path, recipe="tabular", model={"hidden": [32]}))
    assert explicit.model.hidden == [32] and explicit.model.numeric_embedding is not None
    assert explicit.optimizer["name"] == "adamw"
    tuned = load_config(data_only(tmp_path), ["optimizer.lr=0.01", "model.numeric_embedding=none"])
    assert tuned.optimizer == {**TABULAR["optimizer"], "lr": 0.01}
    assert tuned.model.numeric_embedding is None and tuned.model.hidden == TABULAR["model"]["hidden"]
    switched = load_config(data_only(tmp_path), ["optimizer.name=sgd"])
    assert switched.optimizer == {"name": "sgd", "lr": TABULAR["optimizer"]["lr"], "weight_decay": 0.02}
    assert any("betas" in note and "dropped" in note for note in switched._notes)


def test_an_unknown_recipe_names_the_key(tmp_path, cli):
    path = data_only(tmp_path, recipe="fancy")
    result = cli("fit", path)
    assert result.exit_code == 2
    assert "recipe" in result.output and "fancy" in result.output and "Traceback" not in result.output


def test_fit_header_lists_the_recipe_and_config_yaml_keeps_it(workdir, cli):
    make_table(300, "multiclass").to_csv("t.csv", index=False)
    path = data_only(workdir, train={"epochs": 2, "plots": False})
    result = cli("fit", path, "--name", "r")
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if ln.startswith("recipe: tabular"))
    assert "data.scale=quantile" in line and "optimizer={" in line and "train.epochs=2" in line
    assert "train.bag=5" in line and "note: train.bag auto: a bag of 5 members" in result.output
    assert "loss cross_entropy (label_smoothing 0.1);" in result.output
    saved = yaml.safe_load((workdir / "runs" / "r" / "config.yaml").read_text())
    assert saved["recipe"] == "tabular" and saved["model"]["numeric_embedding"]["name"] == "periodic"
    again = load_config(workdir / "runs" / "r" / "config.yaml")  # the resolved file trains the same thing again
    assert to_plain(again) == {**saved} and saved["train"]["bag"] == 5
    assert len(metrics_rows(workdir / "runs" / "r" / "member1")) == 2


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_the_recipes_label_smoothing_reaches_a_class_targets_loss_alone(task, tmp_path):
    """`loss: {name: auto, label_smoothing: 0.1}`: cross entropy against 0.9 on the class and 0.1 / k spread over
    all k, for a class target; a regression target's mse takes no argument and is plain mse."""
    import torch

    from nntrain.model.heads import make_criterion

    cfg = load_config(data_only(tmp_path))
    criterion = make_criterion(cfg, task)
    out = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, -2.0]])
    if task == "regression":
        y = torch.tensor([0.5, -1.0])
        assert float(criterion(out[:, :1], y)) == pytest.approx(float(((out[:, 0] - y) ** 2).mean()))
        return
    y = torch.tensor([0, 2])
    logp = torch.log_softmax(out, dim=1)
    target = torch.full((2, 3), 0.1 / 3) + 0.9 * torch.nn.functional.one_hot(y, 3)
    assert float(criterion(out, y)) == pytest.approx(float(-(target * logp).sum(1).mean()))


def test_robust_scaling_centres_on_the_median_and_clips_far_values_smoothly(workdir):
    from nntrain.data.prepare import load_data

    rng = np.random.default_rng(0)
    df = make_table(400, "regression")
    df["a"] = rng.lognormal(0, 2, 400)  # a long right tail
    df.to_csv("t.csv", index=False)
    data = load_data(load_config(data_only(workdir, data={"path": "t.csv", "target": "y", "scale": "robust"})), None)
    a = data.X[data.train, data.prep["encoded"].index("a")]
    assert abs(np.median(a)) < 0.02  # the median is 0
    assert a.max() < 3 and a.min() > -3  # x / sqrt(1 + (x / 3)^2) stays inside +-3
    raw = df["a"].to_numpy()[data.train]
    assert np.all(np.diff(a[np.argsort(raw)]) >= 0)  # and keeps the order
    standard = load_data(
        load_config(data_only(workdir, data={"path": "t.csv", "target": "y"}), ["recipe=course"]), None
    )
    assert standard.X[standard.train, 0].max() > 5  # standard scaling leaves the tail far out


def test_quantile_scaling_maps_ranks_onto_a_normal_as_scikit_learn_does(workdir):
    from sklearn.preprocessing import QuantileTransformer

    from nntrain.data.prepare import load_data

    rng = np.random.default_rng(0)
    df = make_table(3000, "regression")
    df["a"] = rng.lognormal(0, 2, 3000)  # a long right tail
    df["b"] = np.where(rng.random(3000) < 0.7, 0.0, rng.exponential(size=3000))  # 70% zeros: tied quantiles
    df.loc[df.index[::10], "c"] = np.nan  # filled with the training median before the map
    df.to_csv("t.csv", index=False)
    data = load_data(load_config(data_only(workdir, data={"path": "t.csv", "target": "y", "scale": "quantile"})), None)
    train, column = data.train, {c: data.X[:, data.prep["encoded"].index(c)] for c in ("a", "b", "c")}
    raw = df["a"].to_numpy()
    sk = QuantileTransformer(n_quantiles=len(train) // 30, output_distribution="normal").fit(raw[train, None])
    got, want = column["a"], sk.transform(raw[:, None])[:, 0]
    at, _ = data.prep["quantiles"]["a"]
    inner = (raw >= at[1]) & (raw <= at[-2])  # the outer intervals apart: see the end of this test
    on_knot = inner & np.isin(raw, at)
    np.testing.assert_allclose(got[on_knot], want[on_knot], atol=1e-5)  # on the knots the same
    # between two knots linear in the normal's units, where scikit-learn is linear in ranks: close
    assert np.abs(got - want)[inner].max() < 0.05 and np.median(np.abs(got - want)) < 0.005
    # scikit-learn maps the training minimum to -5.2 on any number of rows; here to the level half a row above 0
    end = NormalDist().inv_cdf(0.5 / len(train))
    assert np.isclose(got[train].min(), end, atol=1e-6) and np.isclose(got[train].max(), -end, atol=1e-6)
    assert abs(np.median(got[train])) < 0.02
    assert np.all(np.diff(got[np.argsort(raw)]) >= 0)  # the order kept
    zeros = column["b"][df["b"].to_numpy() == 0.0]
    assert np.ptp(zeros) == 0 and abs(zeros[0] - -0.385) < 0.02  # 70% of the rows tied at 0: the 35% level
    gaps = df["c"].isna().to_numpy()
    filled = np.interp(data.prep["impute"]["c"], *data.prep["quantiles"]["c"])
    assert np.allclose(column["c"][gaps], filled) and abs(filled) < 0.1  # a gap: the training median's place


@pytest.mark.parametrize("ensemble", [1, 3])
def test_numeric_embeddings_train_predict_and_count_their_parameters(workdir, cli, ensemble):
    df = make_table(300, "multiclass", cat=True)
    df["when"] = [f"2024-01-{1 + i % 28:02d}" for i in range(len(df))]  # date parts are numbers too
    df.to_csv("t.csv", index=False)
    path = data_only(workdir, train={"epochs": 3, "plots": False}, model={"hidden": [16], "ensemble": ensemble})
    assert cli("fit", path, "--name", "e", "recipe=tabular").exit_code == 0
    run = workdir / "runs" / "e"
    summary = json.loads((run / "summary.json").read_text())
    params = cli("params", str(run), "--json")
    assert params.exit_code == 0, params.output
    table = json.loads(params.output)
    embed = [r for r in table["layers"] if r["layer"].endswith("num_embed")]
    assert len(embed) == ensemble
    # a, b, c and the date parts day, weekday, yearday, days and the sin and cos of weekday and yearday (year, month
    # and hour constant: left out, and their cycles')
    n_numeric = 3 + 8
    assert embed[0]["shape"] == [n_numeric, 32, 8]
    evaluated = cli("eval", str(run), "--json")
    assert json.loads(evaluated.output.strip().splitlines()[-1])["metrics"]["accuracy"] == pytest.approx(
        summary["test"]["accuracy"]
    )


def test_piecewise_linear_bins_come_from_the_training_quantiles():
    import torch

    from nntrain.config.schema import ModelConfig
    from nntrain.model.embeddings import bin_table
    from nntrain.model.mlp import build_mlp, param_table, planned_table

    lower, width = bin_table([[0.0, 1.0, 2.0, 4.0], [5.0, 6.0]], bins=3)
    assert lower == [[0.0, 1.0, 2.0], [5.0, 1e30, 1e30]] and width == [[1.0, 1.0, 2.0], [1.0, 1.0, 1.0]]
    assert bin_table([list(map(float, range(65)))], bins=4)[0] == [[0.0, 16.0, 32.0, 48.0]]  # evenly kept
    cfg = ModelConfig(hidden=[4], numeric_embedding={"name": "piecewise_linear", "bins": 3, "size": 2})
    numeric = [(0, [0.0, 1.0, 2.0, 4.0]), (2, [5.0, 6.0])]  # column 1 is a one-hot column: passed through
    model = build_mlp(cfg, 3, 2, numeric=numeric)
    assert planned_table(cfg, 3, 2, numeric=numeric) == param_table(model)
    embed = model.num_embed
    x = torch.tensor([[1.5, 1.0, 7.0], [-1.0, 0.0, 5.5]])
    positions = ((x[:, embed.at, None] - embed.lower) / embed.width).clamp(0, 1)
    assert positions[0].tolist() == [[1.0, 0.5, 0.0], [1.0, 0.0, 0.0]]
    assert positions[1].tolist() == [[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]]
    assert model.num_embed(x)[:, 0].tolist() == [1.0, 0.0]  # the one-hot column first, as it was


def test_auto_epochs_and_batch_follow_the_training_rows():
    from nntrain.config.recipe import fix_auto
    from nntrain.config.schema import Config

    def epochs(n_train: int) -> int:
        cfg = Config.model_validate({"data": {"path": "x"}, "train": {"epochs": "auto"}, "scheduler": "cosine"})
        fix_auto(cfg, n_train)
        assert cfg.scheduler["T_max"] == cfg.train.epochs and "train.epochs auto" in cfg._notes[-1]
        return cfg.train.epochs

    assert [epochs(n) for n in (200, 10_000, 50_000, 10_000_000)] == [100, 100, 20, 10]
    train = Config.model_validate({"data": {"path": "x"}, "train": {"batch_size": "auto"}}).train
    assert [train.batch_rows(n) for n in (40, 300, 5_000, 1_000_000)] == [40, 64, 128, 256]

    def lr(n_train: int) -> float:
        raw = {"data": {"path": "x"}, "train": {"batch_size": "auto"}, "optimizer": {"name": "adamw", "lr": "auto"}}
        cfg = Config.model_validate(raw)
        fix_auto(cfg, n_train)
        assert "optimizer.lr auto" in cfg._notes[-1]
        return cfg.optimizer["lr"]

    assert [lr(n) for n in (300, 5_000, 1_000_000)] == [0.001, 0.00141, 0.002]  # 0.002 x sqrt(batch / 256)


def test_auto_epochs_are_written_into_the_run_and_kept_on_resume(workdir, table_csv, cli):
    from .conftest import write_config

    path = write_config(workdir / "c.yaml", table_csv(), train={"epochs": "auto", "batch_size": "auto"})
    result = cli("fit", path, "--name", "a", "train.plots=false")
    assert result.exit_code == 0, result.output
    assert "train.epochs auto: 100 for 86 training rows" in result.output
    saved = yaml.safe_load((workdir / "runs" / "a" / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 100 and saved["train"]["batch_size"] == 64  # the numbers it trained with
    assert "train.batch_size auto: 64 for 86 training rows" in result.output
    assert len(metrics_rows(workdir / "runs" / "a")) == 100
    again = cli("fit", "--resume", str(workdir / "runs" / "a"), "train.epochs=102")
    assert again.exit_code == 0, again.output
    assert len(metrics_rows(workdir / "runs" / "a")) == 102


def test_the_memory_estimate_counts_the_numeric_embeddings(monkeypatch):
    from nntrain.config.schema import Config
    from nntrain.model import memory

    raw = {"data": {"path": "x"}, "model": {"hidden": [256], "numeric_embedding": "periodic"}, "optimizer": "adam"}
    cfg = Config.model_validate(raw)
    numeric = [(i, []) for i in range(1000)]
    plain = memory.training_bytes(cfg, 1000, 2, 256, 10_000)
    embedded = memory.training_bytes(cfg, 1000, 2, 256, 10_000, numeric)
    # Adam: weights, gradients and two moments of a first layer 8x as wide (1000 x 8 inputs, not 1000)
    assert embedded - plain >= 4 * 4 * 256 * 1000 * 7
    monkeypatch.setattr(memory, "available_bytes", lambda device: (plain + embedded) // 2)
    assert memory.too_big(cfg, 1000, 2, 256, 10_000) is None
    why = memory.too_big(cfg, 1000, 2, 256, 10_000, numeric=numeric)
    assert why is not None and "parameters need about" in why
