"""The study directory `reports/<name>/`: the names of its files, atomic writes, and `StudyDir`,
the one place that knows its paths and reads and writes its plain files.

`StudyDir` knows the paths in a study directory (its spec file and marker, its lock, the storage
URL of `study.db`, the folders `trials/`, `live/` and `ray/`), writes its files
atomically (`atomic_write`) and reads back its spec (`spec.yaml`), the baseline's result
(`baseline.json`) and the scratch controls' (`scratch.json`). A file that cannot be read is a
`StudyDirError` naming it. The folders' contents have their own owners: the trial checkpoints in
`trials/` (`adsearch.results.checkpoints`), the running trials' entries in `live/`
(`adsearch.results.live`). Who runs a study is `adsearch.results.lock`'s; whether a folder is a
study and what may run in it or be deleted there, `adsearch.results.ownership`'s; a whole study
read back, `adsearch.results.reading`'s.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import yaml

from adsearch.errors import StudyDirError, one_line
from adsearch.spec.loading import SpecError, parse_spec
from adsearch.spec.study_spec import StudySpec

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
"""Where earlier versions kept a study's own prefix cache (now shared by studies: `adsearch.train.prefixes`);
still adsearch's to delete with the study."""
SCRATCH_FILE = "scratch.json"
"""The scratch controls' results (`adsearch.study.scratch`), by trial number."""
REPLICATES_FILE = "replicates.json"
"""The replicates' results (`adsearch.study.replicates`): by trial number (-1 the baseline), then seed."""
LIVE_DIR = "live"
"""One JSON file per running trial (`adsearch.results.live`: its epoch, last accuracy and loss,
size, times), written by the trial's process when it starts and after every epoch, removed when it
ends; `adsearch ls` and `show` read them from another shell."""
SPEC_HEADER = "# adsearch study spec, digest "
"""The first line of every spec.yaml adsearch writes (then the spec's digest)."""
WRITTEN = frozenset({SPEC_FILE, MARKER_FILE, BASELINE_FILE, DB_FILE, LOCK_FILE, "ray", TRIALS_DIR, "trials.csv",
                     "pareto.csv", "report.md", "report.html", "plots", MODELS_DIR, PREFIXES_DIR, SCRATCH_FILE,
                     REPLICATES_FILE, LIVE_DIR})
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


def spec_text(spec: StudySpec) -> str:
    """The spec as YAML, as spec.yaml holds it below its header."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)


def find_studies(reports_dir: Path | str) -> list[Path]:
    """The study directories (those holding a spec.yaml) directly under `reports_dir`, by name."""
    reports_dir = Path(reports_dir)
    if not reports_dir.is_dir():
        return []
    return sorted(p for p in reports_dir.iterdir() if (p / SPEC_FILE).is_file())


class StudyDir:
    """`reports/<name>/`: its paths, and the plain files it keeps (spec, baseline, scratch controls)."""

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
    def scratch_file(self) -> Path:
        return self.path / SCRATCH_FILE

    @property
    def live_dir(self) -> Path:
        """The running trials' live entries; on a multi-node cluster on storage every node sees, like `ray_dir`."""
        return self.path / LIVE_DIR

    @property
    def storage_url(self) -> str:
        """Optuna's storage URL for study.db."""
        return f"sqlite:///{self.db_file.resolve()}"

    # --- writing -------------------------------------------------------------------------------

    def write(self, name: str, content: str | Callable[[Path], None]) -> Path:
        """Write `name` (a path relative to the study) atomically; see `atomic_write`."""
        return atomic_write(self.path / name, content)

    def save_baseline(self, metrics: dict) -> None:
        self.write(BASELINE_FILE, json.dumps(metrics, indent=2))

    def save_scratch(self, controls: dict[int, dict], match: str = "epochs") -> None:
        """Record scratch controls matched on `match` ('epochs' or 'compute'; trial number -> the
        control's result), merged with those recorded already (a trial's new result replaces its old
        one of the same match)."""
        merged = self.read_scratch()
        for n, control in controls.items():
            merged[n] = {**merged.get(n, {}), match: control}
        self.write(SCRATCH_FILE, json.dumps({str(n): merged[n] for n in sorted(merged)}, indent=2))

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

    def read_scratch(self) -> dict[int, dict[str, dict]]:
        """The recorded scratch controls by trial number, then by what they match ('epochs',
        'compute'): each the control's metrics (`METRICS` keys) with its `widths`, `correct` and `state`
        ('COMPLETE'), or `state` 'FAIL' with its `error`. Empty when none was run. A file written before
        controls at equal compute (trial number -> the control) reads as equal-epoch controls.

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
            return {int(n): {"epochs": v} if "state" in v else v for n, v in data.items()}
        except (OSError, ValueError) as exc:
            raise StudyDirError(f"cannot read {path}: {one_line(exc)}; the scratch controls' results are lost: "
                                f"delete the file and `adsearch scratch {self.path}` runs them again") from None


# --- the replicates (`adsearch.study.replicates`) -----------------------------------------------


def read_replicates(study: StudyDir) -> dict[int, dict[int, dict]]:
    """The recorded replicates by trial number (-1: the baseline), then seed: each the result
    recorded as a scratch control's is (`state`, metrics, widths, `correct`). Empty when none was run.

    Raises:
        StudyDirError: replicates.json is there but cannot be read.
    """
    path = study.path / REPLICATES_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not all(isinstance(v, dict) and all(isinstance(r, dict) for r in v.values())
                                                 for v in data.values()):
            raise ValueError("expected a JSON object of trial number -> seed -> result")
        return {int(n): {int(s): r for s, r in v.items()} for n, v in data.items()}
    except (OSError, ValueError) as exc:
        raise StudyDirError(f"cannot read {path}: {one_line(exc)}; the replicates' results are lost: delete "
                            f"the file and `adsearch replicate {study.path}` runs them again") from None


def save_replicates(study: StudyDir, results: dict[int, dict[int, dict]]) -> None:
    """Record replicates (trial number -> seed -> the result), merged with those recorded already (a
    seed's new result replaces its old one)."""
    merged = read_replicates(study)
    for n, by_seed in results.items():
        merged[n] = {**merged.get(n, {}), **by_seed}
    study.write(REPLICATES_FILE, json.dumps({str(n): {str(s): merged[n][s] for s in sorted(merged[n])}
                                            for n in sorted(merged)}, indent=2))
