"""fit of a Parquet table streamed from disk (data.stream): its preprocessing fitted on a bounded sample, its rows
split by a hash of their key, its validation and test rows (a bounded share of each) held in memory, its
training rows read a chunk at a time every epoch (stream_epoch.py). The run folder, checkpoints, resume, eval,
predict and export are those of any run: the checkpoint's preprocessing is fitted as an in-memory run's is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nntrain.config.recipe import fix_auto
from nntrain.config.schema import Config
from nntrain.data.prepare import check_task, prepare
from nntrain.data.readers import stamp
from nntrain.data.stream import (
    Share,
    evaluation_data,
    first_gap,
    hash_split,
    labelled,
    located,
    open_source,
    parquet_files,
    survey,
    table_of,
)
from nntrain.engine.stream_epoch import lanes_of
from nntrain.errors import UserError
from nntrain.resources import available_bytes, gib
from nntrain.runs.files import write_json

# In-memory settings a streamed run has no use for: its split is a hash of each row's key.
NOT_STREAMED = ("val_path", "test_path", "split_column", "group", "time_column")


def stream_files(cfg: Config, config_dir: Path | None) -> tuple[list[str] | None, str]:
    """(the Parquet files to stream, or None to read the table into memory; the header's note on the choice)."""
    setting = cfg.data.stream
    files = parquet_files(cfg.data.path, config_dir) if setting is not False else None
    if files is None:
        if setting is True:
            raise UserError(
                f"data.stream=true streams Parquet (a file, a folder or a glob); data.path={cfg.data.path} is not"
            )
        return None, ""
    if setting is True:
        return files, "data.stream: true"
    source = open_source(files, cfg.data.path)
    need, have = source.rows * len(source.columns) * 4 * 2, available_bytes() or 0
    if have and need > have / 2:
        return files, f"data.stream auto: streamed, as the table would take about {gib(need)} of the {gib(have)} free"
    return None, ""


def check_streamable(cfg: Config) -> str | None:
    """Refuses what a streamed run cannot do; the header's note where train.bag auto became one model."""
    given = [k for k in NOT_STREAMED if getattr(cfg.data, k)]
    if given:
        raise UserError(
            f"data.{given[0]}: a streamed run splits its rows by a hash of their key (data.id); set data.stream=false "
            f"to read the table into memory and split it as data.{given[0]} says"
        )
    if cfg.train.bag not in (0, 1, "auto"):
        raise UserError(
            f"train.bag={cfg.train.bag}: a streamed run trains one model (model.ensemble stacks several on the same "
            "batches); set data.stream=false for a cross-fitted bag"
        )
    auto, cfg.train.bag = cfg.train.bag == "auto", 1
    return "train.bag auto: one model (a streamed run trains one, or a model.ensemble, not a bag)" if auto else None


def start_streamed(cfg: Config, config_dir: Path | None, files: list[str], why: str) -> Any:
    """The run (engine/state.Run) started from a bounded sample, holding its evaluated rows; loop.train trains it."""
    from nntrain.engine.state import start

    bag = check_streamable(cfg)
    source = open_source(files, cfg.data.path)
    source.files = [os.path.abspath(f) for f in source.files]  # eval and a resume read them from any folder
    d = cfg.data
    split = hash_split(
        source.rows, d.split_seed if d.split_seed is not None else cfg.seed, d.test_size, d.val_size, d.eval_rows, d.id
    )
    target = d.target or source.columns[-1]
    if d.id and d.id not in source.columns:
        raise UserError(f"data.id={d.id}: no such column in the Parquet files")
    share = shared(cfg)
    frame, counts, gaps = survey(source, split, target, d.sample_rows, cfg.seed, share)
    sampled, counts = _fitted_on_sample(cfg, source, frame, counts, gaps)
    sizes = dict(zip(("train", "val", "test"), (int(n) for n in counts.sum(axis=0))))
    key = f"data.id={d.id}" if d.id else "file and row number"
    sampled.prep.update(
        source=str(cfg.data.path),
        sha256=source.sha256,
        files=[],
        split=f"by a hash of each row's {key}",
        notes=sampled.notes,  # summary.json's: the sample's, with those below put first
        stream={
            "path": str(cfg.data.path),
            "files": source.files,
            "where": located(cfg.data.path, config_dir),  # listed again to find a file added since
            "stamps": [stamp(f) for f in source.files],  # which file changed, where a resume finds one has
            "split": split.plain(),
            "rows": sizes,
            "counts": counts.tolist(),
        },
    )
    sampled.notes[:0] = [
        *([why] if why else []),
        *([bag] if bag else []),
        f"streamed: {source.describe()}; preprocessing fitted on a seeded sample of {len(frame):,} rows",
        f"split by a hash of each row's {key}: train {sizes['train']:,}, val {sizes['val']:,}, test "
        f"{sizes['test']:,}; held in memory and scored: up to {d.eval_rows:,} validation and {d.eval_rows:,} test rows",
    ]
    fix_auto(cfg, sizes["train"])  # epochs, batch size and rate for the rows that stream, not the sample's
    lanes_of(cfg, int(os.environ.get("WORLD_SIZE", "1")))  # refused before a run folder exists
    held = evaluation_data(source, split, sampled.prep, sampled.task_reason, sampled.notes, share)  # before a folder
    run = start(cfg, config_dir, data=sampled)
    run.data = held
    if run.writes:
        plain = {"run_id": run.run_id, "stream": split.plain(), "files": source.files}
        write_json(run.run_dir / "split.json", plain)
    return run


def _fitted_on_sample(cfg: Config, source: Any, frame: Any, counts: Any, gaps: list) -> tuple[Any, Any]:
    """The preprocessing fitted on the survey's sample and checked against the config, before a run folder
    exists; the counts of the rows encoding keeps. Under data.missing_target: error a row without a target is
    named by its file and row (the survey's gaps), not by its place in the sample."""
    d = cfg.data
    sampled = prepare(table_of(frame, source), d.model_copy(update={"missing_target": "drop"}), cfg.seed)
    sampled.prep["missing_target"] = d.missing_target
    check_task(cfg, sampled)  # as an in-memory run's
    gap = first_gap(gaps, sampled.prep) if d.missing_target == "error" else None
    if gap:
        raise UserError(
            f"column {sampled.prep['target']!r} (the target): missing value at {gap}; drop or fill those rows, or "
            f"set data.missing_target: drop"
        )
    return sampled, labelled(counts, sampled.prep)


def shared(cfg: Config) -> Share:
    """Under torchrun, this rank's part of the passes over the files (the group made now: start() finds it made);
    in one process, every row group."""
    from nntrain.engine.distributed import Group, launched

    return Share.of(Group(cfg.device) if launched() else None)
