"""A study as it lies on disk: `reports/<name>/` read back, for the report, `ls`, `show` and `export`;
and what may be written or deleted there.

`read_study(directory)` returns a `StudyRecord`: the spec as run (`spec.yaml`), one row per trial
(the baseline from `baseline.json` as number -1, every Optuna trial from `study.db`) and the
study's state: 'running' while the pid in `.lock` is alive, 'done' once the baseline and all
`search.trials` trials are COMPLETE or FAIL, else 'interrupted'. Reading never writes, so it is
safe on a study another process is still running. A file of the study that cannot be read is a
`StudyDirError` naming it.

A folder is a study when it holds the marker `.adsearch-study` next to `spec.yaml` (studies from
before the marker: a `spec.yaml` that adsearch wrote). `remove_study` deletes only such a folder,
and only the files adsearch writes there (`WRITTEN`); anything else in it stops the deletion.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from adsearch.errors import AdsearchError, StudyDirError
from adsearch.spec import SpecError, StudySpec, decode_choice, parse_spec

SPEC_FILE = "spec.yaml"
BASELINE_FILE = "baseline.json"
DB_FILE = "study.db"
LOCK_FILE = ".lock"
MARKER_FILE = ".adsearch-study"
"""Written with spec.yaml when a study starts: this folder is a study that adsearch made."""
SPEC_HEADER = "# adsearch study spec, digest "
"""The first line of every spec.yaml adsearch writes (then the spec's digest)."""
WRITTEN = frozenset({SPEC_FILE, MARKER_FILE, BASELINE_FILE, DB_FILE, LOCK_FILE, "ray", "trials.csv", "pareto.csv",
                     "report.md", "report.html", "plots", "models"})
"""Everything adsearch writes directly in a study directory (also SQLite's side files of study.db
and the temporary files of atomic writes, `.<name>.<...>.tmp`); nothing else is deleted there."""

RECORDED = ("accuracy", "top5", "loss", "params", "macs", "train_macs", "latency_ms", "wall_s",
            "params_ratio", "macs_ratio", "train_macs_ratio", "accuracy_drop", "epoch", "rounds",
            "widths", "base_widths", "gpu_ids")
"""The result keys kept per trial (Optuna user attributes, then trials.csv)."""
TRACE = ("history", "compressions")
"""Kept per trial too (user attributes, not table columns): per-epoch records and compression rounds."""

FINISHED = ("COMPLETE", "FAIL")


@dataclass
class StudyRecord:
    """One study read from disk."""

    directory: Path
    spec: StudySpec
    rows: list[dict]
    state: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def baseline(self) -> dict | None:
        """The baseline row, if the baseline has finished."""
        return next((r for r in self.rows if r["role"] == "baseline"), None)

    @property
    def search_rows(self) -> list[dict]:
        return [r for r in self.rows if r["role"] == "search"]

    @property
    def trials_done(self) -> int:
        """Search trials that are COMPLETE or FAIL."""
        return sum(r["state"] in FINISHED for r in self.search_rows)

    @property
    def trials_total(self) -> int:
        return self.spec.search.trials


# --- finding studies -------------------------------------------------------------------------


def find_studies(reports_dir: Path | str) -> list[Path]:
    """The study directories (those holding a spec.yaml) directly under `reports_dir`, by name."""
    reports_dir = Path(reports_dir)
    if not reports_dir.is_dir():
        return []
    return sorted(p for p in reports_dir.iterdir() if (p / SPEC_FILE).is_file())


def _no_study(directory: Path) -> StudyDirError:
    parent = directory.parent
    names = [p.name for p in find_studies(parent)]
    where = f"studies in {parent}: {', '.join(names)}" if names else f"no studies in {parent}"
    return StudyDirError(f"no study at {directory} (no {SPEC_FILE}); {where}")


def load_study_spec(directory: Path | str) -> StudySpec:
    """The spec a study ran with, read from its `spec.yaml`.

    Raises:
        StudyDirError: no study there (the message lists the studies next to it), a spec.yaml
            that cannot be read, or one that no longer validates.
    """
    directory = Path(directory)
    path = directory / SPEC_FILE
    if not path.is_file():
        raise _no_study(directory)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyDirError(f"cannot read {path}: {_reason(exc)}") from None
    try:
        return parse_spec(text, str(path))
    except SpecError as exc:
        raise StudyDirError(f"{path} no longer validates (written by another version of adsearch, or edited?):\n"
                            f"{exc}\nrun that study with the adsearch version that wrote it, or start it again "
                            f"with `adsearch run SPEC --fresh`") from None


def _reason(exc: BaseException) -> str:
    """An exception as one short line, for a message that names the file it came from."""
    text = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


# --- what adsearch made, and deleting it ------------------------------------------------------


def is_study(directory: Path | str) -> bool:
    """Whether `directory` is a study adsearch made: its marker and spec.yaml, or (a study from
    before the marker) a spec.yaml that starts with the header adsearch writes."""
    directory = Path(directory)
    spec = directory / SPEC_FILE
    if not spec.is_file():
        return False
    if (directory / MARKER_FILE).is_file():
        return True
    try:
        with spec.open() as f:
            return f.readline().startswith(SPEC_HEADER)
    except (OSError, UnicodeDecodeError):
        return False


def _written_by_us(name: str) -> bool:
    return (name in WRITTEN or name.startswith(f"{DB_FILE}-")  # SQLite's -journal, -wal, -shm
            or (name.startswith(".") and name.endswith(".tmp")))  # an atomic write cut short


def foreign_entries(directory: Path | str) -> list[str]:
    """The names in `directory` that adsearch does not write there, sorted."""
    return sorted(p.name for p in Path(directory).iterdir() if not _written_by_us(p.name))


def check_removable(directory: Path | str) -> None:
    """Raise unless `remove_study(directory)` may delete it; nothing is touched either way.

    Raises:
        StudyDirError: it is not a study adsearch made, it holds files adsearch did not write
            (each named), or a live process runs it.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise StudyDirError(f"{directory} is not a folder; adsearch deletes only study folders it made")
    if not is_study(directory):
        held = sorted(p.name for p in directory.iterdir())
        what = f"it holds {', '.join(held[:5])}{', ...' if len(held) > 5 else ''}" if held else "it is empty"
        raise StudyDirError(
            f"{directory} is not an adsearch study (no {MARKER_FILE} and {SPEC_FILE}; {what}), so --fresh will not "
            f"delete it; move it away yourself, or give the study another name or --reports folder")
    foreign = foreign_entries(directory)
    if foreign:
        raise StudyDirError(
            f"study {directory} also holds files adsearch did not write ({', '.join(foreign[:5])}"
            f"{', ...' if len(foreign) > 5 else ''}), so --fresh will not delete it; move them out of the "
            f"folder, then run again")
    pid = lock_pid(directory)
    if pid is not None and pid != os.getpid() and pid_alive(pid):
        raise StudyDirError(f"study {directory} is running (pid {pid}); stop it before --fresh")


def remove_study(directory: Path | str) -> None:
    """Delete the study in `directory`: the files adsearch wrote there, then the folder itself.

    Raises:
        StudyDirError: see `check_removable`; then nothing is deleted.
    """
    directory = Path(directory)
    check_removable(directory)
    for path in sorted(directory.iterdir(), key=lambda p: p.name == MARKER_FILE):  # the marker last
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    directory.rmdir()


def atomic_write(path: Path, content: str | Callable[[Path], None]) -> Path:
    """Write `path` so that a reader sees the old file or the new one, never a torn one: `content`
    (text, or a function that writes the file it is given) goes to a temporary file next to
    `path`, which then replaces it; on any failure the temporary file is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if callable(content):
            content(Path(tmp))
        else:
            Path(tmp).write_text(content)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; study files are for reading
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --- rows ------------------------------------------------------------------------------------


def storage_url(directory: Path) -> str:
    return f"sqlite:///{(Path(directory) / DB_FILE).resolve()}"


def collect_rows(directory: Path | str, spec: StudySpec) -> list[dict]:
    """The study's trials as table rows: the baseline (number -1) and every Optuna trial.

    A row holds number, role ('baseline' or 'search'), state (Optuna's: COMPLETE, FAIL, RUNNING,
    ...), error, one `param:<path>` per search dimension (decoded: lists as lists), every key of
    `RECORDED` and `TRACE`, and for search trials `ray_trial_id` (which Ray trial directory ran it).
    """
    directory = Path(directory)
    rows: list[dict] = []
    params_cols = [f"param:{p}" for p in spec.search.space]
    baseline_path = directory / BASELINE_FILE
    if baseline_path.exists():
        try:
            b = json.loads(baseline_path.read_text())
            if not isinstance(b, dict):
                raise ValueError(f"expected a JSON object, got {type(b).__name__}")
        except (OSError, ValueError) as exc:
            raise StudyDirError(f"cannot read {baseline_path}: {_reason(exc)}; the baseline's result is lost: "
                                f"delete the file and `adsearch resume {directory}` runs the baseline again") from None
        rows.append({"number": -1, "role": "baseline", "state": "COMPLETE", "error": "",
                     **{c: None for c in params_cols}, **b})
    for t in optuna_trials(directory, spec.name):
        row = {"number": t.number, "role": "search", "state": t.state.name,
               "error": t.user_attrs.get("error", "")}
        for path in spec.search.space:
            value = t.params.get(path)
            row[f"param:{path}"] = decode_choice(spec.search.space[path], value) if value is not None else None
        for key in RECORDED + TRACE:
            row[key] = t.user_attrs.get(key)
        row["ray_trial_id"] = t.user_attrs.get("ray_trial_id")
        rows.append(row)
    return rows


def optuna_trials(directory: Path | str, study_name: str) -> list:
    """The Optuna trials in `directory`'s study.db, or none while the search has not made its
    storage or its study yet. Never writes: Optuna creates its tables when it opens a storage that
    lacks them, which would race the study that is making them, so a storage is opened only once
    it is complete (`_storage_ready`).

    Raises:
        StudyDirError: study.db is there but cannot be read as an Optuna storage.
    """
    directory = Path(directory)
    if not _storage_ready(directory / DB_FILE):
        return []
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url(directory))
        return study.get_trials(deepcopy=False)
    except KeyError:  # the storage is complete but the search has not made its study yet
        return []
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy and Optuna raise many kinds for a bad file
        raise StudyDirError(f"cannot read {directory / DB_FILE} as an Optuna storage ({_reason(exc)}); "
                            "the study's other files are untouched") from None


def _storage_ready(path: Path) -> bool:
    """Whether `path` holds a complete Optuna storage: Optuna stamps `alembic_version` last when
    it makes one. Read through SQLite in read-only mode. A file that is not SQLite at all is
    'ready' (so that opening it reports what is wrong with it)."""
    if not path.is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            return "alembic_version" in tables and db.execute("SELECT count(*) FROM alembic_version").fetchone()[0] > 0
    except sqlite3.OperationalError:  # locked by the study making it, or an empty file: not ready yet
        return False
    except sqlite3.DatabaseError:  # not a database: let Optuna say what it finds
        return True


# --- state -----------------------------------------------------------------------------------


def lock_pid(directory: Path | str) -> int | None:
    """The pid written in the study's `.lock`, or None without a (readable) lock."""
    try:
        text = (Path(directory) / LOCK_FILE).read_text()
    except OSError:
        return None
    match = re.search(r"\d+", text)
    return int(match.group()) if match else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def study_state(directory: Path | str, spec: StudySpec | None = None, rows: list[dict] | None = None) -> str:
    """'running' (the pid in `.lock` is alive), 'done' (the baseline, if the spec runs one, and
    `search.trials` search trials are all COMPLETE or FAIL) or 'interrupted' (anything else)."""
    directory = Path(directory)
    pid = lock_pid(directory)
    if pid is not None and pid_alive(pid):
        return "running"
    spec = spec if spec is not None else load_study_spec(directory)
    rows = rows if rows is not None else collect_rows(directory, spec)
    has_baseline = any(r["role"] == "baseline" and r["state"] in FINISHED for r in rows)
    done = sum(r["role"] == "search" and r["state"] in FINISHED for r in rows)
    if (has_baseline or not spec.search.baseline) and done >= spec.search.trials:
        return "done"
    return "interrupted"


def read_study(directory: Path | str) -> StudyRecord:
    """Read study `directory` (e.g. `reports/quickstart`): spec, rows and state.

    Raises:
        StudyDirError: no study there (the message lists the studies next to it), or a file of
            it that cannot be read (named).
    """
    directory = Path(directory)
    spec = load_study_spec(directory)
    rows = collect_rows(directory, spec)
    return StudyRecord(directory=directory, spec=spec, rows=rows, state=study_state(directory, spec, rows))


def trial_label(row: dict) -> str:
    return "baseline" if row["role"] == "baseline" else str(row["number"])


def trial_row(record: StudyRecord, number: int) -> dict:
    """The row of trial `number` (-1: the baseline).

    Raises:
        AdsearchError: no such trial; the message lists the trials there are.
    """
    for row in record.rows:
        if row["number"] == number:
            return row
    there = ", ".join(("baseline (-1)" if r["role"] == "baseline" else str(r["number"])) for r in record.rows)
    raise AdsearchError(f"study {record.name!r} has no trial {number}; "
                        + (f"its trials: {there}" if there else "it has no trials yet"))
