"""A study as it lies on disk: `reports/<name>/` read back, for the report, `ls`, `show` and `export`.

`read_study(directory)` returns a `StudyRecord`: the spec as run (`spec.yaml`), one row per trial
(the baseline from `baseline.json` as number -1, every Optuna trial from `study.db`) and the
study's state: 'running' while the pid in `.lock` is alive, 'done' once the baseline and all
`search.trials` trials are COMPLETE or FAIL, else 'interrupted'. Reading never writes, so it is
safe on a study another process is still running.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from adsearch.errors import AdsearchError
from adsearch.spec import SpecError, StudySpec, decode_choice, parse_spec

SPEC_FILE = "spec.yaml"
BASELINE_FILE = "baseline.json"
DB_FILE = "study.db"
LOCK_FILE = ".lock"

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


def _no_study(directory: Path) -> AdsearchError:
    parent = directory.parent
    names = [p.name for p in find_studies(parent)]
    where = f"studies in {parent}: {', '.join(names)}" if names else f"no studies in {parent}"
    return AdsearchError(f"no study at {directory} (no {SPEC_FILE}); {where}")


def load_study_spec(directory: Path | str) -> StudySpec:
    """The spec a study ran with, read from its `spec.yaml`.

    Raises:
        AdsearchError: no study there (the message lists the studies next to it), or a spec.yaml
            that no longer validates.
    """
    directory = Path(directory)
    path = directory / SPEC_FILE
    if not path.is_file():
        raise _no_study(directory)
    try:
        return parse_spec(path.read_text(), str(path))
    except SpecError as exc:
        raise AdsearchError(f"the study's spec no longer validates (written by another version?):\n{exc}") from None


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
        b = json.loads(baseline_path.read_text())
        rows.append({"number": -1, "role": "baseline", "state": "COMPLETE", "error": "",
                     **{c: None for c in params_cols}, **b})
    for t in _optuna_trials(directory, spec.name):
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


def _optuna_trials(directory: Path, study_name: str) -> list:
    """The Optuna trials in `study.db`, or none when the search has not created its study yet."""
    if not (directory / DB_FILE).exists():
        return []
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url(directory))
    except KeyError:  # the database exists but the search has not made its study yet
        return []
    return study.get_trials(deepcopy=False)


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
        AdsearchError: no study there; the message lists the studies next to it.
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
