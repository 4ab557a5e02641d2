"""metrics.csv: one row per epoch, appended as the run goes, cut back to a checkpoint's epoch on resume;
written in place and never through a link."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from nntrain.errors import UserError, quoted


def _in_place(path: Path) -> Path:
    """A run file written in place (metrics.csv): never through a link, which would write the file it names."""
    if path.is_symlink():
        raise UserError(
            f"{path}: is a symbolic link (to {os.readlink(path)}); nntrain writes it in place and never "
            f"through a link: put the file itself there, then resume"
        )
    return path


def truncate_metrics(path: Path, epoch: int) -> None:
    """Drop rows past the checkpoint's epoch: their checkpoint was never written. Cut in place, not rewritten."""
    if not _in_place(path).is_file():
        return
    with open(path, "rb+") as f:
        header = f.readline()
        if not header:
            return
        keep = f.tell()
        for number, line in enumerate(iter(f.readline, b""), start=2):
            first = line.split(b",", 1)[0].strip()
            if not line.strip():
                break
            if not first.isdigit():
                shown = quoted(first.decode(errors="replace"), 20)
                raise UserError(
                    f"{path}: line {number} does not start with an epoch number ({shown}), so "
                    f"it is not a row nntrain wrote; remove or fix that line, then resume"
                )
            if int(first) > epoch:
                break
            keep = f.tell()
        f.truncate(keep)


class MetricsLog:
    """metrics.csv, one row per epoch; the header is fixed by the first row, or by the file when resuming."""

    def __init__(self, path: Path):
        self.path = _in_place(path)
        self.fields: list[str] | None = None
        if path.is_file() and path.stat().st_size:
            with open(path, newline="") as f:
                self.fields = next(csv.reader(f))

    def append(self, row: dict[str, Any]) -> None:
        """One row (and the header first), written in one go; a failed write leaves the file as it was."""
        new = self.fields is None
        fields = list(row) if new else self.fields
        text = io.StringIO(newline="")
        # extrasaction: a resume that turns train.diagnostics on keeps the header the run started with
        writer = csv.DictWriter(text, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: _fmt(v) for k, v in row.items()})
        size = self.path.stat().st_size if self.path.exists() else None
        try:
            with open(self.path, "ab") as f:
                f.write(text.getvalue().encode())
        except OSError as e:
            if size is None:
                self.path.unlink(missing_ok=True)  # no file rather than an empty one
            else:
                os.truncate(self.path, size)
            kept = "its earlier rows are intact" if size else "no row of it was kept"
            raise UserError(f"cannot write {self.path}: {e.strerror}; {kept}") from None
        self.fields = fields


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v
