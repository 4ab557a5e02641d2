from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nntrain.config.loading import load_config
from nntrain.errors import UserError

from .conftest import REPO

SHIPPED = sorted((REPO / "configs").glob("*.yaml"))


def problems_of(path, overrides=()):
    with pytest.raises(UserError) as info:
        load_config(path, list(overrides))
    return [str(p) for p in info.value.problems]  # as the user reads them


def test_every_shipped_config_is_listed():
    names = {p.stem for p in SHIPPED}
    assert {"phone", "iris", "breast_cancer", "diabetes", "digits", "seed_model"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_config_loads(path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    assert cfg.train.epochs > 0


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_configs_say_what_they_train(path):
    assert path.read_text().startswith("#")


def test_every_key_of_the_reference_config_is_commented(repo):
    """phone.yaml is the reference: each line that sets a value carries a comment."""
    lines = [
        line
        for line in (repo / "configs/phone.yaml").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    bare = [line for line in lines if "#" not in line and not line.rstrip().endswith(":")]
    assert bare == []


def test_overrides_use_dotted_keys_and_yaml_values(repo):
    cfg = load_config(
        repo / "configs/phone.yaml",
        ["optimizer.name=adam", "optimizer.lr=0.001", "seed=0", "model.hidden=[32, 16]", "train.batch_size=full"],
    )
    assert cfg.optimizer["name"] == "adam" and cfg.optimizer["lr"] == 0.001
    assert cfg.seed == 0 and cfg.model.hidden == [32, 16] and cfg.train.batch_size == "full"


def test_override_turns_a_bare_name_into_a_mapping(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {path: x.csv}\noptimizer: sgd\n")
    cfg = load_config(path, ["optimizer.lr=0.5"])
    assert cfg.optimizer == {"name": "sgd", "lr": 0.5}


def test_malformed_override_is_a_user_error(repo):
    assert "KEY=VALUE" in problems_of(repo / "configs/phone.yaml", ["optimizer.lr"])[0]


def test_seed_teaching_model_is_expressible_with_layers(repo):
    cfg = load_config(repo / "configs/seed_model.yaml")
    layers = cfg.model.resolved_layers()
    assert [layer.size for layer in layers] == [3, 2]
    assert [layer.activation["name"] for layer in layers] == ["sigmoid", "relu"]
    assert [layer.init.weight["name"] for layer in layers] == ["kaiming_normal", "xavier_uniform"]


def write(tmp_path, text: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


BASE = "data: {path: x.csv}\n"


@pytest.mark.parametrize(
    "text, expected",
    [
        (BASE + "model: {hiden: [4]}\n", "model.hiden: unknown key (did you mean 'hidden'?)"),
        (BASE + "optimiser: {name: sgd, lr: 0.1}\n", "optimiser: unknown key (did you mean 'optimizer'?)"),
        (BASE + "train: {epocs: 3}\n", "train.epocs: unknown key (did you mean 'epochs'?)"),
        (
            BASE + "optimizer: {name: sgd, lr: 0.1, momentm: 0.9}\n",
            "optimizer.momentm: 'sgd' has no argument 'momentm' (did you mean 'momentum'?)",
        ),
        (
            BASE + "optimizer: {name: adamm, lr: 0.1}\n",
            "optimizer.name=adamm: unknown optimizer (did you mean 'adam'?)",
        ),
        (
            BASE + "model: {activation: reluu}\n",
            "model.activation.name=reluu: unknown activation (did you mean 'relu'?)",
        ),
        (
            BASE + "scheduler: {name: stepp, step_size: 2}\n",
            "scheduler.name=stepp: unknown scheduler (did you mean 'step'?)",
        ),
        (BASE + "loss: cross_entropi\n", "loss.name=cross_entropi: unknown loss (did you mean 'cross_entropy'?)"),
        (
            BASE + "model: {init: {weight: kaiming_normall}}\n",
            "model.init.weight.name=kaiming_normall: unknown init (did you mean 'kaiming_normal'?)",
        ),
        (BASE + "train: {epochs: ten}\n", "train.epochs=ten: Input should be a valid integer"),
        (BASE + "train: {epochs: 0}\n", "train.epochs=0: must be from 1 to 1,000,000, or `auto`"),
        (BASE + "train: {batch_size: 0}\n", "train.batch_size=0: must be at least 1, `full` or `auto`"),
        (BASE + "train: {batch_size: half}\n", "train.batch_size=half: Input should be a valid integer"),
        (BASE + "optimizer: {name: sgd, lr: -1}\n", "optimizer.lr=-1: must be greater than 0"),
        (
            BASE + "optimizer: {name: sgd, lr: 0.1, momentum: -0.5}\n",
            "optimizer.momentum=-0.5: sgd's momentum must be from 0 up to, not including, 1",
        ),
        (BASE + "model: {dropout: 1.5}\n", "model.dropout=1.5: Input should be less than 1"),
        ("data: {path: x.csv, val_size: 1.2}\n", "data.val_size=1.2: Input should be less than 1"),
        (
            "data: {path: x.csv, scale: zscore}\n",
            "data.scale=zscore: Input should be 'standard', 'robust', 'quantile', 'minmax' or 'none'",
        ),
        (
            "data: {path: x.csv, task: classify}\n",
            "data.task=classify: Input should be 'auto', 'multiclass', 'binary' or 'regression'",
        ),
        ("seed: 1\n", "data: required key is missing"),
        (BASE + "device: gpu\n", "device=gpu: must be auto, cpu, cuda, cuda:N or mps"),
        (BASE + "model: {hidden: [4], layers: [{size: 4}]}\n", "give either model.hidden or model.layers, not both"),
        (BASE + "model: {init: {bias: xavier_uniform}}\n", "model.init.bias=xavier_uniform: a bias is 1-D"),
        (
            BASE + "scheduler: {name: multistep, milestones: [5, 50]}\ntrain: {epochs: 30}\n",
            "scheduler.milestones=[5, 50]: [50] at or past the last epoch (30)",
        ),
        (
            "data: {path: x.csv, task: regression}\nloss: cross_entropy\n",
            "loss=cross_entropy: the target is a regression target",
        ),
        ("data: {path: x.csv, task: multiclass}\nloss: bce\n", "loss=bce: bce is for two classes"),
        ("data: {path: x.csv, task: multiclass}\nloss: mse\n", "loss=mse: the target is multiclass classification"),
        (
            "data: {path: x.csv, task: multiclass}\nloss: cross_entropy\nmodel: {output_activation: softmax}\n",
            "model.output_activation=softmax: cross_entropy applies log-softmax itself",
        ),
        (
            "data: {path: x.csv, task: binary}\nloss: bce\nmodel: {output_activation: sigmoid}\n",
            "bce here takes logits",
        ),
        ("data: {path: x.csv, task: multiclass}\nloss: nll\n", "loss=nll: nll expects log-probabilities"),
        (
            "data: {path: x.csv, task: regression}\ntrain: {monitor: val_accuracy}\n",
            "train.monitor=val_accuracy: not measured for regression",
        ),
        (
            BASE + "model: {activation: {name: leaky_relu, slope: 0.1}}\n",
            "'leaky_relu' has no argument 'slope' (did you mean 'negative_slope'?)",
        ),
        (BASE + "model: {activation: 5}\n", "must be a name, e.g. relu"),
        (BASE + "name: 'my run/1'\n", "name=my run/1: use letters, digits"),
        (
            BASE + "model: {output_activation: {name: log_softmax, dim: 0}}\nloss: nll\n",
            "log_softmax always runs across the classes",
        ),
        (BASE + "scheduler: {name: multistep, milestones: 3}\n", "multistep's milestones must be epochs 1 or more"),
        (BASE + "loss: {name: auto, delta: 2}\n", "loss: 'auto' takes no arguments but label_smoothing (got delta)"),
        (BASE + "loss: {name: auto, label_smoothing: 1.5}\n", "label_smoothing must be between 0.0 and 1.0"),
        (
            "data: {path: x.csv, task: binary}\nloss: bce\nmodel: {output_activation: softmax}\n",
            "softmax over one value is constant",
        ),
        (
            "data: {path: x.csv, task: regression}\nmodel: {output_activation: sigmoid}\n",
            "a regression output must be free",
        ),
        (
            BASE + "model: {batch_norm: true}\ntrain: {batch_size: 1}\n",
            "train.batch_size=1: batch norm needs at least two rows",
        ),
        (BASE + "train: {patience: 0}\n", "train.patience=0: Input should be greater than 0"),
        (BASE + "train: {grad_clip: -1}\n", "train.grad_clip=-1: Input should be greater than 0"),
        (BASE + "train: {l1: -0.1}\n", "train.l1=-0.1: Input should be greater than or equal to 0"),
        (BASE + "model: {hidden: [64, 0]}\n", "model.hidden.1=0: Input should be greater than 0"),
        (
            BASE + "model: {layers: [{size: 4, activaton: relu}]}\n",
            "model.layers.0.activaton: unknown key (did you mean 'activation'?)",
        ),
        (BASE + "optimizer: {name: adam, lr: 0.1, betas: [0.9, 1.5]}\n", "adam's betas must be two numbers, each"),
        (BASE + "optimizer: {name: adam, lr: 0.1, betas: [0.9]}\n", "optimizer.betas=[0.9]: adam's betas must be"),
        (BASE + "optimizer: {name: sgd, lr: 0.1, momentum: 2}\n", "sgd's momentum must be from 0 up to"),
        (BASE + "scheduler: {name: step, step_size: 0}\n", "step's step_size must be a whole number, 1 or more"),
        (BASE + "scheduler: {name: exponential, gamma: -1}\n", "scheduler.gamma=-1: exponential's gamma must be above"),
        (BASE + "scheduler: {name: cosine, T_max: 0}\n", "scheduler.T_max=0: cosine's T_max must be a whole number"),
        (BASE + "scheduler: {name: multistep, milestones: [2, 1]}\n", "milestones must be epochs 1 or more, each"),
        (BASE + "train: {epochs: true}\n", "train.epochs=true: true is a yes/no, not a number or a name"),
        ("data: {path: x.csv, test_size: -0.1}\n", "data.test_size=-0.1: Input should be greater than or equal to 0"),
        (
            "data: {path: x.csv, impute: zero}\n",
            "data.impute=zero: Input should be 'auto', 'none', 'mean', 'median' or 'most_frequent'",
        ),
        (
            "train: {monitor: val_accuracy}\nloss: mse\ndata: {path: x.csv, task: regression}\n",
            "train.monitor=val_accuracy: not measured for regression",
        ),
        (BASE + "model: {activation: {negative_slope: 0.1}}\n", "a mapping here needs a 'name' key"),
        # arguments torch checks only when a loss or activation is first called: at the config, not the first step
        (BASE + "loss: {name: huber, delta: -2}\n", "loss: huber(delta=-2) is invalid: huber_loss does not support"),
        (BASE + "loss: {name: cross_entropy, label_smoothing: 2}\n", "label_smoothing must be between 0.0 and 1.0"),
        (BASE + "loss: {name: bce, pos_weight: [-1]}\n", "loss.pos_weight=[-1]: bce's pos_weight must be above 0"),
        (BASE + "loss: {name: nll, weight: [0, 0]}\n", "loss.weight=[0, 0]: nll's weight must be numbers 0 or more"),
        (
            BASE + "model: {activation: {name: leaky_relu, negative_slope: abc}}\n",
            "model.activation: leaky_relu(negative_slope='abc') is invalid",
        ),
        (BASE + "model: {activation: {name: softplus, beta: 0}}\n", "model.activation.beta=0: softplus's beta must be"),
        (BASE + "seed: abc\n", "seed=abc: Input should be a valid integer"),
    ],
)
def test_bad_config_names_key_and_value(tmp_path, cli, text, expected):
    found = problems_of(write(tmp_path, text))
    assert any(expected in p for p in found), found
    r = cli("fit", tmp_path / "bad.yaml")
    assert r.exit_code == 2 and expected in r.stderr and r.stdout == ""
    assert "Traceback" not in r.stderr and (r.exception is None or isinstance(r.exception, SystemExit))


def test_all_problems_of_a_file_are_reported_together_with_lines(tmp_path):
    text = (
        "data:\n  path: x.csv\n  val_size: 1.2\nmodel:\n  hiden: [64]\n  activation: reluu\n"
        "optimizer: {name: adamm, lr: -1}\ntrain:\n  epochs: ten\n"
    )
    found = problems_of(write(tmp_path, text))
    assert len(found) == 6, found
    assert found[0].endswith("(line 3)") and "val_size" in found[0]
    assert any("hiden" in p and p.endswith("(line 5)") for p in found)
    assert any("adamm" in p for p in found) and any("lr=-1" in p for p in found)


def test_check_leaning_on_an_invalid_key_is_not_reported(tmp_path):
    """epochs is invalid, so milestones against the default 30 epochs would only mislead."""
    found = problems_of(
        write(tmp_path, BASE + "scheduler: {name: multistep, milestones: [40]}\ntrain: {epochs: ten}\n")
    )
    assert len(found) == 1 and "train.epochs=ten" in found[0]


def test_yaml_syntax_error_and_non_mapping(tmp_path):
    assert "not valid YAML" in problems_of(write(tmp_path, "data: [unclosed\n"))[0]
    said = problems_of(write(tmp_path, "data:\n  path: x.csv\n   target: y\n"))[0]
    assert "not valid YAML: line 3, column 10: mapping values are not allowed" in said  # the file's own line
    assert "<unicode string>" not in said
    assert "must be a mapping" in problems_of(write(tmp_path, "- a\n- b\n"))[0]


def test_names_are_case_insensitive(tmp_path):
    cfg = load_config(write(tmp_path, BASE + "optimizer: {name: Adam, lr: 0.1}\nmodel: {activation: ReLU}\n"))
    assert cfg.optimizer["name"] == "Adam"


def test_resolved_config_round_trips(tmp_path, repo):
    from nntrain.config.schema import dump_yaml

    cfg = load_config(repo / "configs/phone.yaml", ["seed=7"])
    again = load_config(None, raw=yaml.safe_load(dump_yaml(cfg)))
    assert again == cfg


def _typos(word: str) -> set[str]:
    """One slip of the fingers: a letter dropped, two swapped, one doubled."""
    out = {word[:i] + word[i + 1 :] for i in range(len(word))}
    out |= {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)}
    out |= {word[:i] + word[i] + word[i:] for i in range(len(word))}
    return {t for t in out if t != word and t.replace("_", "")}


SECTIONS = {"": "Config", "data": "DataConfig", "model": "ModelConfig", "train": "TrainConfig"}


def test_key_typos_get_the_right_did_you_mean(tmp_path):
    from nntrain.config import schema as C

    right = total = 0
    misses = []
    for section, model_name in SECTIONS.items():
        fields = list(getattr(C, model_name).model_fields)
        for key in fields:
            for typo in sorted(_typos(key) - set(fields)):
                raw = {"data": {"path": "x.csv"}}
                (raw.setdefault(section, {}) if section else raw)[typo] = 1
                try:
                    load_config(None, raw=raw)
                except UserError as e:
                    total += 1
                    hit = any(f"{typo}: unknown key (did you mean '{key}'?)" in str(p) for p in e.problems)
                    right += hit
                    if not hit:
                        misses.append(f"{section}.{typo}->{key}")
    rate = right / total
    print(f"did-you-mean right for {right}/{total} key typos ({rate:.1%}); misses: {misses[:12]}")
    assert total > 300 and rate >= 0.9


def test_problems_are_records_with_their_key_line_and_the_config_as_far_as_valid(tmp_path):
    from nntrain.errors import ConfigError

    text = BASE + "train:\n  epochs: ten\n  batch_size: 8\noptimizer: {name: adam, lr: -1}\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), ["model.activation=reluu"])
    by_key = {p.key: p for p in info.value.problems}
    assert set(by_key) == {"train.epochs", "optimizer.lr", "model.activation.name"}  # torch's lr check: not twice
    assert (by_key["train.epochs"].value, by_key["train.epochs"].line) == (
        "ten",
        text.split("\n").index("  epochs: ten") + 1,
    )
    assert by_key["optimizer.lr"].value == "-1" and by_key["model.activation.name"].from_command_line
    partial = info.value.partial
    assert partial.train.epochs == 30 and partial.train.batch_size == 8  # the invalid key at its default, the rest kept


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.epochs=1e12", "train.epochs=1000000000000.0: must be from 1 to 1,000,000, or `auto`"),
        ("seed=-1", "seed=-1: Input should be greater than or equal to 0"),
        (
            "seed=99999999999999999999",
            "seed=99999999999999999999: Input should be less than or equal to 9223372036854775807",
        ),
        ("data.split_seed=-3", "data.split_seed=-3: Input should be greater than or equal to 0"),
        ("optimizer.lr=nan", "optimizer.lr=nan: must be a number greater than 0"),
        ("optimizer.lr=.nan", "optimizer.lr=nan: must be a finite number greater than 0"),
        ("optimizer.lr=fast", "optimizer.lr=fast: must be a number greater than 0"),
        ("train.l1=.inf", "train.l1=.inf: Input should be a finite number"),
        ("train.threads=100000", "train.threads=100000: Input should be less than or equal to 4096"),
        ("optimizer.lr=1e39", "optimizer.lr=1e+39: adamw's lr must be a number float32 can hold"),
        ("train.l1=1e300", "train.l1=1.0e+300: must be at most 1e30"),
        ("seed=true", "seed=true: true is a yes/no, not a number or a name"),
    ],
)
def test_numbers_out_of_range_name_their_key(tmp_path, cli, override, expected):
    r = cli("fit", write(tmp_path, "data: {path: sklearn:iris}\n"), override)
    assert r.exit_code == 2 and expected in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("optimizer") <= 1 or "lr" not in override  # one problem for a bad lr, not torch's too


def test_a_misspelled_argument_written_with_a_new_name_is_refused_not_dropped(tmp_path, cli):
    """optimizer.name=sgd over an adam config drops adam's own betas (said); an argument written with the new
    name, in the same override or the file over a base, is the user's and is checked."""
    base = tmp_path / "adam.yaml"
    base.write_text("data: {path: sklearn:iris}\noptimizer: {name: adam, lr: 0.01, betas: [0.9, 0.99]}\n")
    r = cli("fit", base, "optimizer={name: sgd, lr: 0.1, momentun: 0.9}")
    assert r.exit_code == 2 and "optimizer.momentun: 'sgd' has no argument 'momentun' (did you mean" in r.stderr
    (tmp_path / "child.yaml").write_text("base: bad.yaml\nscheduler: {name: step, step_size: 1, gama: 0.5}\n")
    (tmp_path / "bad.yaml").write_text("data: {path: sklearn:iris}\nscheduler: cosine\n")
    r = cli("fit", tmp_path / "child.yaml")
    assert r.exit_code == 2 and "scheduler.gama: 'step' has no argument 'gama' (did you mean 'gamma'?)" in r.stderr
    assert load_config(base, ["optimizer.name=sgd"])._notes[0].startswith("optimizer.betas=[0.9, 0.99] dropped")


def test_onecycle_steps_fewer_than_the_run_s_are_refused_before_it_trains(workdir, cli):
    r = cli("fit", "sklearn:iris", "scheduler={name: onecycle, total_steps: 1}", "train.epochs=3")
    assert r.exit_code == 2 and "scheduler.total_steps=1: fewer than the run's" in r.stderr, r.stderr
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())


def test_a_key_given_twice_in_one_mapping_is_refused_naming_both_lines(tmp_path, cli):
    text = "data: {path: sklearn:iris}\ntrain:\n  plots: false\nseed: 1\ntrain:\n  epochs: 3\n"
    r = cli("fit", write(tmp_path, text))
    assert r.exit_code == 2 and "key 'train' is given twice, on line 2 and line 5" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_an_alias_bomb_and_a_huge_file_are_refused_before_anything_is_made(tmp_path, cli, workdir):
    import time

    lines = ["data: {path: sklearn:iris}", "sweep:", '  a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for name, prev in zip("bcdefgh", "abcdefg"):
        lines.append(f"  {name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    t0 = time.perf_counter()
    r = cli("fit", write(tmp_path, "\n".join(lines) + "\n"))
    assert r.exit_code == 2 and "expands to 54,481,019 values through its aliases" in r.stderr
    assert time.perf_counter() - t0 < 10 and not (workdir / "runs").exists()
    (tmp_path / "big.yaml").write_text("data: {path: sklearn:iris}\n" + "# padding\n" * 500_000)
    r = cli("fit", tmp_path / "big.yaml")
    assert r.exit_code == 2 and "bytes is not a config" in r.stderr and not (workdir / "runs").exists()


def test_checkpoints_do_not_carry_the_sweep_section(workdir, cli):
    import torch

    text = "data: {path: sklearn:iris}\ntrain: {epochs: 2, plots: false, bag: 1}\n"
    text += "sweep: {optimizer.lr: [0.1, 0.01, 0.001]}\n"
    assert cli("fit", write(workdir, text)).exit_code == 0
    ckpt = torch.load(workdir / "runs" / "bad" / "best.pt", weights_only=True)
    assert ckpt["config"]["sweep"] is None and cli("fit", "--resume", "runs/bad", "train.epochs=3").exit_code == 0


def test_a_big_file_given_as_the_config_is_refused_before_it_is_read(tmp_path, cli, workdir, monkeypatch):
    """A file that is no config and whose suffix names no table (a table trains: test_fit_table.py)."""
    import nntrain.data.table_source as table_source

    big = tmp_path / "big.out"
    big.write_text("a,b,c\n" + "0.1,0.2,0.3\n" * 450_000)  # over 4 MiB
    read_text, read = Path.read_text, []

    def recorded(self, *a, **kw):
        read.append(self)
        return read_text(self, *a, **kw)

    monkeypatch.setattr(Path, "read_text", recorded)
    table_source.hash_ahead(big, [])  # what fit runs first, before importing torch
    assert big not in read, "the config was read before its size was checked"
    r = cli("fit", big)
    assert r.exit_code == 2 and "bytes is not a config" in r.stderr and not (workdir / "runs").exists()


def deep_yaml(depth: int, key: str = "sweep: {x: ", close: str = "}") -> str:
    head = "name: t\ndata: {path: sklearn:iris}\nmodel: {hidden: [8]}\ntrain: {epochs: 3, plots: false}\n"
    return head + key + "[" * depth + "]" * depth + close + "\n"


@pytest.mark.parametrize("text", [deep_yaml(400), deep_yaml(490, "x: ", ""), deep_yaml(20_000, "x: ", "")])
def test_deeply_nested_yaml_is_refused_by_fit_and_configs_show(tmp_path, cli, workdir, text):
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    for args in (("fit", path), ("configs", "show", path)):
        r = cli(*args)
        assert r.exit_code == 2 and "not valid YAML" in r.stderr and "line 5" in r.stderr, r.output
        assert "Traceback" not in r.output
    assert not (workdir / "runs").exists()
