"""How nntrain tells a user what went wrong: Stop and its kinds, and problems as records.

A Problem is data (the key, the value as written, what is wrong, where the YAML sets it): checks collect
them, loading adds their lines, a sweep renames their keys, and they are formatted once, when printed. No
code reads a key, a line or a state back out of a message.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class Stop(Exception):
    """An end the CLI reports in one message on stderr, with its own exit code and no traceback."""

    exit_code = 1
    prefix = "Error"  # as click and typer begin theirs (a wrong option): one prefix for every error
    status = "error"  # a --json command's record of the stop: summary.json's word where a run has one

    def record(self) -> dict[str, Any]:
        """What a --json command prints on stdout instead of its results: the status, the exit code, the
        message, and where there are any, each problem's key and the run folder to resume."""
        out: dict[str, Any] = {"status": self.status, "exit_code": self.exit_code, "message": str(self)}
        problems = getattr(self, "problems", None)
        if problems:
            out["problems"] = [{"key": p.key, "message": p.message, "value": p.value, "line": p.line} for p in problems]
        run_dir = getattr(self, "run_dir", None)
        if run_dir is not None:
            out["run_dir"] = str(run_dir)
        return out


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config, its data or an argument; str() is the line a user reads."""

    key: str  # the dotted config key it is about ("" when it is about no one key)
    message: str  # what is wrong, and what to do
    value: str | None = None  # the value as the user wrote it: shown as key=value
    line: int | None = None  # the YAML line that sets the key
    from_command_line: bool = False  # an override set the key
    leans_on: tuple[str, ...] = ()  # other keys whose values the check read (epochs, for milestones)
    file: str | None = None  # the base config that sets the key, when not the file given (base: inheritance)

    def __str__(self) -> str:
        head = self.key if self.value is None else f"{self.key}={self.value}"
        text = f"{head}: {self.message}" if head else self.message
        if self.from_command_line:
            return f"{text} (from the command line)"
        where = f"{self.file} line {self.line}" if self.file else f"line {self.line}"
        return f"{text} ({where})" if self.line else text

    def reads(self, key: str) -> bool:
        """Whether the problem rests on `key` (or a key inside it)."""
        return any(k == key or k.startswith(key + ".") for k in (self.key, *self.leans_on))


def problem(item: str | Problem) -> Problem:
    """A Problem as it is, or a message that names no key as one."""
    return item if isinstance(item, Problem) else Problem("", str(item))


class UserError(Stop):
    """A bad config, bad data or bad argument: one Problem or several."""

    exit_code = 2

    def __init__(self, problems: str | Problem | Iterable[str | Problem], header: str | None = None):
        items = [problems] if isinstance(problems, (str, Problem)) else list(problems)
        self.problems = [problem(p) for p in items]
        self._header = header
        super().__init__(str(self))

    @property
    def header(self) -> str | None:
        return self._header

    def __str__(self) -> str:
        if self.header is None and len(self.problems) == 1:
            return str(self.problems[0])
        head = self.header or f"{len(self.problems)} problems:"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


class ConfigError(UserError):
    """The problems of one config (and, once it is read, of its data), with the config as far as it is valid:
    `partial` holds every invalid key at its default, so checks against the data can still run on it."""

    def __init__(self, problems: Iterable[Problem], source: str, partial: Any = None):
        self.source, self.partial, self.with_data = source, partial, False
        super().__init__(ordered(problems))

    @property
    def header(self) -> str:
        parts = "config and data" if self.with_data else "config"
        return f"{self.source}: {len(self.problems)} problem(s) in the {parts}:"

    def add_data_problems(self, more: Iterable[Problem]) -> None:
        self.problems += [p for p in more if p not in self.problems]
        self.with_data = True


def ordered(problems: Iterable[Problem]) -> list[Problem]:
    """Each problem once (as the user reads it), by the YAML line that sets its key (those without a line last)."""
    once: dict[str, Problem] = {}
    for p in problems:
        once.setdefault(str(p), p)
    return sorted(once.values(), key=lambda p: p.line or 10**9)


def shortened(value: Any, limit: int = 40) -> str:
    """A value read from a file the user named, for a message: at most `limit` printable characters of it (a
    data.path at the wrong file must not print that file)."""
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return text[:limit] + ("..." if len(text) > limit else "")


def quoted(value: Any, limit: int = 40) -> str:
    """shortened(value), in quotes when it is text."""
    return repr(shortened(value, limit)) if isinstance(value, str) else shortened(value, limit)


def listed(values: Iterable[Any], most: int = 30, limit: int = 40, quote: bool = False) -> str:
    """Values read from a user's file, for a message: each shortened (or quoted), at most `most` of them."""
    values = list(values)
    shown = ", ".join((quoted if quote else shortened)(v, limit) for v in values[:most])
    return shown + (f" and {len(values) - most:,} more" if len(values) > most else "")


def in_one_line(e: BaseException, limit: int = 200) -> str:
    """An exception's whole message on one line, cut to `limit` (torch's load_state_dict puts its facts on the
    lines after the first)."""
    return " ".join(str(e).split())[:limit] or type(e).__name__


def first_line(e: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (its type's name when it has none), for a one-line error."""
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:limit]


def interrupt_in(e: BaseException) -> BaseException | None:
    """The Ctrl-C (KeyboardInterrupt, or a Stop a signal handler raised) inside an error a library made of it:
    torch's exporter wraps one that lands in its imports in its own error. None when there is none."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, (KeyboardInterrupt, Stop)):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


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
