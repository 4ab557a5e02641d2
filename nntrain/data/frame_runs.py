"""A DataFrame given to the API's fit, fit_seeds, cv or sweep as data=: read as a file's rows, stored once under
RUNS_DIR/.data (data/frames.py), named as data.path by the configs that train on it, and a refusal that names
that internal file said of "the DataFrame" instead."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from nntrain.data.frames import frame_file, given_frame, stored
from nntrain.errors import UserError


def frame_and_file(data: Any, runs_dir: str) -> tuple[pd.DataFrame | None, Path | None]:
    """(the frame as a file's rows read, the file it is stored in under RUNS_DIR/.data); (None, None) where
    `data` is no DataFrame (a file path, or None)."""
    if not isinstance(data, pd.DataFrame):
        return None, None
    frame = given_frame(data, "data")
    return frame, frame_file(frame, Path(runs_dir))


@contextlib.contextmanager
def stored_for(frame: pd.DataFrame | None, path: Path | None, cfgs: list[Any]) -> Iterator[None]:
    """The frame stored at `path` while the runs of `cfgs` start, each config naming it as data.path; nothing
    where there is no frame."""
    if path is None:
        yield
        return
    with stored(frame, path):
        for cfg in cfgs:
            cfg.data.path = str(path)
        yield


@contextlib.contextmanager
def the_dataframe(path: Path | None) -> Iterator[None]:
    """A refusal that names the file a DataFrame is stored in (RUNS_DIR/.data/SHA.parquet, an internal one)
    names "the DataFrame" instead."""
    try:
        yield
    except UserError as e:
        if path is None:
            raise
        names = (f"data.path={path}", f"data.path={path.resolve()}", str(path.resolve()), str(path))

        def said(text: str | None) -> str | None:
            for name in names:
                text = text.replace(name, "the DataFrame") if text else text
            return text

        e.problems = [dataclasses.replace(p, message=said(p.message), value=said(p.value)) for p in e.problems]
        e.args = (str(e),)
        raise
