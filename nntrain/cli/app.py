"""What every command shares: the typer app, the one error guard (a Stop's message and exit code, never a
traceback), stdout that may close under us, JSON and table output, and main()."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: rich's panels cost a tenth of a second of imports per --help
    help="Train neural networks on tabular data from a YAML config.",
)


def console(stderr: bool, width: int | None = None):
    """width: for tables, when the output is not a terminal (rich would cut them to 80 columns)."""
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if width and not console.is_terminal:
        console.width = width
    if not stderr:
        console.on_broken_pipe = _stdout_closed  # rich's own would exit 1 at once, a run unsaved
    return console


def _guard(fn: Callable[[], None], as_json: bool = False) -> None:
    """A user's mistake, a divergence or a signal: one message on stderr and its exit code; never a traceback.
    With --json, stdout gets the stop's record too (a script that reads it finds why, not nothing)."""
    from nntrain.engine.distributed import rank
    from nntrain.errors import Stop

    try:
        fn()
    except Stop as e:
        if rank() == 0:  # data-parallel: rank 0 speaks for the group
            console(True).print(f"{e.prefix}: {e}", markup=False)
            if as_json:
                print_json(e.record())
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:  # before training started: nothing to save
        console(True).print("interrupted", markup=False)
        if as_json:
            print_json({"status": "interrupted", "exit_code": 130, "message": "interrupted"})
        raise typer.Exit(130) from None
    except MemoryError as e:  # an allocation the checks before it let through: said, not a traceback
        console(True).print(
            f"Error: out of memory: {e}; lower data.one_hot_max or drop columns (data.drop)", markup=False
        )
        raise typer.Exit(2) from None
    except BrokenPipeError:  # stdout's reader went away (`nntrain runs | head -1`): a normal end, said nowhere
        _discard_stdout()
        raise typer.Exit(128 + signal.SIGPIPE) from None


def _discard_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _stdout_closed() -> None:
    """rich's broken-pipe hook for stdout: whatever follows for stdout goes nowhere. A run in progress (`nntrain
    fit ... | head -1`) goes on to its next step, saves and stops as on SIGPIPE; any other command ends there,
    quietly, with SIGPIPE's exit code."""
    from nntrain.engine.stopping import SIGNALS

    _discard_stdout()
    if not SIGNALS.armed:
        raise typer.Exit(128 + signal.SIGPIPE)
    if SIGNALS.signum is None:
        SIGNALS.signum = signal.SIGPIPE


def guarded(command: Callable[..., None]) -> Callable[..., None]:
    """A command whose body runs under _guard; typer reads the command's own signature through functools.wraps."""

    @functools.wraps(command)
    def run(*args, **kwargs) -> None:
        _guard(lambda: command(*args, **kwargs), bool(kwargs.get("as_json")))

    return run


TABLE_WIDTH = 160


def argv_again(ctx: typer.Context, leave_out: str) -> list[str]:
    """The running command's own arguments, rebuilt from what typer parsed (less `leave_out`): what `fit --nproc`
    hands its workers. Built from the parameters' declarations, so a new option travels without a change here."""
    argv = [ctx.info_name]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name == leave_out or value is None or value is False:
            continue
        if param.param_type_name == "argument":
            argv += [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
        elif value is True:
            argv.append(param.opts[0])
        elif isinstance(value, (list, tuple)):  # a repeatable option: once per value
            argv += [a for v in value for a in (param.opts[0], str(v))]
        else:
            argv += [param.opts[0], str(value)]
    return argv


def print_json(obj: dict) -> None:
    from nntrain.plaindata import strict_json

    print(strict_json(obj))


STRICT_HELP = (
    "a level never seen in training, text in a date column, or a column missing in every row is an error, not an "
    "unknown level or a fill"
)


@contextlib.contextmanager
def data_warnings():
    """The API's DataWarnings (what the encoding read as unknown) as `warning:` lines on stderr, each once (a
    Parquet input predicted a chunk at a time gives its chunks' same warning once)."""
    import warnings

    from nntrain.api import DataWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        yield
    said = set()
    for w in caught:
        if not issubclass(w.category, DataWarning):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        elif str(w.message) not in said:
            said.add(str(w.message))
            console(True).print(f"warning: {w.message}", markup=False)


# Set by main(): the command owns the process and exits after it. Then a signal that arrives once training
# has finished is ignored rather than killing the exit; a caller that runs `app` in its own process (tests
# through CliRunner) keeps its handlers.
PROCESS = {"exiting": False}


def main() -> None:
    import warnings

    PROCESS["exiting"] = True
    # numpy's floating-point warnings (an inf or NaN met in a sum) name numpy's own files: the checks that
    # follow name the column and row instead
    warnings.filterwarnings("ignore", r"(invalid value|overflow|divide by zero) encountered", RuntimeWarning)
    from nntrain.engine.distributed import launched

    if not launched():
        app()
        return
    # A data-parallel worker has written its files and destroyed its process group by now, yet interpreter
    # finalization can still abort in gloo's threads now and then ("terminate called without an active
    # exception", exit -6; pytorch PR #179291 describes it): the worker leaves without finalization.
    try:
        app()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def config_source(
    config: str | None, overrides: list[str] | None, target: str | None
) -> tuple[str | dict | None, list[str]]:
    """What a command's CONFIG names (fit, cv, lr-find): a YAML config file; a table file (the recipe trains on
    it, the run named after the file); or, where it is KEY=VALUE and no such file, the first override of a
    config with no file."""
    from nntrain.data.table_source import names_a_table, table_stem
    from nntrain.errors import UserError
    from nntrain.runs.folders import is_run_folder

    if target is not None and not target.strip():
        raise UserError("--target is empty: name the column to predict")
    _said_once(None, overrides or [], target)
    extra = list(overrides or []) + ([f"data.target={target}"] if target else [])
    if config is None:
        return ({}, extra) if target else (None, extra)
    if "=" in config and not Path(config).exists():
        extra = [config, *extra]
        paths = [o.partition("=")[2] for o in extra if o.startswith("data.path=")]
        return ({"name": table_stem(paths[-1])} if paths else {}), extra
    if is_run_folder(Path(config)):
        raise UserError(
            f"{config} is a run folder: nntrain fit --resume {config} trains it on, "
            f"nntrain fit {Path(config) / 'config.yaml'} trains it again"
        )
    if names_a_table(config, target):
        _said_once(config, overrides or [], None)
        return {"name": table_stem(config), "data": {"path": config}}, extra
    return config, extra


def _said_once(config: str | None, overrides: list[str], target: str | None) -> None:
    """--target beside data.target=, or a TABLE beside data.path=: one of the two would be dropped unsaid
    (`config`: a table, or None)."""
    from nntrain.errors import UserError

    given = {k: v for k, _, v in (o.partition("=") for o in overrides) if k in ("data.target", "data.path")}
    if target and "data.target" in given and given["data.target"] != target:
        raise UserError(f"--target {target} and data.target={given['data.target']}: name the column once")
    if config and "data.path" in given:
        raise UserError(f"{config} and data.path={given['data.path']}: name the table once")


def loaded_config(config: str | dict) -> Path | dict:
    return config if isinstance(config, dict) else Path(config)


if __name__ == "__main__":
    main()
