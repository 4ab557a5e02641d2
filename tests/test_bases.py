"""Config inheritance: `base: other.yaml`, merged key by key along a chain, each problem located in its file."""

from __future__ import annotations

import yaml

from nntrain.config.loading import load_config


def write(path, text: str):
    path.write_text(text)
    return path


def lesson(workdir):
    (workdir / "lessons").mkdir()
    write(
        workdir / "lessons/base.yaml",
        "data: {path: sklearn:iris}\nmodel: {hidden: [16], dropout: 0.1}\n"
        "optimizer: {name: sgd, lr: 0.01, momentum: 0.9}\ntrain: {epochs: 3, batch_size: 16}\n",
    )
    write(workdir / "lessons/adam.yaml", "base: base.yaml\noptimizer: {name: adam}\ntrain: {epochs: 2}\n")


def test_a_chain_merges_key_by_key_and_a_switch_drops_what_the_new_one_does_not_take(workdir, cli):
    lesson(workdir)
    write(workdir / "mine.yaml", "base: lessons/adam.yaml\nmodel: {dropout: 0.3}\n")
    cfg = load_config(workdir / "mine.yaml")
    assert cfg.name == "mine" and cfg.model.hidden == [16] and cfg.model.dropout == 0.3
    assert cfg.optimizer == {"name": "adam", "lr": 0.01} and cfg.train.epochs == 2 and cfg.train.batch_size == 16
    assert any("optimizer.momentum=0.9 dropped: adam takes no 'momentum'" in n for n in cfg._notes)
    r = cli("configs", "show", "mine.yaml")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "# lessons/base.yaml <- lessons/adam.yaml <- mine.yaml"
    shown = yaml.safe_load(r.stdout)
    assert shown["model"] == {"hidden": [16], "dropout": 0.3} and shown["optimizer"] == {"name": "adam", "lr": 0.01}
    r = cli("fit", "mine.yaml", "train.epochs=1")
    assert r.exit_code == 0 and "optimizer.momentum=0.9 dropped" in r.stdout


def test_problems_name_the_file_and_line_that_set_them(workdir, cli):
    lesson(workdir)
    write(workdir / "lessons/base.yaml", (workdir / "lessons/base.yaml").read_text().replace("lr: 0.01", "lr: -1"))
    write(workdir / "mine.yaml", "base: lessons/adam.yaml\nmodel: {dropout: 2}\n")
    r = cli("fit", "mine.yaml")
    assert r.exit_code == 2
    assert "model.dropout=2: Input should be less than 1; e.g. dropout: 0.2 (line 2)" in r.stderr
    assert "optimizer.lr=-1: must be greater than 0" in r.stderr and "(lessons/base.yaml line 3)" in r.stderr


def test_cycles_missing_bases_and_bad_values_are_refused(workdir, cli):
    write(workdir / "a.yaml", "base: b.yaml\n")
    write(workdir / "b.yaml", "base: a.yaml\n")
    r = cli("fit", "a.yaml")
    assert r.exit_code == 2 and "b.yaml: base: a.yaml makes a cycle (a.yaml -> b.yaml -> a.yaml)" in r.stderr
    write(workdir / "c.yaml", "base: nowhere.yaml\n")
    r = cli("configs", "show", "c.yaml")
    assert r.exit_code == 2 and "c.yaml: base: nowhere.yaml: file not found (looked for nowhere.yaml)" in r.stderr
    write(workdir / "d.yaml", "base: [a.yaml]\n")
    r = cli("fit", "d.yaml")
    assert r.exit_code == 2 and "d.yaml: base: give the path of another YAML config" in r.stderr


def test_a_dict_config_takes_base_as_a_file_does(workdir):
    """Issue 26 (A1): the API's dict config refused base: as an unknown key; its base is under the working folder."""
    import pytest

    from nntrain.api import configured
    from nntrain.errors import UserError

    lesson(workdir)
    write(workdir / "mine.yaml", "base: lessons/adam.yaml\nmodel: {dropout: 0.3}\n")
    from_file = load_config(workdir / "mine.yaml")
    given = {"name": "mine", "base": "lessons/adam.yaml", "model": {"dropout": 0.3}}
    from_dict, _ = configured(given)
    assert from_dict.model_dump() == from_file.model_dump() and given["base"] == "lessons/adam.yaml"
    assert any("optimizer.momentum=0.9 dropped: adam takes no 'momentum'" in n for n in from_dict._notes)
    assert configured({"base": "lessons/adam.yaml"})[0].name == "run"
    with pytest.raises(UserError, match="config: base: nope.yaml: file not found"):
        configured({"base": "nope.yaml"})
