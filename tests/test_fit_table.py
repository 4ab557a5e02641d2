"""A user's first commands: `nntrain fit TABLE --target COL` trains the recipe on the table and says how to train
it again; `nntrain fit data.path=... data.target=...` needs no config file; a missing target is said; a
classification of a quantity is refused."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from .conftest import make_table

QUICK = ("train.epochs=2", "train.bag=1")


def test_fit_a_table_with_target_trains_the_recipe_and_prints_how_to_train_it_again(workdir, cli):
    make_table(n=150, task="binary").to_csv(workdir / "house.csv", index=False)
    r = cli("fit", "house.csv", "--target", "a", *QUICK, "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["run_dir"] == "runs/house"
    assert "recipe: tabular" in r.stderr and "task: regression" in r.stderr  # 'a' is a quantity
    saved = workdir / "runs/house/config.yaml"
    assert f"train it again: nntrain fit {saved.relative_to(workdir)}" in r.stderr
    cfg = yaml.safe_load(saved.read_text())
    assert (
        cfg["data"]["path"] == str((workdir / "house.csv").resolve())
        and cfg["data"]["target"] == "a"
        and cfg["train"]["epochs"] == 2
    )
    again = cli("fit", "runs/house/config.yaml", "name=again", "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["test"] == out["test"]  # the same run, from the config it wrote


def test_fit_with_keys_only_needs_no_config_file_and_names_the_run_after_the_table(workdir, cli):
    make_table(n=150).to_csv(workdir / "flowers.tsv", index=False, sep="\t")
    r = cli("fit", "data.path=flowers.tsv", "data.target=y", *QUICK, "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["run_dir"] == "runs/flowers"
    assert "task: multiclass" in r.stderr


def test_a_table_whose_file_name_is_no_folder_name_names_its_run_after_it_anyway(workdir, cli):
    """Spaces, brackets, accents: the run folder is the file's name made plain; nothing plain left: runs/table."""
    table = make_table(n=60, task="regression")
    for file, run in [
        ("Sales Data (final) v2.csv", "Sales_Data_final_v2"),
        ("données_été.csv", "donnees_ete"),
        ("数据.csv", "table"),
    ]:
        table.to_csv(workdir / file, index=False)
        r = cli("fit", file, "--target", "y", *QUICK, "--json")
        assert r.exit_code == 0, r.stderr
        assert json.loads(r.stdout)["run_dir"] == f"runs/{run}"


def test_without_a_target_the_header_says_which_column_is_predicted(workdir, cli):
    make_table(n=150).to_csv(workdir / "t.csv", index=False)
    r = cli("fit", "t.csv", *QUICK)
    assert r.exit_code == 0, r.stderr
    assert "target: 'y', the last column (data.target was not given)" in r.stdout
    r = cli("fit", "t.csv", "--target", "y", *QUICK, "name=named")
    assert r.exit_code == 0 and "the last column" not in r.stdout


def test_a_classification_of_a_quantity_is_refused_with_its_count(workdir, cli):
    df = make_table(n=150, task="regression")
    df.to_csv(workdir / "prices.csv", index=False)
    r = cli("fit", "prices.csv", "--target", "y", "data.task=multiclass", *QUICK)
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert "data.task=multiclass: target 'y' holds 150 distinct numbers in 150 rows" in r.stderr
    assert "data.task=regression" in r.stderr and not (workdir / "runs").exists()


def test_target_is_refused_with_resume_and_a_missing_table_is_named(workdir, cli):
    r = cli("fit", "--resume", "runs/x", "--target", "y")
    assert r.exit_code == 2 and "--target: not with --resume" in r.stderr
    r = cli("fit", "nothere.csv", "--target", "y")
    assert r.exit_code == 2 and "data.path=nothere.csv: file not found" in r.stderr


def test_eval_on_a_file_of_training_rows_says_the_score_flatters(workdir, cli):
    df = make_table(n=150, task="regression")
    df.to_csv(workdir / "t.csv", index=False)
    r = cli("fit", "t.csv", "--target", "y", *QUICK, "--json")
    assert r.exit_code == 0, r.stderr
    split = json.loads((workdir / "runs/t/split.json").read_text())
    r = cli("eval", "runs/t", "--data", "t.csv")
    assert r.exit_code == 0, r.stderr
    assert f"{len(split['train'])} of its 150 rows are rows the run trained on" in r.stderr + r.stdout
    df.iloc[split["test"]].to_csv(workdir / "unseen.csv", index=False)
    r = cli("eval", "runs/t", "--data", "unseen.csv")
    assert r.exit_code == 0 and "trained on" not in r.stderr + r.stdout
    bag = cli("fit", "t.csv", "--target", "y", "train.epochs=2", "train.bag=3", "name=bag")
    assert bag.exit_code == 0, bag.stderr
    r = cli("eval", "runs/bag", "--data", "t.csv")  # a bag trained on every row but its test split's
    assert r.exit_code == 0 and "120 of its 150 rows are rows the run trained on" in r.stderr + r.stdout


def test_the_flatters_warning_counts_the_rows_eval_scores(workdir, cli):
    """A file of the training rows with 10 targets blanked: eval scored 140 rows ('on again.csv, 140 rows') and
    warned that 'N of its 150 rows' were trained on, counting rows it left out (those without a target)."""
    df = make_table(n=150, task="regression")
    df.to_csv(workdir / "t.csv", index=False)
    assert cli("fit", "t.csv", "--target", "y", *QUICK, "train.plots=false", "train.threads=1").exit_code == 0
    train = json.loads((workdir / "runs/t/split.json").read_text())["train"]
    blank = [i for i in range(150) if i not in train][:10]  # rows it never trained on: the count stays the same
    df.assign(y=df["y"].where(~df.index.isin(blank))).to_csv(workdir / "again.csv", index=False)
    r = cli("eval", "runs/t", "--data", "again.csv")
    assert r.exit_code == 0, r.output
    assert "on again.csv, 140 rows:" in r.stdout
    assert f"{len(train)} of its 140 rows are rows the run trained on" in r.stderr


def test_cv_and_lr_find_take_a_table_and_its_target_too(workdir, cli):
    make_table(n=150).to_csv(workdir / "t.csv", index=False)
    r = cli("cv", "t.csv", "--target", "y", "--folds", "2", "train.epochs=2", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["root"] == "runs/t-cv" and len(json.loads(r.stdout)["folds"]) == 2
    r = cli("lr-find", "t.csv", "--target", "y", "--steps", "20")
    assert r.exit_code == 0, r.stderr
    assert "nntrain fit t.csv --target y optimizer.lr=" in r.stdout


def test_the_header_says_where_the_models_input_width_comes_from(workdir, cli):
    df = make_table(n=150, cat=True)  # a, b, c and color (3 levels, one-hot): 6 input columns from 4
    df.to_csv(workdir / "t.csv", index=False)
    r = cli("fit", "t.csv", "--target", "y", *QUICK)
    assert r.exit_code == 0, r.stderr
    assert "6 input columns from 4 of the table's (one-hot levels, date parts and 'was missing' indicators" in r.stdout
    # the recipe's periodic embedding widens each number to 8; the one-hot columns go in as they are
    assert (
        "model: 27 -> 256" in r.stdout
        and "its 27 inputs: 3 number(s) x 8 (their periodic embedding), 3 other" in r.stdout
    )


def test_a_missing_table_names_each_folder_looked_in_once(workdir, cli):
    (workdir / "c.yaml").write_text("data:\n  path: nothere.csv\n")
    r = cli("fit", "c.yaml")
    assert r.exit_code == 2 and "data.path=nothere.csv: file not found (also looked under .)" in r.stderr


def test_a_folder_or_glob_of_parquet_files_is_a_table_named_after_its_folder(workdir, cli):
    (workdir / "sales").mkdir()
    table = make_table(n=150)
    table.iloc[:80].to_parquet(workdir / "sales" / "a.parquet", index=False)
    table.iloc[80:].to_parquet(workdir / "sales" / "b.parquet", index=False)
    r = cli("fit", "sales/*.parquet", "--target", "y", *QUICK, "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["run_dir"] == "runs/sales"
    line = next(x for x in r.stderr.splitlines() if x.startswith("rows: train"))
    assert sum(int(w.strip(",;")) for w in line.split()[2:7:2]) == 150  # both files' rows, read whole
    r = cli("fit", "runs/sales")  # a run folder is not a table: what was meant is said
    assert r.exit_code == 2 and "runs/sales is a run folder: nntrain fit --resume runs/sales trains it on" in r.stderr
    (workdir / "none").mkdir()
    r = cli("fit", "none", "--target", "y")
    assert r.exit_code == 2 and "none: the folder holds no Parquet file" in r.stderr
    assert not (workdir / "runs" / "none").exists()


def test_a_table_or_target_named_twice_two_ways_is_refused_not_one_of_them_dropped(workdir, cli):
    make_table(n=60, task="regression").to_csv(workdir / "a.csv", index=False)
    make_table(n=60, task="regression").to_csv(workdir / "b.csv", index=False)
    r = cli("fit", "a.csv", "--target", "y", "data.path=b.csv", *QUICK)
    assert r.exit_code == 2 and "a.csv and data.path=b.csv: name the table once" in r.stderr
    r = cli("fit", "a.csv", "--target", "y", "data.target=a", *QUICK)
    assert r.exit_code == 2 and "--target y and data.target=a: name the column once" in r.stderr
    assert not (workdir / "runs").exists()
    assert cli("fit", "a.csv", "--target", "y", "data.target=y", *QUICK).exit_code == 0  # the same, said twice


def test_params_on_a_table_and_a_name_too_long_for_a_folder_say_so(workdir, cli):
    make_table(n=40).to_csv(workdir / "t.csv", index=False)
    r = cli("params", "t.csv")
    assert r.exit_code == 2 and "t.csv is a table: params counts a config's or a run folder's parameters" in r.stderr
    r = cli("fit", "t.csv", "--target", "y", "--name", "n" * 201, *QUICK)
    assert r.exit_code == 2 and "at most 200 of them (it names a folder)" in r.stderr
    assert not (workdir / "runs").exists()


def test_a_pipe_or_device_given_as_table_or_config_is_refused_at_once_not_read_forever(workdir):
    import os
    import subprocess

    from .conftest import NNTRAIN

    os.mkfifo(workdir / "feed.csv")  # nothing ever writes to it: a read would wait forever
    for given, said in [
        ("feed.csv", "data.path=feed.csv: not a regular file"),
        ("/dev/zero", "/dev/zero: not a regular"),
    ]:
        r = subprocess.run(
            [*NNTRAIN, "fit", given, "--target", "y"], cwd=workdir, capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 2 and said in r.stderr, r.stderr
    from nntrain.errors import UserError
    from nntrain.runs.folders import create_run_dir

    with pytest.raises(UserError, match="runs_dir=/dev/null: a file, not a folder"):
        create_run_dir("/dev/null", "t")


def test_labels_and_levels_with_outer_spaces_are_the_same_class_and_level(workdir, cli):
    df = make_table(n=120, task="binary", cat=True)
    odd = df.index % 2 == 1  # a hand-typed sheet: every other cell with a space after it ("yes " beside "yes")
    df.loc[odd, "y"] += " "
    df.loc[odd, "color"] = " " + df.loc[odd, "color"]
    df.to_csv(workdir / "t.csv", index=False)
    r = cli("fit", "t.csv", "--target", "y", *QUICK, "train.plots=false", "train.threads=1")
    assert r.exit_code == 0, r.stderr
    assert "task: binary (2 distinct values in 'y'" in r.output
    assert "6 input columns from 4 of the table's" in r.output  # a, b, c and color's 3 levels, not 6 levels
    p = cli("predict", "runs/t", "t.csv", "-o", "p.csv")
    assert p.exit_code == 0, p.stderr
    out = pd.read_csv(workdir / "p.csv")
    assert list(out.columns) == ["prediction", "proba_no", "proba_yes"] and len(out) == 120
    assert set(out["prediction"]) <= {"yes", "no"}
    df.loc[:3, "y"] = "  "  # a target cell of spaces: no label, as fit reads it
    df.to_csv(workdir / "blank.csv", index=False)
    e = cli("eval", "runs/t", "--data", "blank.csv")
    assert e.exit_code == 0, e.output
    assert "4 row(s) without a target 'y' left out" in e.output


def test_a_run_from_before_levels_were_stripped_still_finds_them():
    """A run trained when 'red ' and 'yes ' were kept as typed holds them so; its new rows are read stripped."""
    from nntrain.data.columns import Report
    from nntrain.data.encoding import encode_labels, level_codes

    prep = {"categories": {"c": ["blue", "red "]}, "kinds": {"c": "categorical"}, "impute": {}}
    report = Report()
    assert level_codes(pd.Series(["red", "blue", " red ", "green"], name="c"), prep, 1, report).tolist() == [2, 1, 2, 0]
    assert encode_labels(pd.Series(["yes", "no "]), ["no", "yes "], "y", 1).tolist() == [1, 0]


def test_predict_on_a_file_lacking_a_column_names_the_file_and_the_column_it_holds_instead(workdir, cli):
    df = make_table(n=120, task="binary", cat=True)
    df.to_csv(workdir / "t.csv", index=False)
    assert cli("fit", "t.csv", "--target", "y", *QUICK, "train.plots=false", "train.threads=1").exit_code == 0
    df.drop(columns="y").rename(columns={"color": "Color"}).to_csv(workdir / "new.csv", index=False)
    r = cli("predict", "runs/t", "new.csv", "-o", "p.csv")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "new.csv: lacks column(s) 'color' that the model was trained on (did you mean 'Color'?)" in r.output
    assert not (workdir / "p.csv").exists()
    r = cli("eval", "runs/t", "--data", "new.csv")
    assert r.exit_code == 2 and "new.csv: no target column 'y'" in r.output
    df.rename(columns={"a": "A"}).to_csv(workdir / "labelled.csv", index=False)
    r = cli("eval", "runs/t", "--data", "labelled.csv")
    assert r.exit_code == 2 and "labelled.csv: lacks column(s) 'a' that the model was trained on" in r.output


def test_a_missing_value_mark_in_a_text_target_is_no_class_but_a_class_of_signs_is_kept(workdir, cli):
    df = make_table(n=120, task="binary", cat=True)
    df.loc[::10, "y"] = "?"  # a UCI table's unknown label
    df.to_csv(workdir / "t.csv", index=False)
    r = cli("fit", "t.csv", "--target", "y", *QUICK, "train.plots=false", "train.threads=1")
    assert r.exit_code == 0, r.output
    assert "task: binary (2 distinct values in 'y'" in r.output
    assert "column 'y' (the target): '?' read as missing" in r.output
    assert "12 row(s) without a target 'y' left out of every split" in r.output
    e = cli("eval", "runs/t", "--data", "t.csv")
    assert e.exit_code == 0 and "12 row(s) without a target 'y' left out" in e.output
    df["y"] = df["y"].map({"yes": "+", "no": "-", "?": "-"})  # a promoter table's classes: signs, not marks
    df.to_csv(workdir / "signs.csv", index=False)
    r = cli("fit", "signs.csv", "--target", "y", *QUICK, "train.plots=false", "train.threads=1")
    assert (
        r.exit_code == 0 and "task: binary (2 distinct values in 'y'" in r.output and "read as missing" not in r.output
    )


def test_a_regression_run_evaluates_a_table_whose_text_target_holds_marks_as_its_fit_read_it(workdir, cli):
    """A Parquet target of numbers stored as text with '?' and 'n.a.' among them: fit leaves those rows out, and
    eval --data of the same file did not (was: "column 'y': '?' at row 1 is not a number", exit 2)."""
    df = make_table(n=120, task="regression")
    df["y"] = df["y"].round(3).astype(str)
    df.loc[::10, "y"], df.loc[5::20, "y"] = "?", "n.a."
    df.to_parquet(workdir / "t.parquet", index=False)
    r = cli("fit", "t.parquet", "--target", "y", *QUICK, "train.plots=false", "train.threads=1")
    assert r.exit_code == 0, r.output
    assert "18 row(s) without a target 'y' left out of every split" in r.output
    e = cli("eval", "runs/t", "--data", "t.parquet")
    assert e.exit_code == 0, e.output
    assert "18 row(s) without a target 'y' left out" in e.output


def test_a_column_named_as_an_id_of_distinct_whole_numbers_is_warned_about(workdir, cli):
    """A CustomerID of row numbers was used as an input without a word; a column of distinct numbers not named
    so (paid) is an input as any."""
    df = make_table(n=120).sample(frac=1, random_state=0)
    df.insert(0, "CustomerID", range(1000, 1120))
    df["paid"] = range(120)
    df.to_csv(workdir / "t.csv", index=False)
    r = cli("fit", "t.csv", "--target", "y", *QUICK, "train.plots=false", "train.threads=1")
    assert r.exit_code == 0, r.stderr
    said = r.stdout + r.stderr
    assert "column 'CustomerID' is named as an ID and holds a different whole number in every row" in said
    assert "data.drop: [CustomerID]" in said and "'paid' is named" not in said


def test_labels_that_differ_only_in_case_are_one_class_and_eval_reads_them_so(workdir, cli):
    df = make_table(n=120, task="binary")
    typed = {"yes": ["yes", "yes", "Yes", "YES"], "no": ["no", "no", "No"]}  # a hand-typed sheet's spellings
    df["y"] = [typed[v][i % len(typed[v])] for i, v in enumerate(df["y"])]
    df.to_csv(workdir / "t.csv", index=False)
    r = cli("fit", "t.csv", "--target", "y", *QUICK, "train.plots=false", "train.threads=1")
    assert r.exit_code == 0, r.stderr
    assert "task: binary (2 distinct values in 'y'" in r.output
    assert (
        "labels that differ only in case read as one class each: 'no' (also 'No'), 'yes' (also 'YES', 'Yes')"
        in r.output
    )
    p = cli("predict", "runs/t", "t.csv", "-o", "p.csv")
    assert p.exit_code == 0, p.stderr
    assert list(pd.read_csv(workdir / "p.csv").columns) == ["prediction", "proba_no", "proba_yes"]
    df["y"] = df["y"].str.upper()  # another file spelled otherwise still holds the run's labels
    df.to_csv(workdir / "upper.csv", index=False)
    e = cli("eval", "runs/t", "--data", "upper.csv")
    assert e.exit_code == 0, e.stderr
    assert "on upper.csv, 120 rows" in e.output


def test_one_letter_labels_that_differ_in_case_stay_classes_with_a_warning(workdir, cli):
    df = make_table(n=120, task="binary")
    df["y"] = df["y"].map({"yes": "K", "no": "k"})  # a chess piece's side: the case is the label
    df.to_csv(workdir / "t.csv", index=False)
    r = cli("fit", "t.csv", "--target", "y", *QUICK, "train.plots=false", "train.threads=1")
    assert r.exit_code == 0, r.stderr
    assert "task: binary (2 distinct values in 'y'" in r.output
    assert "warning: column 'y' (the target): labels 'K' and 'k' differ only in case" in r.output


def test_levels_that_differ_only_in_case_are_one_level_in_fit_and_predict(workdir, cli):
    df = make_table(n=120, task="binary", cat=True)
    typed = {"red": ["red", "red", "Red"], "green": ["green", "GREEN"], "blue": ["blue"]}  # a hand-typed sheet's
    df["color"] = [typed[v][i % len(typed[v])] for i, v in enumerate(df["color"])]
    df.to_csv(workdir / "t.csv", index=False)
    r = cli("fit", "t.csv", "--target", "y", *QUICK, "train.plots=false", "train.threads=1")
    assert r.exit_code == 0, r.stderr
    assert "6 input columns from 4 of the table's" in r.output  # a, b, c and color's 3 levels, not 5
    assert "column 'color': levels that differ only in case read as one each: 'green' (also 'GREEN')" in r.output
    df["color"] = df["color"].str.upper()
    df.drop(columns="y").to_csv(workdir / "new.csv", index=False)
    p = cli("predict", "runs/t", "new.csv", "-o", "p.csv")
    assert p.exit_code == 0, p.stderr
    assert "never seen" not in p.output and len(pd.read_csv(workdir / "p.csv")) == 120


def test_a_target_whose_header_cell_breaks_its_line_is_named_with_a_space(workdir, cli):
    df = make_table(n=120, task="regression").rename(columns={"y": "Price\n(EUR)"})  # Alt+Enter in a sheet's cell
    df.to_csv(workdir / "t.csv", index=False)
    r = cli("fit", "t.csv", "--target", "Price (EUR)", *QUICK, "train.plots=false", "train.threads=1")
    assert r.exit_code == 0, r.stderr
    assert "task: regression" in r.output
    e = cli("eval", "runs/t", "--data", "t.csv")
    assert e.exit_code == 0, e.stderr


def test_a_column_of_mixed_true_false_spellings_is_one_column_in_fit_and_predict(workdir, cli):
    df = make_table(n=120, task="binary")  # its target: yes / no, labels that stay the run's classes
    truth = df["a"] > df["a"].median()
    spelled = {True: ["yes", "Y", "TRUE", "True", "t", "1"], False: ["no", "N", "FALSE", "False", "f", "0"]}
    df["flag"] = [spelled[v][i % 6] for i, v in enumerate(truth)]  # a hand-typed sheet's spellings
    df.to_csv(workdir / "t.csv", index=False)
    r = cli("fit", "t.csv", "--target", "y", *QUICK, "train.plots=false", "train.threads=1")
    assert r.exit_code == 0, r.stderr
    assert "4 input columns from 4 of the table's" in r.output  # a, b, c and flag's 1/0, not 12 levels
    said = "column 'flag' read as true/false, one 1/0 column (true: '1', 'TRUE', 'True', 'Y', 't', 'yes'; false: "
    assert said in r.output
    new = df.drop(columns="y")
    new.to_csv(workdir / "same.csv", index=False)
    new["flag"] = [spelled[v][(i + 3) % 6].lower() for i, v in enumerate(truth)]  # each row spelled otherwise
    new.to_csv(workdir / "other.csv", index=False)
    for name in ("same", "other"):
        p = cli("predict", "runs/t", f"{name}.csv", "-o", f"{name}_p.csv")
        assert p.exit_code == 0, p.stderr
        assert "never seen" not in p.output
    same, other = pd.read_csv(workdir / "same_p.csv"), pd.read_csv(workdir / "other_p.csv")
    assert list(same.columns) == ["prediction", "proba_no", "proba_yes"]
    pd.testing.assert_frame_equal(same, other)
    new.loc[5, "flag"] = "maybe"
    new.to_csv(workdir / "bad.csv", index=False)
    b = cli("predict", "runs/t", "bad.csv")
    assert b.exit_code == 2 and "column 'flag': 'maybe' at row 6" in b.output and "is not true or false" in b.output


@pytest.mark.parametrize("task", ["regression", "binary"])
def test_a_table_whose_every_input_is_constant_or_left_out_is_warned_about(workdir, cli, task):
    df = make_table(n=60, task=task)[["y"]]
    df["x"], df["z"], df["empty"] = 1, "a", None  # one value each, and a column of none (left out)
    df.to_csv(workdir / "t.csv", index=False)
    r = cli("fit", "t.csv", "--target", "y", *QUICK, "train.plots=false", "train.threads=1")
    assert r.exit_code == 0, r.stderr
    learns = "mean" if task == "regression" else "classes' shares (its prior)"
    said = "training rows ('x', 'z' the same in every one): the model can learn only the target's "
    assert "warning: no input column varies over the 43 " in r.output and f"{said}{learns}, whatever" in r.output
    df.loc[::3, "x"] = 2  # rows that differ: something to learn from
    df.to_csv(workdir / "t.csv", index=False)
    again = cli("fit", "t.csv", "--target", "y", *QUICK, "train.plots=false", "train.threads=1", "name=again")
    assert again.exit_code == 0, again.stderr
    assert "no input column varies" not in again.output
