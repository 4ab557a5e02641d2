"""`nntrain runs` / `nntrain compare`: read run folders without torch or pandas, so listing starts fast."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from nntrain.errors import UserError, first_line
from nntrain.metrics import headline, short_of_one
from nntrain.plaindata import check_depth, flatten
from nntrain.runs.folders import RESUMABLE

if TYPE_CHECKING:
    from rich.table import Table

# summary.json's status (folders.STATUSES) as the table shows it; a folder without summary.json is "stopped" (it
# has a last.pt to resume from) or "empty"
SHOWN = {
    "completed": "done",
    "early_stop": "early stop",
    "pruned": "pruned",
    "diverged": "diverged",
    "interrupted": "interrupted",
    "failed": "failed",
}

IGNORED_KEYS = ("name", "runs_dir")  # differ between every pair of runs, so they tell nothing


def _get(d: Any, *keys: str) -> Any:
    """d[k1][k2]... or None: a hand-edited config may lack a section or hold the wrong type."""
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _act(spec: Any) -> str | None:
    return _get(spec, "name") if isinstance(spec, dict) else spec


def _model(m: dict) -> str:
    """'mlp 64-128 relu +bn +drop0.2 x4' (x4: model.ensemble; 'x8 shared': model.shared_members): the shape a
    user picks runs by; per-layer settings override the model's."""
    layers = m.get("layers") if isinstance(m.get("layers"), list) else None
    layers = [lay if isinstance(lay, dict) else {} for lay in layers] if layers is not None else None
    sizes = [lay.get("size") for lay in layers] if layers is not None else m.get("hidden")
    sizes = [64, 128] if sizes is None else sizes  # the config's default when neither is given
    if not sizes:
        return "linear"
    own = layers or [{} for _ in sizes]
    acts = list(dict.fromkeys(str(_act(lay.get("activation")) or _act(m.get("activation"))) for lay in own))
    text = f"mlp {'-'.join(str(s) for s in sizes)} {'/'.join(acts)}"
    if any(lay.get("batch_norm") if lay.get("batch_norm") is not None else m.get("batch_norm") for lay in own):
        text += " +bn"
    drops = [lay.get("dropout") if lay.get("dropout") is not None else m.get("dropout") for lay in own]
    drop = max((d for d in drops if isinstance(d, (int, float))), default=0)
    k, shared = m.get("ensemble"), m.get("shared_members")
    text += (f" +drop{drop:g}" if drop > 0 else "") + (f" x{k}" if isinstance(k, int) and k > 1 else "")
    return text + (f" x{shared} shared" if isinstance(shared, int) and shared > 1 else "")


def _optimizer(o: Any) -> str:
    """'sgd lr=0.01 m=0.9': the settings that most often tell two runs apart."""
    if not isinstance(o, dict):
        return "-"
    text = str(o.get("name", "-")) + (f" lr={o['lr']:g}" if isinstance(o.get("lr"), (int, float)) else "")
    return text + (f" m={o['momentum']:g}" if isinstance(o.get("momentum"), (int, float)) and o["momentum"] else "")


def _safe_yaml(text: str) -> Any:
    check_depth(text)  # a hand-edited config.yaml nested 500 deep would overflow PyYAML's recursive composer
    return yaml.safe_load(text)


def _load(path: Path, loader: Any, folder: Path) -> Any:
    try:
        return loader(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, yaml.YAMLError) as e:  # JSON: ValueError
        mark = getattr(e, "problem_mark", None)  # YAML's own message spans lines; keep its problem and line
        why = f"{e.problem} (line {mark.line + 1})" if mark else first_line(e)  # type: ignore[attr-defined]
        raise UserError(f"run folder {folder}: cannot read {path.name}: {why}") from None


def _metrics_rows(path: Path) -> int:
    """Finished epochs of a run that never wrote summary.json: one metrics.csv line per epoch after the header."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
    return max(0, sum(1 for line in lines if line.strip()) - 1)


def read_run(path: Path) -> dict:
    """One listing row for a run folder; UserError naming the folder when its config or summary is unreadable."""
    path = Path(path)
    cfg_path = path / "config.yaml"
    if not cfg_path.is_file():
        raise UserError(f"run folder {path}: no config.yaml (not a run folder)")
    cfg = _load(cfg_path, _safe_yaml, path)
    if not isinstance(cfg, dict):
        raise UserError(f"run folder {path}: config.yaml is not a mapping")
    summary = _load(path / "summary.json", json.loads, path) if (path / "summary.json").is_file() else None
    if summary is not None and not isinstance(summary, dict):
        raise UserError(f"run folder {path}: summary.json is not an object")
    summary = summary or {}
    cfg, edited = _trained_config(cfg, summary)
    unfinished = _unfinished_bag(path) if not summary else None
    resumable = (path / "last.pt").is_file() or unfinished is not None
    status = SHOWN.get(_status(summary), "done") if summary else "stopped" if resumable else "empty"
    run = summary.get("epochs_run")
    run = run if isinstance(run, int) else _metrics_rows(path / "metrics.csv")
    task = summary.get("task") or "-"
    test = summary.get("test") if isinstance(summary.get("test"), dict) else {}
    key = headline(task)
    scheduler = _get(cfg, "scheduler", "name")
    return {
        "name": path.name,
        "path": path,
        "task": task,
        "model": _model(cfg["model"]) if isinstance(cfg.get("model"), dict) else "-",
        "optimizer": _optimizer(_bag_optimizer(path, summary) or cfg.get("optimizer")),
        "scheduler": None if scheduler in (None, "none") else str(scheduler),
        "epochs": _bag_epochs(summary)
        if summary.get("bag")
        else unfinished or f"{run}/{_get(cfg, 'train', 'epochs') or '-'}",
        "status": status,
        "monitor": summary.get("monitor") or _get(cfg, "train", "monitor"),
        "best_value": summary.get("best_value"),
        "test_metric": (key, test[key]) if key in test else None,
        "test": test,
        "started": datetime.fromtimestamp(cfg_path.stat().st_mtime),
        "config": cfg,
        "config_edited": edited,
        "error": None,
    }


def _unfinished_bag(path: Path) -> str | None:
    """A bag's row before its summary.json: 'bag of 5, not finished' (fit --resume finishes it); None: no bag."""
    try:
        members = json.loads((path / "bag.json").read_text())["members"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"bag of {len(members)}, not finished"


def _bag_optimizer(path: Path, summary: dict) -> dict | None:
    """A bag's optimizer as its members trained it (the bag's config.yaml says lr: auto), from its first member's
    summary.json; None for a run that is no bag, or whose member cannot be read."""
    from nntrain.runs.files import read_summary

    members = summary.get("members") if summary.get("bag") else None
    try:
        trained = read_summary(path / Path(str(members[0])).name).get("config") if members else None
    except (OSError, ValueError):
        return None
    return trained.get("optimizer") if isinstance(trained, dict) else None


def _bag_epochs(summary: dict) -> str:
    """A bag's row: its members and their best epochs ('bag of 5, best 12-31'), not one run's count."""
    best = [e for e in summary.get("best_epoch") or [] if isinstance(e, int)]
    return f"bag of {summary['bag']}" + (f", best {span(best)}" if best else "")


def span(epochs: list[int]) -> str:
    """Members' epochs as a reader wants them: '12-31', or '12' where they agree."""
    return f"{min(epochs)}-{max(epochs)}" if min(epochs) != max(epochs) else f"{epochs[0]}"


def _trained_config(on_disk: dict, summary: dict) -> tuple[dict, bool]:
    """The config the run was trained with, which summary.json records (eval and predict read the checkpoint's,
    never config.yaml), and whether config.yaml was edited since in a key that shapes the model (a resume may
    change train.* and device). A run without a summary has only config.yaml."""
    trained = summary.get("config")
    if not isinstance(trained, dict):
        return on_disk, False

    def model_keys(cfg: dict) -> dict:
        return {k: v for k, v in flatten(cfg).items() if not k.startswith((*RESUMABLE, "sweep"))}

    if isinstance(trained.get("data"), dict):  # config.yaml names the tables as found, summary.json as given
        found = {k: v for k, v in _found_tables(summary).items() if _get(on_disk, "data", k) == v}
        trained = {**trained, "data": {**trained["data"], **found}}
    return trained, model_keys(on_disk) != model_keys(trained)


def _found_tables(summary: dict) -> dict[str, str]:
    """The absolute paths the run read its tables from (summary.json's data: source, files), by data key."""
    data = summary.get("data") if isinstance(summary.get("data"), dict) else {}
    found = {"path": data.get("source")}
    for f in data.get("files") or []:
        if isinstance(f, dict):
            found[f"{f.get('part')}_path"] = f.get("source")
    return {k: v for k, v in found.items() if isinstance(v, str)}


def _status(summary: dict) -> str:
    """summary.json's status; a summary written before there was one has a reason only when it stopped early."""
    return summary.get("status") or ("early_stop" if summary.get("stopped") else "completed")


def list_runs(root: Path) -> list[dict]:
    """Rows for root/RUN and root/STUDY/TRIAL folders (sweeps), newest first."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is a file, not a runs folder" if root.exists() else f"runs folder not found: {root}")
    found: list[tuple[Path, str]] = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (d / "config.yaml").is_file():
            found.append((d, d.name))
        else:
            found += [
                (t, f"{d.name}/{t.name}") for t in sorted(d.iterdir()) if t.is_dir() and (t / "config.yaml").is_file()
            ]
    rows = []
    for path, name in found:
        try:
            rows.append({**read_run(path), "name": name})
        except Exception as e:  # odd hand edits: anything one folder raises
            # one bad folder must not hide every other run: a 'broken' row says why
            rows.append(
                {
                    "name": name,
                    "path": path,
                    "task": "-",
                    "model": "-",
                    "optimizer": "-",
                    "scheduler": None,
                    "epochs": "-",
                    "status": "broken",
                    "monitor": None,
                    "best_value": None,
                    "test_metric": None,
                    "test": {},
                    "started": datetime.fromtimestamp((path / "config.yaml").stat().st_mtime),
                    "config": {},
                    "config_edited": False,
                    "error": str(e),
                }
            )
    return sorted(rows, key=lambda r: (-r["started"].timestamp(), r["name"]))


def _fmt(v: Any, digits: int = 4) -> str:
    if isinstance(v, float) and math.isfinite(v):
        return short_of_one(v, lambda d: f"{v:.{d}g}", digits)
    return "-" if v is None else str(v)


def _apart(values: list[Any]) -> list[str]:
    """The values of one row or column, with the digits (4, or up to 12) that keep different values different:
    at 4 a loss of 0.071421 and one of 0.071424 both read 0.07142, two runs that look tied and are not."""
    for digits in range(4, 13):
        texts = [_fmt(v, digits) for v in values]
        shown = {}
        if all(shown.setdefault(t, v) == v for t, v in zip(texts, values) if isinstance(v, float) and math.isfinite(v)):
            return texts
    return texts


def _best(r: dict, shown: str | None = None) -> str:
    """'val_loss=0.08622'; `shown`: the value as _apart gave it."""
    if r.get("best_value") is None:
        return "-"
    return f"{r.get('monitor')}={shown or _fmt(r['best_value'])}"


def _epochs(r: dict) -> str:
    """'30/30' for a finished run, '3/30 stopped' otherwise: an unfinished run must not pass for a short one."""
    if r.get("status", "done") == "done":
        return str(r.get("epochs", "-"))
    return r["status"] if r.get("epochs", "-") == "-" else f"{r['epochs']} {r['status']}"


def runs_table(rows: list[dict]) -> Table:
    """A rich Table for `nntrain runs`; cells are Text, so names like 'a[1]' are not read as markup."""
    from rich.table import Table
    from rich.text import Text

    table = _wrapping(Table("name", "task", "model", "optimizer", "epochs", "best", "test", "started"))
    bests = _apart([r.get("best_value") for r in rows])
    tests = _apart([r["test_metric"][1] if r["test_metric"] else None for r in rows])
    for r, best, shown in zip(rows, bests, tests):
        test = f"{r['test_metric'][0]}={shown}" if r["test_metric"] else "-"
        cells = [
            r["name"] + (" (config.yaml edited)" if r.get("config_edited") else ""),
            r["task"],
            r["model"],
            r["optimizer"],
            _epochs(r),
            _best(r, best),
            test,
            f"{r['started']:%Y-%m-%d %H:%M}",
        ]
        table.add_row(*(Text(c) for c in cells))
    return table


def _wrapping(table: Table) -> Table:
    """Cells that wrap in a narrow terminal: rich's default cut them ('val_…' under COLUMNS=60), values and all."""
    for column in table.columns:
        column.overflow = "fold"
    return table


def config_differences(configs: dict[str, dict]) -> dict[str, list]:
    """Dotted key -> one value per run (in configs' order; None when missing), for keys whose values differ.

    Keys come in config order, a key only some runs have kept beside its section (scheduler.gamma by scheduler.name).
    """
    flat = [flatten(c or {}) for c in configs.values()]
    seen = list(dict.fromkeys(k for f in flat for k in f if k not in IGNORED_KEYS))
    sections = list(dict.fromkeys(k.split(".")[0] for k in seen))
    keys = sorted(seen, key=lambda k: (sections.index(k.split(".")[0]), seen.index(k)))
    diffs = {k: [f.get(k) for f in flat] for k in keys}
    return {k: vals for k, vals in diffs.items() if any(v != vals[0] for v in vals[1:])}


def compare_table(runs: dict[str, dict]) -> Table:
    """A rich Table for `nntrain compare`: what differs in the configs, then what each run achieved."""
    from rich.table import Table
    from rich.text import Text

    table = _wrapping(Table("", *runs))
    rows = list(runs.values())
    for key, vals in config_differences({n: r.get("config") or {} for n, r in runs.items()}).items():
        table.add_row(Text(key), *(Text(v) for v in _apart(vals)))
    bests = _apart([r.get("best_value") for r in rows])
    table.add_row(Text("best"), *(Text(_best(r, b)) for r, b in zip(rows, bests)))
    table.add_row(Text("epochs"), *(Text(_epochs(r)) for r in rows))
    tests = [r.get("test") or {} for r in rows]
    with_test = [t for t in tests if t]
    shared = [k for k in (with_test[0] if with_test else {}) if all(k in t for t in with_test)]
    for k in shared:
        table.add_row(Text(f"test {k}"), *(Text(v) for v in _apart([t.get(k) for t in tests])))
    return table
