"""A run's training files found again where the run's folder moved with them (a project folder renamed, copied
to another machine or another user's home): checkpoints name them by absolute path."""

from __future__ import annotations

from pathlib import Path

from nntrain.data.digests import sha256_soon

ANCESTORS = 6  # how far above the run folder a moved project's root is looked for


def found_again(ckpt: dict, run_dir: Path) -> dict:
    """The checkpoint, each training file of its prep (data.path, data.val_path, data.test_path) that is not where
    it was replaced by the file with the same sha256 at the same place below one of the run folder's ancestors (a
    folder of Parquet files: the same folder; its files' sizes and times are checked where it is read); a source
    found nowhere is kept, to be named as gone."""
    prep = ckpt.get("prep")
    if not isinstance(prep, dict) or "source" not in prep:
        return ckpt
    source = _moved(prep["source"], prep["sha256"], run_dir)
    files = [{**f, "source": _moved(f["source"], f["sha256"], run_dir)} for f in prep.get("files", [])]
    if source == prep["source"] and files == prep.get("files", []):
        return ckpt  # nothing moved (every load of a run that stayed where it was)
    return {**ckpt, "prep": {**prep, "source": source, "files": files}}


def _moved(source: str, sha256: str, run_dir: Path) -> str:
    path = Path(source)
    if source.startswith("sklearn:") or not path.is_absolute() or path.exists() or any(c in source for c in "*?["):
        return source
    tail = path.parts[1:]
    for base in list(run_dir.resolve().parents)[:ANCESTORS]:
        for k in range(1, len(tail) + 1):  # data/house.csv below the project's new root, before any longer tail
            candidate = base.joinpath(*tail[-k:])
            if candidate.is_dir() or (candidate.is_file() and sha256_soon(candidate).result() == sha256):
                return str(candidate)
    return source
