"""The study directory `reports/<name>/`: the one place that knows its files, and reading it back.

`StudyDir` alone knows the paths in a study directory, its lock, its spec file and marker, the
storage URL of `study.db`, the final checkpoint of each trial (`trials/<number>.pt`), the live
entries of the running trials (`live/`), atomic writes and what may be deleted there.
`read_study(directory)` returns a `StudyRecord`: the spec as run, one `TrialRow` per trial (the
baseline from `baseline.json` as number -1, every Optuna trial from `study.db`, with its scratch
control from `scratch.json` if one was run) and the study's state:
'running' while the pid in `.lock` is alive, 'done' once the baseline and all `search.trials`
trials are COMPLETE or FAIL, else 'interrupted'; and the live entries of the trials running (or
left unfinished by a run that was stopped). Reading never writes, so it is safe on a study
another process is still running. A file of the study that cannot be read is a `StudyDirError`
naming it.

A folder is a study when it holds the marker `.adsearch-study` next to `spec.yaml` (studies from
before the marker: a `spec.yaml` that adsearch wrote). `StudyDir.remove` deletes only such a
folder, and only the files adsearch writes there (`WRITTEN`); anything else in it stops the deletion.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from adsearch.errors import AdsearchError, StudyDirError, one_line
from adsearch.results.rows import BASELINE, SEARCH_ENDED, TrialRow, baseline_row, find, search_row
from adsearch.spec.study_spec import SpecError, StudySpec, parse_spec

SPEC_FILE = "spec.yaml"
BASELINE_FILE = "baseline.json"
DB_FILE = "study.db"
LOCK_FILE = ".lock"
MARKER_FILE = ".adsearch-study"
"""Written with spec.yaml when a study starts: this folder is a study that adsearch made."""
TRIALS_DIR = "trials"
"""Each finished trial's final checkpoint, by trial number (export and reload read these)."""
MODELS_DIR = "models"
PREFIXES_DIR = "prefixes"
"""The prefix cache (`adsearch.train.prefixes`): trial states that other trials start from."""
SCRATCH_FILE = "scratch.json"
"""The scratch controls' results (`adsearch.study.scratch`), by trial number."""
LIVE_DIR = "live"
"""One JSON file per running trial (`adsearch.study.progress.live_entry`: its epoch, last accuracy and loss,
size, times), written by the trial's process when it starts and after every epoch, removed when it
ends; `adsearch ls` and `show` read them from another shell."""
LIVE_FILES = {"baseline": "baseline.json", "search": "trial-{}.json", "control": "control-{}.json"}
"""A live entry's file in `live/` by the entry's kind (the baseline, search trial N, the scratch
control of trial N), formatted with its trial number."""
SPEC_HEADER = "# adsearch study spec, digest "
"""The first line of every spec.yaml adsearch writes (then the spec's digest)."""
WRITTEN = frozenset({SPEC_FILE, MARKER_FILE, BASELINE_FILE, DB_FILE, LOCK_FILE, "ray", TRIALS_DIR, "trials.csv",
                     "pareto.csv", "report.md", "report.html", "plots", MODELS_DIR, PREFIXES_DIR, SCRATCH_FILE,
                     LIVE_DIR})
"""Everything adsearch writes directly in a study directory (also SQLite's side files of study.db
and the temporary files of atomic writes, `.<name>.<...>.tmp`); nothing else is deleted there."""


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
            Path(tmp).write_text(content, encoding="utf-8")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; study files are for reading
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def spec_text(spec: StudySpec) -> str:
    """The spec as YAML, as spec.yaml holds it below its header."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)


class StudyDir:
    """`reports/<name>/`: its files, its lock, its spec, its trial checkpoints."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"StudyDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # --- paths -------------------------------------------------------------------------------

    @property
    def spec_file(self) -> Path:
        return self.path / SPEC_FILE

    @property
    def baseline_file(self) -> Path:
        return self.path / BASELINE_FILE

    @property
    def db_file(self) -> Path:
        return self.path / DB_FILE

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def marker_file(self) -> Path:
        return self.path / MARKER_FILE

    @property
    def ray_dir(self) -> Path:
        """Where Ray Tune keeps its experiments (`baseline`, `search`); only the study module looks inside."""
        return self.path / "ray"

    @property
    def models_dir(self) -> Path:
        return self.path / MODELS_DIR

    @property
    def prefixes_dir(self) -> Path:
        """The prefix cache; on a multi-node cluster on storage every node sees, like `ray_dir`."""
        return self.path / PREFIXES_DIR

    @property
    def scratch_file(self) -> Path:
        return self.path / SCRATCH_FILE

    @property
    def live_dir(self) -> Path:
        """The running trials' live entries; on a multi-node cluster on storage every node sees, like `ray_dir`."""
        return self.path / LIVE_DIR

    def live_file(self, kind: str, number: int) -> Path:
        """Where the live entry of trial `number` of `kind` ('baseline', 'search', 'control') is kept:
        live/baseline.json, live/trial-3.json, live/control-3.json.

        Raises:
            ValueError: an unknown kind.
        """
        if kind not in LIVE_FILES:
            raise ValueError(f"a live entry's kind must be one of {', '.join(map(repr, LIVE_FILES))}, got {kind!r}")
        return self.live_dir / LIVE_FILES[kind].format(number)

    @property
    def storage_url(self) -> str:
        """Optuna's storage URL for study.db."""
        return f"sqlite:///{self.db_file.resolve()}"

    def checkpoint_path(self, number: int) -> Path:
        """Where trial `number`'s final checkpoint is kept: trials/baseline.pt, trials/<number>.pt."""
        return self.path / TRIALS_DIR / ("baseline.pt" if number == BASELINE else f"{number}.pt")

    # --- writing -------------------------------------------------------------------------------

    def write(self, name: str, content: str | Callable[[Path], None]) -> Path:
        """Write `name` (a path relative to the study) atomically; see `atomic_write`."""
        return atomic_write(self.path / name, content)

    def start(self, spec: StudySpec) -> None:
        """Make a new study's folder: its spec.yaml and the marker that says adsearch made it."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.write(MARKER_FILE, json.dumps({"study": spec.name, "spec_digest": spec.digest()}) + "\n")
        self.write(SPEC_FILE, f"{SPEC_HEADER}{spec.digest()}\n" + spec_text(spec))

    def mark(self, spec: StudySpec) -> None:
        """Give a study from before the marker its marker."""
        if not self.marker_file.exists():
            self.write(MARKER_FILE, json.dumps({"study": spec.name}) + "\n")

    def save_baseline(self, metrics: dict) -> None:
        self.write(BASELINE_FILE, json.dumps(metrics, indent=2))

    def save_scratch(self, controls: dict[int, dict]) -> None:
        """Record scratch controls (trial number -> the control's result), merged with those recorded
        already (a trial's new result replaces its old one)."""
        merged = {**self.read_scratch(), **controls}
        self.write(SCRATCH_FILE, json.dumps({str(n): merged[n] for n in sorted(merged)}, indent=2))

    def save_live(self, entry: dict) -> None:
        """Write a running trial's live entry (`adsearch.study.progress.live_entry`) atomically, replacing its last one;
        the file is named by the entry's `kind` and `number` (`live_file`)."""
        atomic_write(self.live_file(entry["kind"], entry["number"]), json.dumps(entry))

    def end_live(self, kind: str, number: int) -> None:
        """Remove the live entry of a trial that ended (complete or failed); none there is fine."""
        self.live_file(kind, number).unlink(missing_ok=True)

    def clear_live(self) -> None:
        """Remove every live entry (and any write of one cut short): a run starting calls it, so the
        entries a stopped run left behind do not read as running trials."""
        if not self.live_dir.is_dir():
            return
        for path in self.live_dir.iterdir():
            if path.is_file() or path.is_symlink():
                path.unlink(missing_ok=True)

    def save_checkpoint(self, number: int, state: dict) -> Path:
        """Keep trial `number`'s final state (a plain dict: model, widths, epoch, ...) atomically."""
        import torch

        return atomic_write(self.checkpoint_path(number), lambda p: torch.save(state, p))

    # --- reading -------------------------------------------------------------------------------

    def read_spec(self) -> StudySpec:
        """The spec the study ran with, read from its `spec.yaml`.

        Raises:
            StudyDirError: no study there (the message lists the studies next to it), a spec.yaml
                that cannot be read, or one that no longer validates.
        """
        path = self.spec_file
        if not path.is_file():
            parent = self.path.parent
            names = [p.name for p in find_studies(parent)]
            where = f"studies in {parent}: {', '.join(names)}" if names else f"no studies in {parent}"
            raise StudyDirError(f"no study at {self.path} (no {SPEC_FILE}); {where}")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise StudyDirError(f"cannot read {path}: {one_line(exc)}") from None
        try:
            return parse_spec(text, str(path))
        except SpecError as exc:
            raise StudyDirError(f"{path} no longer validates (written by another version of adsearch, or edited?):\n"
                                f"{exc}\nrun that study with the adsearch version that wrote it, or start it again "
                                f"with `adsearch run SPEC --fresh`") from None

    def read_baseline(self) -> dict | None:
        """The baseline's recorded results, or None before it has finished.

        Raises:
            StudyDirError: baseline.json is there but cannot be read.
        """
        path = self.baseline_file
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        except (OSError, ValueError) as exc:
            raise StudyDirError(f"cannot read {path}: {one_line(exc)}; the baseline's result is lost: "
                                f"delete the file and `adsearch resume {self.path}` runs the baseline again") from None
        return data

    def read_scratch(self) -> dict[int, dict]:
        """The recorded scratch controls by trial number: each the control's metrics (`METRICS`
        keys) with its `widths` and `state` ('COMPLETE'), or `state` 'FAIL' with its `error`. Empty
        when none was run.

        Raises:
            StudyDirError: scratch.json is there but cannot be read.
        """
        path = self.scratch_file
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
                raise ValueError("expected a JSON object of trial number -> result")
            return {int(n): v for n, v in data.items()}
        except (OSError, ValueError) as exc:
            raise StudyDirError(f"cannot read {path}: {one_line(exc)}; the scratch controls' results are lost: "
                                f"delete the file and `adsearch scratch {self.path}` runs them again") from None

    def read_live(self) -> list[dict]:
        """The live entries in `live/`, by file name; a file that cannot be read or is not a JSON
        object (one being replaced, a torn one) is skipped, so this never raises."""
        try:
            paths = sorted(self.live_dir.glob("*.json"))
        except OSError:
            return []
        entries = []
        for path in paths:
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries

    def load_checkpoint(self, row: TrialRow) -> dict:
        """Trial `row`'s final checkpoint, checked to be the one its reported metrics come from.

        Raises:
            AdsearchError: no checkpoint kept for it, an unreadable one, or one from another epoch
                or with other widths than the trial reported.
        """
        import torch

        path = self.checkpoint_path(row.number)
        if not path.is_file():
            raise AdsearchError(f"trial {row.label} has no final checkpoint ({path} is missing); studies run before "
                                "adsearch kept them there cannot export it: run the study again")
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same message
            raise AdsearchError(f"cannot read checkpoint {path}: {one_line(exc)}") from None
        epoch = row.metrics.get("epoch")
        if epoch is not None and checkpoint.get("epoch") != epoch:
            raise AdsearchError(f"the checkpoint of trial {row.label} ({path}) is from epoch "
                                f"{checkpoint.get('epoch')}, but its reported metrics are from epoch {epoch}")
        if row.widths is not None and list(checkpoint["widths"]) != list(row.widths):
            raise AdsearchError(f"the checkpoint {path} has widths {list(checkpoint['widths'])}, but trial "
                                f"{row.label} reported {row.widths}")
        return checkpoint

    def is_study(self) -> bool:
        """Whether this is a study adsearch made: its marker and spec.yaml, or (a study from
        before the marker) a spec.yaml that starts with the header adsearch writes."""
        if not self.spec_file.is_file():
            return False
        if self.marker_file.is_file():
            return True
        try:
            with self.spec_file.open() as f:
                return f.readline().startswith(SPEC_HEADER)
        except (OSError, UnicodeDecodeError):
            return False

    # --- the lock ------------------------------------------------------------------------------

    def lock_pid(self) -> int | None:
        """The pid written in the study's `.lock`, or None without a (readable) lock."""
        try:
            text = self.lock_file.read_text()
        except OSError:
            return None
        match = re.search(r"\d+", text)
        return int(match.group()) if match else None

    def owner(self) -> int | None:
        """The pid of the live process running the study, or None."""
        pid = self.lock_pid()
        return pid if pid is not None and pid_alive(pid) else None

    def check_not_running(self) -> None:
        """Raise `AdsearchError` if another live process runs this study."""
        owner = self.owner()
        if owner is not None and owner != os.getpid():
            raise AdsearchError(f"study {self.path} is already running (pid {owner}); wait for it to finish or "
                                f"stop it (kill {owner}), then `adsearch resume {self.path}`")

    @contextlib.contextmanager
    def lock(self):
        """Hold `.lock` (our pid) while the study runs; a stale lock is taken over."""
        while True:
            try:
                fd = os.open(self.lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                self.check_not_running()
                self.lock_file.unlink(missing_ok=True)  # stale: its process is gone
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        try:
            yield
        finally:
            self.lock_file.unlink(missing_ok=True)

    # --- may a spec run here ------------------------------------------------------------------

    def check_can_run(self, spec: StudySpec, *, fresh: bool = False) -> bool:
        """Check, before anything is written, that `spec` may run here; True if a study of this
        spec is here to resume (never with `fresh`, which deletes it first).

        Raises:
            StudyDirError: the folder exists and is not a study (or, with `fresh`, is not one that
                may be deleted: see `check_removable`); its spec.yaml cannot be read.
            AdsearchError: a live process runs the study; its spec changed since it began.
        """
        if not self.path.exists():
            return False
        if not self.path.is_dir():
            raise StudyDirError(f"{self.path} is a file, not a study folder; choose another study name or --reports")
        self.check_not_running()
        if fresh:
            self.check_removable()
            return False
        if not self.spec_file.exists():
            leftovers = sorted(p.name for p in self.path.iterdir() if p.name != LOCK_FILE)
            if leftovers:
                raise StudyDirError(
                    f"{self.path} exists and is not an adsearch study (it holds {', '.join(leftovers[:5])}); "
                    "choose another study name or --reports directory")
            return False
        if not self.is_study():
            raise StudyDirError(f"{self.path} holds a {SPEC_FILE} that adsearch did not write (no {MARKER_FILE}), so "
                                "it is not a study to resume; choose another study name or --reports directory")
        before = self.read_spec()
        if _resumable(before).digest() != _resumable(spec).digest():
            diff = "".join(difflib.unified_diff(spec_text(before).splitlines(True), spec_text(spec).splitlines(True),
                                                f"{self.spec_file} (as started)", "the spec now"))
            raise AdsearchError(
                f"the spec changed since study {spec.name!r} began, so it cannot resume:\n{diff}"
                f"run with --fresh to start it again (deletes {self.path}), or give the study a new name")
        collect_rows(self, before)  # its baseline.json and study.db must read, before Ray starts
        return True

    # --- deleting ------------------------------------------------------------------------------

    def foreign_entries(self) -> list[str]:
        """The names here that adsearch does not write, sorted."""
        return sorted(p.name for p in self.path.iterdir() if not _written_by_us(p.name))

    def check_removable(self) -> None:
        """Raise unless `remove` may delete this folder; nothing is touched either way.

        Raises:
            StudyDirError: it is not a study adsearch made, it holds files adsearch did not write
                (each named), or a live process runs it.
        """
        directory = self.path
        if not directory.is_dir():
            raise StudyDirError(f"{directory} is not a folder; adsearch deletes only study folders it made")
        if not self.is_study():
            held = sorted(p.name for p in directory.iterdir())
            what = f"it holds {', '.join(held[:5])}{', ...' if len(held) > 5 else ''}" if held else "it is empty"
            raise StudyDirError(
                f"{directory} is not an adsearch study (no {MARKER_FILE} and {SPEC_FILE}; {what}), so --fresh will "
                f"not delete it; move it away yourself, or give the study another name or --reports folder")
        foreign = self.foreign_entries()
        if foreign:
            raise StudyDirError(
                f"study {directory} also holds files adsearch did not write ({', '.join(foreign[:5])}"
                f"{', ...' if len(foreign) > 5 else ''}), so --fresh will not delete it; move them out of the "
                f"folder, then run again")
        pid = self.lock_pid()
        if pid is not None and pid != os.getpid() and pid_alive(pid):
            raise StudyDirError(f"study {directory} is running (pid {pid}); stop it before --fresh")

    def remove(self) -> None:
        """Delete the study: the files adsearch wrote here, then the folder itself.

        Raises:
            StudyDirError: see `check_removable`; then nothing is deleted.
        """
        self.check_removable()
        for path in sorted(self.path.iterdir(), key=lambda p: p.name == MARKER_FILE):  # the marker last
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        self.path.rmdir()


def _resumable(spec: StudySpec) -> StudySpec:
    """`spec` as a resume compares it: `search.scratch_controls` (whether to run the controls after the
    search) changes no trial, so turning it on for a finished study runs its controls; nor does
    `resources.placement_timeout_s` (a study stopped by it may resume with a longer wait)."""
    return spec.model_copy(update={
        "search": spec.search.model_copy(update={"scratch_controls": False}),
        "resources": spec.resources.model_copy(update={"placement_timeout_s": 0.0}),
    })


def _written_by_us(name: str) -> bool:
    return (name in WRITTEN or name.startswith(f"{DB_FILE}-")  # SQLite's -journal, -wal, -shm
            or (name.startswith(".") and name.endswith(".tmp")))  # an atomic write cut short


def find_studies(reports_dir: Path | str) -> list[Path]:
    """The study directories (those holding a spec.yaml) directly under `reports_dir`, by name."""
    reports_dir = Path(reports_dir)
    if not reports_dir.is_dir():
        return []
    return sorted(p for p in reports_dir.iterdir() if (p / SPEC_FILE).is_file())


# --- reading a study back ----------------------------------------------------------------------


@dataclass
class StudyRecord:
    """One study read from disk."""

    study_dir: StudyDir
    spec: StudySpec
    rows: list[TrialRow]
    state: str
    live: list[dict] = field(default_factory=list)
    """The live entries in `live/` (`StudyDir.read_live`): the trials running, or those a stopped run
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
    controls = study_dir.read_scratch()
    for row in rows:
        if not row.is_baseline:
            row.scratch = controls.get(row.number)
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
    if study_dir.owner() is not None:
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
                       live=study_dir.read_live())


def _as_dir(directory: StudyDir | Path | str) -> StudyDir:
    return directory if isinstance(directory, StudyDir) else StudyDir(directory)
