"""Parquet datasets larger than memory, read a bounded chunk at a time (pyarrow): the files a data.path names
(a folder, a glob or one file), whether to stream them, a bounded seeded sample to fit the preprocessing on,
the split by a hash of each row's key, and the encoded chunks of one split in a per-epoch seeded order
through a shuffle buffer. Nothing here holds more than a chunk, the buffers, the sample and the evaluated rows
at once.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nntrain.data.columns import without_outer_spaces
from nntrain.data.readers import PARQUET, parquet_parts, parts_digest, same_columns
from nntrain.data.tables import Table, resolve_path
from nntrain.data.text_numbers import MARKS
from nntrain.errors import UserError

CHUNK_ROWS = 32_768  # rows read at a time from a row group (a forward of 64k rows can take 0.5 GB)
PARTS = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class Fragment:
    """One row group of one file: where its rows are, and how many."""

    file: int
    group: int
    rows: int


@dataclass
class Source:
    files: list[str]
    fragments: list[Fragment]
    columns: list[str]

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.fragments)

    @property
    def sha256(self) -> str:
        return parts_digest(self.files)

    def describe(self) -> str:
        return f"{self.rows:,} rows in {len(self.files)} Parquet file(s), {len(self.fragments)} row group(s)"


def parquet_files(path: str, base: Path | None = None) -> list[str] | None:
    """The Parquet files data.path names: a folder (every .parquet under it), a glob, or one file; None where it
    names something else (a CSV: read whole)."""
    p = resolve_path(path, base)
    parts = parquet_parts(path, p)
    if parts:
        return parts
    return [str(p)] if p.suffix in PARQUET and p.is_file() else None


def located(path: str, base: Path | None = None) -> str:
    """data.path as the absolute folder, glob or file parquet_files lists: kept in a streamed run, so that eval and
    a resume list it again, from any working directory, to find a file added since the run started."""
    if any(c in path for c in "*?["):
        return os.path.abspath(os.path.expanduser(path))
    return os.path.abspath(resolve_path(path, base))


def open_source(files: list[str], shown: str, key: str = "data.path") -> Source:
    """The files' row groups from their footers, and the columns, which every file must share. Messages name
    `key`=`shown` (predict's input: key "")."""
    import pyarrow.parquet as pq

    shown = f"{key}={shown}" if key else shown
    fragments, columns = [], None
    for i, f in enumerate(files):
        try:
            meta = pq.ParquetFile(f).metadata
        except (OSError, ValueError) as e:
            raise UserError(f"{shown}: {f} is not a readable Parquet file ({e})") from None
        names = [meta.schema.column(k).name for k in range(meta.num_columns)]
        if columns is None:
            columns = names
        same_columns(shown, files[0], columns, f, names)
        fragments += [Fragment(i, g, meta.row_group(g).num_rows) for g in range(meta.num_row_groups)]
    fragments = [f for f in fragments if f.rows]
    if not fragments:
        raise UserError(f"{shown}: the Parquet files hold no rows")
    return Source(list(files), fragments, list(columns or []))


def chunks(source: Source, fragment: Fragment, columns: list[str] | None = None) -> Iterator[tuple[int, pd.DataFrame]]:
    """(the row number in its file of the chunk's first row, the chunk) of one row group, CHUNK_ROWS at a time."""
    import pyarrow.parquet as pq

    first = sum(f.rows for f in source.fragments if f.file == fragment.file and f.group < fragment.group)
    reader = pq.ParquetFile(source.files[fragment.file])
    for batch in reader.iter_batches(
        batch_size=CHUNK_ROWS, row_groups=[fragment.group], columns=columns, use_threads=False
    ):
        frame = batch.to_pandas()
        yield first, frame
        first += len(frame)


@dataclass(frozen=True)
class Share:
    """Which row groups this process reads (under torchrun, every world-th from its rank) and how the ranks'
    pieces are joined (gather: one list of every rank's; None in one process). Pieces are keyed by where they
    come from, so the joined result is the same whatever the ranks."""

    rank: int = 0
    world: int = 1
    gather: Any = None

    @staticmethod
    def of(group: Any) -> Share:
        """A data-parallel group's (engine/distributed.Group) share; every row group where there is none."""
        return Share(group.rank, group.world, group.gather) if group is not None else Share()

    def mine(self, n: int) -> range:
        return range(self.rank, n, self.world)

    def joined(self, pieces: list) -> list:
        every = pieces if self.gather is None else [p for rank in self.gather(pieces) for p in rank]
        return [item for _, item in sorted(every, key=lambda kv: kv[0])]


def survey(source: Source, split: HashSplit, target: str, rows: int, seed: int, share: Share = Share()):
    """One pass over this process's row groups, a chunk at a time: about `rows` rows of the table drawn at
    random (each with the same chance, seeded per row group, so the draw is the same however the row groups are
    shared out; every row where the table has no more), what the preprocessing is fitted on; and per row group,
    the rows of each part with a target, and of each missing-value mark (fragments x 3 x (1 + MARKS): labelled()
    makes them the rows that fix an epoch's steps); and the first rows without a target (_targets' gaps)."""
    chance = min(1.0, rows / source.rows)
    taken, gaps, counts = [], [], np.zeros((len(source.fragments), 3, 1 + len(MARKS)), dtype=np.int64)
    labels: set | None = set()  # the target's values in the sample so far; None: too many to be classes
    for i in share.mine(len(source.fragments)):
        fragment, rng = source.fragments[i], np.random.default_rng([seed, 7, i])
        for c, (first, frame) in enumerate(chunks(source, fragment)):
            parts = split.part_of(uniform(row_keys(frame, split.id, fragment, first), split.seed))
            counted, gap = _targets(frame, target, parts, source.files[fragment.file], first)
            counts[i] += counted
            gaps.append(((i, c), gap))
            drawn = rng.random(len(frame)) < chance
            labels = _every_label(frame, target, drawn, labels) if labels is not None and target in frame else None
            taken.append(((i, c), frame if chance >= 1 else frame.loc[drawn]))
    if share.gather is not None:
        counts = sum(share.gather(counts))
    gaps = [gap for chunk in share.joined(gaps) for gap in chunk]
    return pd.concat(share.joined(taken), ignore_index=True), counts, gaps


def _targets(frame: pd.DataFrame, target: str, parts: np.ndarray, file: str, first: int) -> tuple[np.ndarray, list]:
    """A chunk's rows per part (3 x (1 + MARKS)) with a target (a blank cell has none) and of each mark; and
    (file, row from 1, value) of its first without one and first of each mark, for first_gap to name."""
    out = np.zeros((3, 1 + len(MARKS)), dtype=np.int64)
    if target not in frame.columns:
        out[:, 0] = np.bincount(parts, minlength=3)
        return out, []
    y = without_outer_spaces(frame[target])
    out[:, 0] = np.bincount(parts[y.notna().to_numpy()], minlength=3)
    found = [(np.nan, y.isna().to_numpy())]
    if y.dtype == object or pd.api.types.is_string_dtype(y.dtype):
        found += [(mark, (y == mark).to_numpy()) for mark in MARKS]
        for k, (_, rows) in enumerate(found[1:], start=1):
            out[:, k] = np.bincount(parts[rows], minlength=3)
    return out, [(file, first + int(np.argmax(rows)) + 1, value) for value, rows in found if rows.any()]


def first_gap(gaps: list, prep: dict) -> str | None:
    """data.missing_target: error's file and row of a blank target or a mark none of the classes is; else None."""
    classes = [str(c) for c in prep.get("classes") or []]
    missing = [(f, row) for f, row, value in gaps if not isinstance(value, str) or value not in classes]
    return f"{missing[0][0]}, row {missing[0][1]:,}" if missing else None


def labelled(counts: np.ndarray, prep: dict) -> np.ndarray:
    """survey's counts (fragments x 3 x (1 + MARKS)) as the rows of each part that encoding keeps (fragments x 3):
    a mark none of the run's classes is (every mark, in a regression) is no target, as encode_table reads it."""
    if prep.get("missing_target") != "drop":
        return counts[:, :, 0]
    classes = [str(c) for c in prep.get("classes") or []]
    dropped = [k for k, mark in enumerate(MARKS, start=1) if mark not in classes]
    return counts[:, :, 0] - counts[:, :, dropped].sum(axis=2)


# A target with more distinct values than this in the sample is a regression's (or has too many classes to learn
# a rare one from a row): no rows are added for its values
MOST_LABELS = 1_000


def _every_label(frame: pd.DataFrame, target: str, drawn: np.ndarray, labels: set) -> set | None:
    """Adds to the draw (in place) the chunk's first row of each target value the sample does not hold yet, so
    that a class rarer than the sample's share is a class the run knows (a label missing from the sample would
    stop the run as "never seen in training"); the values now in the sample, or None past MOST_LABELS."""
    y = frame[target]
    labels = labels | set(y[drawn].dropna().unique().tolist())
    new = y.notna().to_numpy() & ~y.isin(labels).to_numpy()
    if new.any():
        firsts = y[new].drop_duplicates().index
        if len(labels) + len(firsts) > MOST_LABELS:
            return None
        drawn[frame.index.get_indexer(firsts)] = True
        labels |= set(y[firsts].tolist())
    return labels if len(labels) <= MOST_LABELS else None


def _mixed(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: uint64 -> well-mixed uint64."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def uniform(keys: np.ndarray, seed: int) -> np.ndarray:
    """Each key's place in [0, 1): the same on every rank, every epoch and every resume."""
    with np.errstate(over="ignore"):
        mixed = _mixed(keys.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15))
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def row_keys(frame: pd.DataFrame, id_column: str | None, fragment: Fragment, first: int) -> np.ndarray:
    """A row's key: its data.id value (hashed), else its file and row number."""
    if id_column:
        return pd.util.hash_array(frame[id_column].astype(str).to_numpy(dtype=object), categorize=False)
    return (np.uint64(fragment.file) << np.uint64(40)) + np.arange(first, first + len(frame), dtype=np.uint64)


@dataclass(frozen=True)
class HashSplit:
    """Test: u < test; validation: test <= u < test + val; training: the rest. Evaluation reads at most a
    bounded share of each (u below test_eval, or between test and val_eval): a 50M-row table's validation
    split need not be scored whole every epoch."""

    seed: int
    test: float
    val: float
    test_eval: float
    val_eval: float
    id: str | None = None

    def part_of(self, u: np.ndarray) -> np.ndarray:
        return np.where(u < self.test, 2, np.where(u < self.test + self.val, 1, 0)).astype(np.int8)

    def evaluated(self, u: np.ndarray, part: str) -> np.ndarray:
        if part == "test":
            return u < self.test_eval
        return (u >= self.test) & (u < self.test + self.val_eval)

    def plain(self) -> dict:
        return {k: getattr(self, k) for k in ("seed", "test", "val", "test_eval", "val_eval", "id")}


def hash_split(rows: int, seed: int, test: float, val: float, eval_rows: int, id_column: str | None) -> HashSplit:
    """test and val: the shares data.test_size and data.val_size give; each evaluated on at most eval_rows."""
    cap = lambda share: share if share * rows <= eval_rows else eval_rows / rows  # noqa: E731
    return HashSplit(seed, test, val, cap(test), cap(val), id_column)


def part_rows(frame: pd.DataFrame, split: HashSplit, fragment: Fragment, first: int, part: str, evaluate: bool):
    """The chunk's rows of one part (only its evaluated share where `evaluate`)."""
    u = uniform(row_keys(frame, split.id, fragment, first), split.seed)
    keep = split.evaluated(u, part) if evaluate else split.part_of(u) == PARTS[part]
    return frame.loc[keep].reset_index(drop=True)


def table_of(frame: pd.DataFrame, source: Source) -> Table:
    return Table(frame, ",".join(source.files[:3]) + (" ..." if len(source.files) > 3 else ""), "", 0)


def _encoded(frame: pd.DataFrame, source: Source, prep: dict, at: tuple[int, int]):
    """Some rows of chunk at = (row group, chunk) encoded; a bad value is named by its file and row there."""
    from nntrain.data.chunk_rows import encoded_chunk

    def whole() -> tuple[int, Table, str]:  # the chunk read again: a rare path
        fragment = source.fragments[at[0]]
        first, rows = next(itertools.islice(chunks(source, fragment), at[1], None))
        return first, table_of(rows, source), source.files[fragment.file]

    return encoded_chunk(table_of(frame, source), prep, whole)


def evaluated_frames(source: Source, split: HashSplit, part: str, share: Share = Share()) -> Iterator[tuple]:
    """The evaluated share of one part ("val" or "test") of this process's row groups, as raw rows, a chunk at a
    time: ((row group, chunk), rows)."""
    for i in share.mine(len(source.fragments)):
        fragment = source.fragments[i]
        for c, (first, frame) in enumerate(chunks(source, fragment)):
            rows = part_rows(frame, split, fragment, first, part, evaluate=True)
            if len(rows):
                yield (i, c), rows


def evaluated_rows(source: Source, prep: dict, split: HashSplit, part: str, share: Share = Share()):
    """The evaluated share of one part, encoded, every rank's joined in the files' order: (X, y, weights,
    loss_weights), bounded by the split's eval share."""
    mine = [(key, _encoded(rows, source, prep, key)) for key, rows in evaluated_frames(source, split, part, share)]
    got = share.joined([(key, (e.X, e.y, e.weights, e.loss_weights)) for key, e in mine])
    if not got:
        raise UserError(f"data.path: the streamed {part} split is empty; use more rows or a larger data.{part}_size")
    return tuple(None if got[0][k] is None else np.concatenate([g[k] for g in got]) for k in range(4))


def lane_fragments(n: int, seed: int, epoch: int, lane: int, lanes: int) -> np.ndarray:
    """The row groups one lane reads in this epoch, in order: a seeded permutation, dealt out to the lanes."""
    return np.random.default_rng([seed, epoch, 11]).permutation(n)[lane::lanes]


def lane_rows(counts: np.ndarray, seed: int, epoch: int, lanes: int) -> list[int]:
    """The training rows each lane holds in this epoch (counts: survey's, per row group and part)."""
    return [int(counts[lane_fragments(len(counts), seed, epoch, k, lanes), 0].sum()) for k in range(lanes)]


def epoch_steps(counts: np.ndarray, seed: int, epoch: int, lanes: int, batch: int) -> list[list[int]]:
    """Per step, each lane's rows in it: every lane gives batch / lanes rows a step (fewer in its last) until the
    shortest lane ends, so that every rank (a rank trains whole lanes) takes the same steps."""
    share = batch // lanes
    rows = lane_rows(counts, seed, epoch, lanes)
    steps = min(-(-r // share) for r in rows)
    return [[min(share, r - s * share) for r in rows] for s in range(steps)]


def _lane(
    source: Source, prep: dict, split: HashSplit, epoch: int, lane: int, lanes: int, batch: int, buffer_rows: int
):
    """One lane's batches: its row groups in order, each chunk's training rows encoded into a buffer; each time it
    holds buffer_rows rows it is shuffled (seeded by epoch and lane) and its whole batches go out, the rest
    staying for the next fill."""
    rng = np.random.default_rng([split.seed, epoch, lane, 13])
    held: list = []

    def drained(last: bool) -> Iterator[tuple]:
        X = np.concatenate([e[0] for e in held])
        y = np.concatenate([e[1] for e in held])
        lw = None if held[0][2] is None else np.concatenate([e[2] for e in held])
        order = rng.permutation(len(y))
        whole = len(y) if last else len(y) - len(y) % batch
        for s in range(0, whole, batch):
            idx = order[s : s + batch]
            yield X[idx], y[idx], None if lw is None else lw[idx]
        rest = order[whole:]
        held.clear()
        if len(rest):
            held.append((X[rest], y[rest], None if lw is None else lw[rest]))

    have = 0
    for i in lane_fragments(len(source.fragments), split.seed, epoch, lane, lanes):
        fragment = source.fragments[i]
        for c, (first, frame) in enumerate(chunks(source, fragment)):
            rows = part_rows(frame, split, fragment, first, "train", evaluate=False)
            if not len(rows):
                continue
            e = _encoded(rows, source, prep, (i, c))
            held.append((e.X, e.y, e.loss_weights))
            have += len(e.y)
            if have >= buffer_rows:
                yield from drained(last=False)
                have = sum(len(h[1]) for h in held)
    if held:
        yield from drained(last=True)


def train_batches(
    source: Source, prep: dict, split: HashSplit, epoch: int, batch: int, buffer_rows: int, lanes: int, mine: list[int]
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """An epoch's training batches (X, y, loss weights) of the lanes `mine` (all of them in one process; a rank's
    share under torchrun): at each step every lane's next batch / lanes rows, joined. A global batch is the same
    rows however many ranks share the lanes, and the same on every resume."""
    share, each = batch // lanes, max(1, buffer_rows // lanes)
    streams = [_lane(source, prep, split, epoch, k, lanes, share, each) for k in mine]
    for parts in zip(*streams):
        lw = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
        yield np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), lw


def evaluation_data(
    source: Source, split: HashSplit, prep: dict, reason: str, notes: list[str] | None = None, share: Share = Share()
):
    """What a streamed run holds in memory (data/prepare.Prepared): the evaluated rows of its validation and test
    splits, encoded, as `val` and `test`; no training rows (they stream). Each rank reads its own row groups."""
    from nntrain.data.prepare import Prepared

    got = [evaluated_rows(source, prep, split, "val", share)]
    if split.test > 0:
        got.append(evaluated_rows(source, prep, split, "test", share))
    n_val = len(got[0][1])
    joined = [None if got[0][k] is None else np.concatenate([g[k] for g in got]) for k in range(4)]
    X, y, w, lw = joined
    test = np.arange(n_val, len(y), dtype=np.int64)
    empty = np.empty(0, dtype=np.int64)
    return Prepared(X, y, empty, np.arange(n_val, dtype=np.int64), test, prep, reason, notes or [], lw, w)
