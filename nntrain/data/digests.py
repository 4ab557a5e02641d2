"""A table file's sha256, computed on a daemon thread while the caller goes on (kept in a run, to notice a
changed file)."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import Future
from pathlib import Path

_DIGESTS: dict[tuple, Future] = {}


def sha256_soon(p: Path) -> Future:
    """The file's sha256 (kept in a run to notice a changed file), computed on a daemon thread: hashlib
    releases the GIL, so it runs beside whatever the caller does next (pandas' parse, or the torch import
    when `fit` starts it early through hash_ahead). Kept per path, size and mtime, so sweep trials and eval
    hash a file once per process."""
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        future = _DIGESTS[key] = Future()

        def work() -> None:
            try:
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                future.set_result(h.hexdigest())
            except BaseException as e:  # handed to whoever waits for the result
                future.set_exception(e)

        threading.Thread(target=work, daemon=True).start()
    return _DIGESTS[key]
