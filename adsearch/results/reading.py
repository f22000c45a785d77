"""A study read back from its directory: `read_study(directory)` returns a `StudyRecord`.

The record holds the spec as run, one `TrialRow` per trial (the baseline from `baseline.json` as
number -1, every Optuna trial from `study.db`, with its scratch control from `scratch.json` if one
was run) and the study's state: 'running' while the pid in `.lock` is alive, 'done' once the
baseline and all `search.trials` trials are COMPLETE or FAIL, else 'interrupted'; and the live
entries of the trials running (or left unfinished by a run that was stopped). Reading never
writes, so it is safe on a study another process is still running. A file of the study that cannot
be read is a `StudyDirError` naming it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from adsearch.errors import AdsearchError, StudyDirError, one_line
from adsearch.results.live import read_live
from adsearch.results.lock import owner
from adsearch.results.rows import SEARCH_ENDED, TrialRow, baseline_row, find, search_row
from adsearch.results.study_dir import StudyDir, read_replicates
from adsearch.spec.study_spec import StudySpec


@dataclass
class StudyRecord:
    """One study read from disk."""

    study_dir: StudyDir
    spec: StudySpec
    rows: list[TrialRow]
    state: str
    live: list[dict] = field(default_factory=list)
    """The live entries in `live/` (`live.read_live`): the trials running, or those a stopped run
    left unfinished."""

    @property
    def directory(self) -> Path:
        return self.study_dir.path

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def baseline(self) -> TrialRow | None:
        """The baseline row, if the baseline has finished."""
        return next((r for r in self.rows if r.is_baseline), None)

    @property
    def search_rows(self) -> list[TrialRow]:
        return [r for r in self.rows if not r.is_baseline]

    @property
    def trials_done(self) -> int:
        """Search trials of the budget that are COMPLETE or FAIL (repeats are not in the budget)."""
        return sum(r.finished and r.in_budget for r in self.search_rows)

    @property
    def trials_total(self) -> int:
        return self.spec.search.trials

    def row(self, number: int) -> TrialRow:
        """The row of trial `number` (-1: the baseline).

        Raises:
            AdsearchError: no such trial; the message lists the trials there are.
        """
        row = find(self.rows, number)
        if row is not None:
            return row
        there = ", ".join("baseline (-1)" if r.is_baseline else str(r.number) for r in self.rows)
        raise AdsearchError(f"study {self.name!r} has no trial {number}; "
                            + (f"its trials: {there}" if there else "it has no trials yet"))


def collect_rows(study_dir: StudyDir | Path | str, spec: StudySpec) -> list[TrialRow]:
    """The study's trials as rows: the baseline (number -1) once it has finished, then every
    Optuna trial of the search by number, each with its scratch control if one was run."""
    study_dir = _as_dir(study_dir)
    baseline = study_dir.read_baseline()
    rows = [baseline_row(baseline)] if baseline is not None else []
    rows += [search_row(t, spec) for t in optuna_trials(study_dir, spec.name)]
    controls, replicates = study_dir.read_scratch(), read_replicates(study_dir)
    for row in rows:
        row.replicates = replicates.get(row.number, {})
        if not row.is_baseline:
            row.scratch = controls.get(row.number, {}).get("epochs")
            row.scratch_compute = controls.get(row.number, {}).get("compute")
    return rows


def optuna_trials(study_dir: StudyDir | Path | str, study_name: str) -> list:
    """The Optuna trials in study.db, or none while the search has not made its storage or its
    study yet. Never writes: Optuna creates its tables when it opens a storage that lacks them,
    which would race the study that is making them, so a storage is opened only once it is
    complete (`_storage_ready`).

    Raises:
        StudyDirError: study.db is there but cannot be read as an Optuna storage.
    """
    study_dir = _as_dir(study_dir)
    if not _storage_ready(study_dir.db_file):
        return []
    import optuna

    try:
        study = optuna.load_study(study_name=study_name, storage=study_dir.storage_url)
        return study.get_trials(deepcopy=False)
    except KeyError:  # the storage is complete but the search has not made its study yet
        return []
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy and Optuna raise many kinds for a bad file
        raise StudyDirError(f"cannot read {study_dir.db_file} as an Optuna storage ({one_line(exc)}); "
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


def study_state(study_dir: StudyDir | Path | str, spec: StudySpec | None = None,
                rows: list[TrialRow] | None = None) -> str:
    """'running' (the pid in `.lock` is alive), 'done' (the baseline, if the spec runs one, and
    `search.trials` search trials are all COMPLETE or FAIL) or 'interrupted' (anything else)."""
    study_dir = _as_dir(study_dir)
    if owner(study_dir) is not None:
        return "running"
    spec = spec if spec is not None else study_dir.read_spec()
    rows = rows if rows is not None else collect_rows(study_dir, spec)
    has_baseline = any(r.is_baseline and r.finished for r in rows)
    done = sum(r.in_budget and r.finished for r in rows)
    unfinished = any(r.in_budget and not r.finished for r in rows)
    if (has_baseline or not spec.search.baseline) and (
            done >= spec.search.trials or (not unfinished and search_ended(study_dir, spec.name))):
        return "done"
    return "interrupted"


def search_ended(study_dir: StudyDir | Path | str, study_name: str) -> str:
    """Why the study's search ended before its budget (its space exhausted), or ''."""
    study_dir = _as_dir(study_dir)
    if not _storage_ready(study_dir.db_file):
        return ""
    import optuna

    try:
        return optuna.load_study(study_name=study_name, storage=study_dir.storage_url).user_attrs.get(SEARCH_ENDED, "")
    except KeyError:
        return ""


def read_study(directory: StudyDir | Path | str) -> StudyRecord:
    """Read study `directory` (e.g. `reports/quickstart`): spec, rows, state and live entries.

    Raises:
        StudyDirError: no study there (the message lists the studies next to it), or a file of
            it that cannot be read (named).
    """
    study_dir = _as_dir(directory)
    spec = study_dir.read_spec()
    rows = collect_rows(study_dir, spec)
    return StudyRecord(study_dir=study_dir, spec=spec, rows=rows, state=study_state(study_dir, spec, rows),
                       live=read_live(study_dir))


def _as_dir(directory: StudyDir | Path | str) -> StudyDir:
    return directory if isinstance(directory, StudyDir) else StudyDir(directory)
