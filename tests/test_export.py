"""nntrain export: the ONNX / TorchScript file, with the preprocessing folded in, matches nntrain predict."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from nntrain.cli import app
from nntrain.data.columns import numeric_names
from nntrain.data.quantiles import knots, mapped
from nntrain.errors import UserError
from nntrain.tools.export import export_run
from nntrain.tools.export_graph import QuantileMap, Standardize
from nntrain.tools.export_sidecar import sidecar_path
from nntrain.tools.inference import load_run, predict_frame

from .conftest import make_table, write_config

# name -> (make_table arguments, config sections). Together they reach every branch of to_proba and the layers
# export has to treat specially (rrelu, batch norm, dropout, prelu).
CASES = {
    "multiclass": ({"task": "multiclass"}, {}),
    "binary": ({"task": "binary"}, {}),  # string labels, two logits
    "binary_bce": ({"task": "binary"}, {"loss": {"name": "bce"}}),  # one logit -> the sigmoid pair
    "binary_bce_batch_norm": (
        {"task": "binary"},
        {"loss": {"name": "bce"}, "model": {"hidden": [8, 4], "batch_norm": True, "activation": "gelu"}},
    ),
    "multiclass_nll": (
        {"task": "multiclass"},
        {
            "loss": {"name": "nll"},
            "model": {
                "hidden": None,
                "layers": [
                    {"size": 8, "activation": "rrelu", "dropout": 0.2},
                    {"size": 6, "activation": "prelu", "batch_norm": True},
                ],
                "output_activation": {"name": "log_softmax"},
            },
        },
    ),
    "regression": ({"task": "regression"}, {}),
    "regression_impute": ({"task": "regression", "missing": True}, {"data": {"impute": "median"}}),
    # the tabular recipe's parts: robust scaling's smooth clip and both numeric embeddings in the graph
    "multiclass_periodic": (
        {"task": "multiclass", "missing": True},
        {"data": {"scale": "robust"}, "model": {"hidden": [8], "numeric_embedding": "periodic"}},
    ),
    # data.scale: quantile's knots in the graph (quantiles.py), with the training median filling a gap
    "regression_quantile": (
        {"task": "regression", "missing": True},
        {"data": {"scale": "quantile"}, "model": {"hidden": [8], "numeric_embedding": "periodic"}},
    ),
    "regression_piecewise": (
        {"task": "regression"},
        {"data": {"scale": "robust"}, "model": {"hidden": [8], "numeric_embedding": "piecewise_linear"}},
    ),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Runs trained once per module, on demand: name -> (run folder, data CSV)."""
    root = tmp_path_factory.mktemp("export")
    runner = CliRunner()
    done: dict[str, tuple[Path, Path]] = {}

    def get(name: str) -> tuple[Path, Path]:
        if name not in done:
            table_kw, sections = CASES[name]
            df = make_table(n=200, task=table_kw["task"], cat=table_kw.get("cat", False))
            if table_kw.get("missing"):
                df.loc[df.index[::9], "b"] = np.nan
            data = root / f"{name}.csv"
            df.to_csv(data, index=False)
            cfg = write_config(root / f"{name}.yaml", data, name=name, runs_dir=str(root / "runs"), **sections)
            result = runner.invoke(app, ["fit", str(cfg), "--json", "--quiet"])
            assert result.exit_code == 0, result.output
            done[name] = (Path(json.loads(result.stdout.strip().splitlines()[-1])["run_dir"]), data)
        return done[name]

    return get


def raw_test_rows(run_dir: Path, data: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(the test split's raw feature rows as float64, their row indices, prep)."""
    prep = load_run(run_dir).prep
    test = np.asarray(json.loads((run_dir / "split.json").read_text())["test"])
    frame = pd.read_csv(data)
    return frame[prep["columns"]].to_numpy(dtype=np.float64)[test], test, prep


def expected(run_dir: Path, data: Path, test: np.ndarray) -> pd.DataFrame:
    """What nntrain predict writes for the test rows."""
    return predict_frame(load_run(run_dir), str(data)).iloc[test].reset_index(drop=True)


def check_matches_predict(got: np.ndarray, want: pd.DataFrame, prep: dict) -> None:
    if prep["task"] == "regression":
        assert got.shape == (len(want),)
        np.testing.assert_allclose(got, want["prediction"].to_numpy(), rtol=1e-5, atol=0)
        return
    proba = want[[f"proba_{c}" for c in prep["classes"]]].to_numpy()
    assert got.shape == proba.shape
    np.testing.assert_allclose(got, proba, rtol=0, atol=1e-5)
    labels = np.asarray(prep["classes"], dtype=object)[got.argmax(axis=1)]
    assert list(labels) == list(want["prediction"])


@pytest.mark.parametrize("name", list(CASES))
def test_onnx_matches_predict_on_the_test_split(trained, name):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    run_dir, data = trained(name)
    out = export_run(run_dir, "onnx")
    assert out == run_dir / "model.onnx" and out.is_file()
    X, test, prep = raw_test_rows(run_dir, data)
    if name == "regression_impute":
        assert prep["impute"] and np.isnan(X).any()  # NaN goes in raw; the model imputes it
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,), (outp,) = session.get_inputs(), session.get_outputs()
    assert inp.name == "features" and inp.shape == ["rows", len(prep["columns"])] and inp.type == "tensor(double)"
    assert outp.name == ("prediction" if prep["task"] == "regression" else "probabilities")
    assert outp.shape[0] == "rows"
    got = session.run(None, {"features": X})[0]
    want = expected(run_dir, data, test)
    check_matches_predict(got, want, prep)
    # the batch dimension is dynamic: one row gives that row's answer
    one = session.run(None, {"features": X[3:4]})[0]
    np.testing.assert_allclose(one, got[3:4], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["multiclass", "binary_bce", "multiclass_nll", "regression_impute"])
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_matches_predict_on_the_test_split(trained, name, tmp_path):
    run_dir, data = trained(name)
    out = export_run(run_dir, "torchscript", tmp_path / "m.pt")
    assert out == tmp_path / "m.pt"
    X, test, prep = raw_test_rows(run_dir, data)
    module = torch.jit.load(str(out))
    with torch.no_grad():
        got = module(torch.from_numpy(X)).numpy()
        one = module(torch.from_numpy(X[:1])).numpy()
    check_matches_predict(got, expected(run_dir, data, test), prep)
    np.testing.assert_allclose(one, got[:1], rtol=1e-6, atol=1e-7)
    side = json.loads(sidecar_path(out).read_text())
    assert side["format"] == "torchscript" and "deprecated" in side["note"]


def test_sidecar_names_columns_and_outputs_in_order(trained, tmp_path):
    pytest.importorskip("onnxscript")
    run_dir, _ = trained("binary")
    out = export_run(run_dir, "onnx", tmp_path / "deploy.onnx", checkpoint="last")
    side_path = tmp_path / "deploy.onnx.json"
    assert sidecar_path(out) == side_path
    side = json.loads(side_path.read_text())
    assert side["format"] == "onnx" and side["file"] == "deploy.onnx" and side["checkpoint"] == "last"
    assert side["input"]["columns"] == ["a", "b", "c"] == load_run(run_dir).prep["columns"]
    assert side["input"]["name"] == "features" and side["input"]["shape"] == ["rows", 3]
    assert side["output"] == {**side["output"], "name": "probabilities", "classes": ["no", "yes"], "target": "y"}
    assert side["task"] == "binary" and isinstance(side["opset"], int)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deploy.onnx", "deploy.onnx.json"]  # no temporary files


def test_regression_sidecar_names_the_target(trained, tmp_path):
    run_dir, _ = trained("regression_impute")
    out = export_run(run_dir, "torchscript", tmp_path / "r.pt")
    side = json.loads(sidecar_path(out).read_text())
    assert side["output"]["name"] == "prediction" and side["output"]["target"] == "y"
    assert list(side["input"]["imputed"]) == ["b"]


def test_string_columns_are_refused_by_name_in_torchscript_and_taken_by_onnx(tmp_path):
    df = make_table(n=120, task="multiclass", cat=True)
    df.to_csv(tmp_path / "cat.csv", index=False)
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "cat.csv", runs_dir=str(tmp_path / "runs"))
    result = CliRunner().invoke(app, ["fit", str(cfg), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout.strip().splitlines()[-1])["run_dir"])
    with pytest.raises(UserError) as e:
        export_run(run_dir, "torchscript")
    assert e.value.exit_code == 2
    assert "takes numbers only" in str(e.value) and "'color'" in str(e.value) and "--format onnx" in str(e.value)
    assert not list(run_dir.glob("model*"))
    out = export_run(run_dir, "onnx")
    assert json.loads(sidecar_path(out).read_text())["strings"]["columns"] == ["color"]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_a_duration_column_goes_in_as_seconds_and_a_true_false_one_as_1_or_0(tmp_path):
    """The sidecar names the columns the graph takes in seconds, and those it takes as 1 or 0; fed them, it
    answers as predict does on m:ss and on yes / N / TRUE."""
    df = make_table(n=120, task="regression")
    secs = np.random.default_rng(2).integers(60, 7200, 120)
    df["call"] = [f"{t // 60}:{t % 60:02d}" for t in secs]  # 119:59 at most: no time of day
    flag = (df["a"] > 0).to_numpy()
    df["open"] = [("yes", "TRUE")[i % 2] if v else ("N", "false")[i % 2] for i, v in enumerate(flag)]
    df.to_csv(tmp_path / "calls.csv", index=False)
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "calls.csv", runs_dir=str(tmp_path / "runs"))
    result = CliRunner().invoke(app, ["fit", str(cfg), "--json", "--quiet", "data.target=y"])
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout.strip().splitlines()[-1])["run_dir"])
    out = export_run(run_dir, "torchscript", tmp_path / "m.pt")
    side = json.loads(sidecar_path(out).read_text())["input"]
    assert side["columns"] == ["a", "b", "c", "call", "open"] and side["durations"] == ["call"]
    assert side["flags"] == ["open"]
    x = np.column_stack([df[["a", "b", "c"]].to_numpy(), secs, flag]).astype(np.float64)
    with torch.no_grad():
        got = torch.jit.load(str(out))(torch.from_numpy(x)).numpy()
    want = predict_frame(load_run(run_dir), str(tmp_path / "calls.csv"))["prediction"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_user_errors(trained, tmp_path, monkeypatch):
    run_dir, _ = trained("multiclass")
    with pytest.raises(UserError, match="choose one of: onnx, torchscript"):
        export_run(run_dir, "tflite")
    with pytest.raises(UserError, match=r"folder .*nowhere does not exist"):
        export_run(run_dir, "torchscript", tmp_path / "nowhere" / "m.pt")
    with pytest.raises(UserError, match="is a folder"):
        export_run(run_dir, "torchscript", tmp_path)
    with pytest.raises(UserError, match="checkpoint"):
        export_run(run_dir, "torchscript", run_dir / "best.pt")
    with pytest.raises(UserError, match="run folder not found"):
        export_run(tmp_path / "no_run", "onnx")
    with pytest.raises(UserError, match="choose best or last"):
        export_run(run_dir, "torchscript", tmp_path / "m.pt", checkpoint="first")
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript now raises ImportError
    with pytest.raises(UserError, match=r'needs (onnx and )?onnxscript.*pip install -e "\.\[export\]"'):
        export_run(run_dir, "onnx", tmp_path / "m.onnx")
    assert not list(tmp_path.glob("m.*"))


def test_standardize_rounds_like_encode():
    """float64 arithmetic, one rounding to float32: the same bits as data.encode for float32-exact inputs."""
    shift, scale = [1000.123456789, -3.5], [0.0123, 7.0]
    x = np.array([[1000.125, 2.0], [999.875, np.nan]], dtype=np.float32)
    got = Standardize(shift, scale, [None, 0.25])(torch.from_numpy(x)).numpy()
    want = np.empty_like(x)
    for j in range(2):
        v = np.where(np.isnan(x[:, j]), 0.25, x[:, j]).astype(np.float64)
        want[:, j] = (v - shift[j]) / scale[j]
    assert got.dtype == np.float32 and np.array_equal(got, want)


def test_the_graphs_quantile_map_is_numpys_interp_through_the_knots():
    """Below, at, between and above the knots, on ties, a NaN, a one-knot (constant) column and columns whose
    knots fill the padded width exactly."""
    rng = np.random.default_rng(0)
    columns = [
        rng.lognormal(0, 2, 3000),  # 100 knots
        np.repeat([0.0, 1.0, 5.0], [700, 200, 100]),  # ties: three knots
        np.full(50, 2.5),  # constant: one knot
        rng.normal(size=30_000),  # 1,000 knots
        rng.normal(size=480),  # 16 knots: the width 16 exactly
    ]
    fitted = [knots(v) for v in columns]
    x = np.stack(
        [[*v[:40], v.min() - 1, v.max() + 1, np.nan, k[0][0], k[0][1 % len(k[0])]] for v, k in zip(columns, fitted)], 1
    )
    got = QuantileMap(fitted)(torch.from_numpy(x)).numpy()
    want = np.stack([mapped(x[:, j], k) for j, k in enumerate(fitted)], 1)
    gap = np.isnan(x)
    np.testing.assert_allclose(got[~gap], want[~gap], rtol=0, atol=1e-12)
    assert np.isnan(got[gap]).all() and (got[~gap[:, 2], 2] == 0).all()


def large_magnitude_run(tmp_path: Path, scale: str) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """F3: epoch-millisecond timestamps (1.7e12 + up to an hour: float32 holds them 131072 ms apart), a feature
    and a regression target beyond float32's range. (run folder, the table, what predict writes for it)."""
    rng = np.random.default_rng(6)
    k = rng.uniform(0, 3.6e6, 300)
    df = pd.DataFrame(
        {"ts_ms": (1.7e12 + k).round(), "huge": 1e39 * (2 + rng.normal(size=300)), "a": rng.normal(size=300)}
    )
    df["y"] = 3e39 + 1e39 * np.sin(k / 3.6e6 * 6) + 1e38 * df["a"]
    df.to_csv(tmp_path / "ts.csv", index=False)
    cfg = write_config(
        tmp_path / "ts.yaml",
        tmp_path / "ts.csv",
        runs_dir=str(tmp_path / "runs"),
        data={"scale": scale},
        train={"epochs": 30, "batch_size": 32},
    )
    result = CliRunner().invoke(app, ["fit", str(cfg), "--json", "--quiet", "data.target=y"])
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout.strip().splitlines()[-1])["run_dir"])
    return run_dir, df, predict_frame(load_run(run_dir), str(tmp_path / "ts.csv"))


@pytest.mark.parametrize("scale", ["standard", "quantile", "robust"])
def test_onnx_matches_predict_on_millisecond_timestamps_and_values_beyond_float32(tmp_path, scale):
    """The graph takes float64 and scales in float64, as predict does: no two timestamps merge, no NaN or inf
    for values float32 cannot hold, and the prediction comes back in float64 in the target's units."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    run_dir, df, want = large_magnitude_run(tmp_path, scale)
    out = export_run(run_dir, "onnx")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,), (outp,) = session.get_inputs(), session.get_outputs()
    assert inp.type == outp.type == "tensor(double)"
    side = json.loads(sidecar_path(out).read_text())
    assert side["input"]["dtype"] == side["output"]["dtype"] == "float64"
    got = session.run(None, {"features": df[side["input"]["columns"]].to_numpy(np.float64)})[0]
    want = want["prediction"].to_numpy()
    assert np.isfinite(got).all() and np.isfinite(want).all() and len(np.unique(got)) == len(np.unique(want))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=0)
    assert np.abs(got - want).max() <= 1e-5 * want.std()  # within 1e-5 of the spread, not only of 3e39


def test_a_column_the_float32_layers_cannot_take_is_refused_by_name(trained, tmp_path):
    """A fill value that scales beyond float32 would make the graph answer inf or NaN: exit 2 naming the column,
    and nothing written."""
    from nntrain.tools.export import export_loaded

    run_dir, _ = trained("regression_impute")
    loaded = load_run(run_dir)
    j = numeric_names(loaded.prep).index("b")
    loaded.prep["impute"]["b"], loaded.prep["scale"][j] = 1e300, 1e-300
    with pytest.raises(UserError, match=r"column\(s\) 'b': .*beyond float32's range") as e:
        export_loaded(loaded, "onnx", tmp_path / "m.onnx", "best")
    assert e.value.exit_code == 2 and not list(tmp_path.iterdir())


# `nntrain export` in its own process, with a real SIGINT raised at one point: the first import of module
# sys.argv[1] (an "import" audit event), or the opening of a file whose name holds it (an "open" event).
SIGINT_AT = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # the suite run as a background job ignores SIGINT
event, where = sys.argv.pop(1), sys.argv.pop(1)
def hook(name, args):
    if name == event and args and where in str(args[0]) and not hook.done:
        hook.done = True
        signal.raise_signal(signal.SIGINT)
hook.done = False
sys.addaudithook(hook)
sys.argv[0] = "nntrain"
from nntrain.cli.app import main
main()
"""


def _export_interrupted(run_dir: Path, out: Path, event: str, where: str):
    import subprocess

    args = [sys.executable, "-c", SIGINT_AT, event, where, "export", str(run_dir), "-o", str(out), "--force"]
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=out.parent)


def test_a_ctrl_c_inside_the_onnx_exporter_exits_130_and_leaves_the_old_files(trained, tmp_path):
    """torch's exporter wraps a KeyboardInterrupt that lands in one of its lazy imports in its own error (was:
    "torch.onnx.export failed", exit 1); a Ctrl-C while the files are written comes too late to stop anything:
    the model and its sidecar are both the new ones (was: the new model beside the old sidecar)."""
    run_dir, _ = trained("regression")
    out = tmp_path / "out.onnx"
    out.write_text("old model")
    sidecar_path(out).write_text("old sidecar")
    r = _export_interrupted(run_dir, out, "import", "torch._dynamo.compiled_autograd")
    assert (r.returncode, r.stderr) == (130, "interrupted\n")
    assert out.read_text() == "old model" and sidecar_path(out).read_text() == "old sidecar"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx", "out.onnx.json"]  # no temp file left
    r = _export_interrupted(run_dir, out, "open", "out.onnx.json.tmp-")
    assert r.returncode == 0 and r.stderr.startswith("wrote ")
    assert json.loads(sidecar_path(out).read_text())["file"] == "out.onnx" and out.read_bytes()[:2] != b"ol"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx", "out.onnx.json"]
