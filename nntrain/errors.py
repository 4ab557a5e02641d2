"""The one exception type for a user's mistake: the CLI prints it without a traceback and exits 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class Stop(Exception):
    """An end the CLI reports in one message on stderr, with its own exit code and no traceback."""

    exit_code = 1
    prefix = "error"


class UserError(Stop):
    """A bad config, bad data or bad argument. `problems` holds one line per problem."""

    exit_code = 2

    def __init__(self, problems: str | list[str], header: str | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.header = header
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.header is None and len(self.problems) == 1:
            return self.problems[0]
        head = self.header or f"{len(self.problems)} problems:"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


def first_line(e: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (its type's name when it has none), for a one-line error."""
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:limit]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest choice, or '' when none is close."""
    choices = list(choices)
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not match:
        lower = {c.lower(): c for c in choices}
        match = [lower[m] for m in difflib.get_close_matches(word.lower(), list(lower), n=1, cutoff=0.6)]
    if not match:  # a shortened name: slope -> negative_slope
        match = [c for c in choices if len(word) >= 3 and (word.lower() in c.lower() or c.lower() in word.lower())][:1]
    return f" (did you mean '{match[0]}'?)" if match else ""
