"""Whose a folder is: whether it is a study adsearch made (its marker `.adsearch-study` next to
`spec.yaml`; a study from before the marker: a `spec.yaml` that adsearch wrote), whether a spec
may run in it (`check_can_run`), and what `--fresh` may delete there (`remove`: only such a
folder, and only the files adsearch writes there, `WRITTEN`; anything else stops the deletion)."""

from __future__ import annotations

import difflib
import json
import os
import shutil

from adsearch.errors import AdsearchError, StudyDirError
from adsearch.results.lock import check_not_running, lock_pid, pid_alive
from adsearch.results.reading import collect_rows
from adsearch.results.study_dir import (
    DB_FILE, LOCK_FILE, MARKER_FILE, SPEC_FILE, SPEC_HEADER, WRITTEN, StudyDir, spec_text,
)
from adsearch.spec.study_spec import StudySpec


def start(study: StudyDir, spec: StudySpec) -> None:
    """Make a new study's folder: its spec.yaml and the marker that says adsearch made it."""
    study.path.mkdir(parents=True, exist_ok=True)
    study.write(MARKER_FILE, json.dumps({"study": spec.name, "spec_digest": spec.digest()}) + "\n")
    study.write(SPEC_FILE, f"{SPEC_HEADER}{spec.digest()}\n" + spec_text(spec))


def mark(study: StudyDir, spec: StudySpec) -> None:
    """Give a study from before the marker its marker."""
    if not study.marker_file.exists():
        study.write(MARKER_FILE, json.dumps({"study": spec.name}) + "\n")


def is_study(study: StudyDir) -> bool:
    """Whether this is a study adsearch made: its marker and spec.yaml, or (a study from
    before the marker) a spec.yaml that starts with the header adsearch writes."""
    if not study.spec_file.is_file():
        return False
    if study.marker_file.is_file():
        return True
    try:
        with study.spec_file.open() as f:
            return f.readline().startswith(SPEC_HEADER)
    except (OSError, UnicodeDecodeError):
        return False


def check_can_run(study: StudyDir, spec: StudySpec, *, fresh: bool = False) -> bool:
    """Check, before anything is written, that `spec` may run in `study`; True if a study of this
    spec is there to resume (never with `fresh`, which deletes it first).

    Raises:
        StudyDirError: the folder exists and is not a study (or, with `fresh`, is not one that
            may be deleted: see `check_removable`); its spec.yaml cannot be read.
        AdsearchError: a live process runs the study; its spec changed since it began.
    """
    if not study.path.exists():
        return False
    if not study.path.is_dir():
        raise StudyDirError(f"{study.path} is a file, not a study folder; choose another study name or --reports")
    check_not_running(study)
    if fresh:
        check_removable(study)
        return False
    if not study.spec_file.exists():
        leftovers = sorted(p.name for p in study.path.iterdir() if p.name != LOCK_FILE)
        if leftovers:
            raise StudyDirError(
                f"{study.path} exists and is not an adsearch study (it holds {', '.join(leftovers[:5])}); "
                "choose another study name or --reports directory")
        return False
    if not is_study(study):
        raise StudyDirError(f"{study.path} holds a {SPEC_FILE} that adsearch did not write (no {MARKER_FILE}), so "
                            "it is not a study to resume; choose another study name or --reports directory")
    before = study.read_spec()
    if _resumable(before).digest() != _resumable(spec).digest():
        diff = "".join(difflib.unified_diff(spec_text(before).splitlines(True), spec_text(spec).splitlines(True),
                                            f"{study.spec_file} (as started)", "the spec now"))
        raise AdsearchError(
            f"the spec changed since study {spec.name!r} began, so it cannot resume:\n{diff}"
            f"run with --fresh to start it again (deletes {study.path}), or give the study a new name")
    collect_rows(study, before)  # its baseline.json and study.db must read, before Ray starts
    return True


def _resumable(spec: StudySpec) -> StudySpec:
    """`spec` as a resume compares it: `search.scratch_controls` (whether to run the controls after the
    search) and `search.replicates` change no trial, so turning them on for a finished study runs its
    controls or replicates; nor does
    `resources.placement_timeout_s` (a study stopped by it may resume with a longer wait)."""
    return spec.model_copy(update={
        "search": spec.search.model_copy(update={"scratch_controls": "off", "replicates": 1}),
        "resources": spec.resources.model_copy(update={"placement_timeout_s": 0.0}),
    })


def foreign_entries(study: StudyDir) -> list[str]:
    """The names in `study` that adsearch does not write, sorted."""
    return sorted(p.name for p in study.path.iterdir() if not _written_by_us(p.name))


def _written_by_us(name: str) -> bool:
    return (name in WRITTEN or name.startswith(f"{DB_FILE}-")  # SQLite's -journal, -wal, -shm
            or (name.startswith(".") and name.endswith(".tmp")))  # an atomic write cut short


def check_removable(study: StudyDir) -> None:
    """Raise unless `remove` may delete this folder; nothing is touched either way.

    Raises:
        StudyDirError: it is not a study adsearch made, it holds files adsearch did not write
            (each named), or a live process runs it.
    """
    directory = study.path
    if not directory.is_dir():
        raise StudyDirError(f"{directory} is not a folder; adsearch deletes only study folders it made")
    if not is_study(study):
        held = sorted(p.name for p in directory.iterdir())
        what = f"it holds {', '.join(held[:5])}{', ...' if len(held) > 5 else ''}" if held else "it is empty"
        raise StudyDirError(
            f"{directory} is not an adsearch study (no {MARKER_FILE} and {SPEC_FILE}; {what}), so --fresh will "
            f"not delete it; move it away yourself, or give the study another name or --reports folder")
    foreign = foreign_entries(study)
    if foreign:
        raise StudyDirError(
            f"study {directory} also holds files adsearch did not write ({', '.join(foreign[:5])}"
            f"{', ...' if len(foreign) > 5 else ''}), so --fresh will not delete it; move them out of the "
            f"folder, then run again")
    pid = lock_pid(study)
    if pid is not None and pid != os.getpid() and pid_alive(pid):
        raise StudyDirError(f"study {directory} is running (pid {pid}); stop it before --fresh")


def remove(study: StudyDir) -> None:
    """Delete the study: the files adsearch wrote there, then the folder itself.

    Raises:
        StudyDirError: see `check_removable`; then nothing is deleted.
    """
    check_removable(study)
    for path in sorted(study.path.iterdir(), key=lambda p: p.name == MARKER_FILE):  # the marker last
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    study.path.rmdir()
