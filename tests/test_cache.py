"""The prepared-data cache (issue 14): a second fit of the same file reads it, and trains exactly as the first;
a changed file, a corrupt entry or another data setting is a miss; the cache stays within its size."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from nntrain.config.loading import load_config
from nntrain.data import digests
from nntrain.data.cache import cache_dir, cached_data

from .conftest import make_table, write_config


def entries(workdir):
    folder = workdir / "runs" / ".cache"
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def fit(cli, cfg, *overrides):
    r = cli("fit", cfg, "--json", "--quiet", *overrides)
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    return json.loads(r.stdout), r


@pytest.fixture
def setup(workdir):
    data = workdir / "t.csv"
    df = make_table(n=300, cat=True)
    df.loc[::9, "b"] = np.nan
    df.to_csv(data, index=False)
    return write_config(workdir / "c.yaml", data, train={"epochs": 2}), data


def test_a_second_fit_reads_the_cache_and_trains_the_same(workdir, cli, setup):
    cfg, _ = setup
    first, r = fit(cli, cfg)
    assert "data from the cache" not in r.stderr and len(entries(workdir)) == 1
    second, r = fit(cli, cfg)
    assert "note: data from the cache" in r.stderr
    assert second["test"] == first["test"] and second["best_value"] == first["best_value"]
    fresh, r = fit(cli, cfg, "--no-cache")
    assert "data from the cache" not in r.stderr and fresh["test"] == first["test"]
    loaded, _ = cached_data(load_config(cfg), cfg.parent)
    plain, _ = cached_data(load_config(cfg, ["data.cache=false"]), cfg.parent)
    assert np.array_equal(loaded.X, plain.X) and loaded.prep == plain.prep
    assert all(np.array_equal(getattr(loaded, k), getattr(plain, k)) for k in ("y", "train", "val", "test"))


def test_a_changed_file_is_a_miss_even_with_the_same_size_and_time(workdir, cli, setup):
    cfg, data = setup
    fit(cli, cfg)
    st = data.stat()
    text = data.read_text()
    data.write_text(text.replace("red", "rex"))  # same size
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))  # same modification time: the sha256 tells
    digests._DIGESTS.clear()  # as in a new process: a digest is kept per path, size and time within one
    _, r = fit(cli, cfg)
    assert "data from the cache" not in r.stderr
    loaded, _ = cached_data(load_config(cfg), cfg.parent)
    assert "color=rex" in loaded.prep["encoded"]


def test_a_corrupt_entry_is_rebuilt_never_trusted(workdir, cli, setup):
    cfg, _ = setup
    first, _ = fit(cli, cfg)
    (entry,) = entries(workdir)
    (entry / "X.npy").write_bytes(b"\x93NUMPY garbage")
    again, r = fit(cli, cfg)
    assert "data from the cache" not in r.stderr and again["test"] == first["test"]
    (entry,) = entries(workdir)
    (entry / "meta.json").write_text("{")
    _, r = fit(cli, cfg)
    assert "data from the cache" not in r.stderr
    _, r = fit(cli, cfg)
    assert "data from the cache" in r.stderr  # rebuilt whole


def test_other_data_settings_are_other_entries_and_the_oldest_goes_past_the_limit(workdir, cli, setup):
    cfg, _ = setup
    fit(cli, cfg)
    fit(cli, cfg, "data.impute=median")
    fit(cli, cfg, "seed=3")  # the split follows the seed
    fit(cli, cfg, "seed=3", "data.split_seed=1")
    fit(cli, cfg, "seed=4", "data.split_seed=1")  # the same split: a hit
    assert len(entries(workdir)) == 4
    size = sum(f.stat().st_size for f in entries(workdir)[0].iterdir())
    fit(cli, cfg, "data.scale=minmax", f"data.cache_max_gb={2.5 * size / 2**30}")
    assert len(entries(workdir)) == 2


def test_a_fit_refused_after_the_data_leaves_no_cache_entry(workdir, cli, setup):
    cfg, _ = setup
    r = cli("fit", cfg, "model.hidden=[2000000000]")  # fits the data, not the memory
    assert r.exit_code == 2 and entries(workdir) == []


def test_a_hit_is_checked_against_the_config_as_fresh_data_is(workdir, cli, setup):
    cfg, _ = setup
    fit(cli, cfg)  # three classes, cross_entropy: the entry is written
    r = cli("fit", cfg, "loss=bce")
    assert r.exit_code == 2, r.stderr
    assert "loss=bce: bce is for two classes, the target has more (3 classes)" in r.stderr


def test_cache_dir_is_settable(workdir, setup):
    cfg, _ = setup
    assert cache_dir(load_config(cfg, ["data.cache_dir=elsewhere"]), cfg.parent).name == "elsewhere"


def test_eviction_never_removes_what_the_cache_did_not_write(workdir, cli, setup):
    """Issue 26 (1): a data.cache_dir holding the user's folders keeps them past cache_max_gb; a relative
    cache_dir is under the working directory, never found one folder up beside the config."""
    cfg, _ = setup
    (workdir / "mine" / "photos").mkdir(parents=True)
    (workdir / "mine" / "photos" / "a.jpg").write_bytes(os.urandom(100_000))
    (workdir / "mine" / "0123456789abcdef0123456789abcdef").mkdir()  # named like a key, not the cache's
    (workdir / "mine" / "0123456789abcdef0123456789abcdef" / "X.npy").write_bytes(b"mine")
    for p in (workdir / "mine").iterdir():
        os.utime(p, (0, 0))  # the oldest there
    fit(cli, cfg, "data.cache_dir=mine")
    (entry,) = [p for p in (workdir / "mine").iterdir() if (p / "meta.json").is_file()]
    limit = 1.5 * sum(f.stat().st_size for f in entry.iterdir()) / 2**30  # one entry, not two, nor the photos
    fit(cli, cfg, "data.cache_dir=mine", f"data.cache_max_gb={limit}", "data.impute=median")
    assert not entry.exists()  # the cache's own older entry went
    assert (workdir / "mine" / "photos" / "a.jpg").stat().st_size == 100_000
    assert (workdir / "mine" / "0123456789abcdef0123456789abcdef" / "X.npy").read_bytes() == b"mine"
    assert len([p for p in (workdir / "mine").iterdir() if (p / "meta.json").is_file()]) == 1  # the newest entry
    (workdir / "proj" / "configs").mkdir(parents=True)
    (workdir / "proj" / "stuff" / "keep").mkdir(parents=True)
    (workdir / "proj" / "stuff" / "keep" / "big.bin").write_bytes(b"x")
    nested = write_config(workdir / "proj" / "configs" / "c.yaml", workdir / "t.csv", data={"cache_dir": "stuff"})
    fit(cli, nested)
    assert sorted(p.name for p in (workdir / "proj" / "stuff").iterdir()) == ["keep"]
    assert len(list((workdir / "stuff").iterdir())) == 1


def test_the_runs_folder_as_cache_dir_is_refused_and_no_run_is_lost(workdir, cli, setup):
    """Issue 26 (2): data.cache_dir=runs would have evicted the older runs and the run being trained."""
    cfg, _ = setup
    fit(cli, cfg, "--name", "old")
    r = cli("fit", cfg, "--name", "new", "data.cache_dir=runs", "data.cache_max_gb=0.00001")
    assert r.exit_code == 2 and "data.cache_dir=runs: that is the runs folder" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (workdir / "runs" / "new").exists()
    assert (workdir / "runs" / "old" / "best.pt").is_file()
    fit(cli, cfg, "--name", "new", "data.cache_dir=runs/store", "data.cache_max_gb=0.00001")
    fit(cli, cfg, "--name", "newer", "data.cache_dir=runs/store", "data.cache_max_gb=0.00001", "seed=3")
    assert all((workdir / "runs" / n / "summary.json").is_file() for n in ("old", "new", "newer"))


def test_an_altered_array_in_an_entry_is_a_miss_and_said(workdir, cli, setup):
    """Issue 26 (12): an entry's own arrays are checked against the sha256 it recorded; y.npy altered after
    it was written is not trained on, a note says why, and the entry is rebuilt."""
    cfg, _ = setup
    first, _ = fit(cli, cfg, "--name", "first")
    (entry,) = entries(workdir)
    y = np.load(entry / "y.npy")
    np.save(entry / "y.npy", np.random.default_rng(1).permutation(y))
    second, r = fit(cli, cfg, "--name", "second")
    assert "data from the cache" not in r.stderr
    assert "y.npy altered since it was written" in r.stderr and "prepared again" in r.stderr
    assert second["test"] == first["test"]
    assert np.array_equal(np.load(entry / "y.npy"), y)  # rebuilt
    _, r = fit(cli, cfg, "--name", "third")
    assert "the files' and the entry's sha256 checked" in r.stderr
