"""Which process runs a study: the pid in its `.lock`, written while a run holds the lock (`lock`)
and taken over when its process is gone. `owner` is the live process running the study, if any."""

from __future__ import annotations

import contextlib
import os
import re

from adsearch.errors import AdsearchError
from adsearch.results.study_dir import StudyDir


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def lock_pid(study: StudyDir) -> int | None:
    """The pid written in the study's `.lock`, or None without a (readable) lock."""
    try:
        text = study.lock_file.read_text()
    except OSError:
        return None
    match = re.search(r"\d+", text)
    return int(match.group()) if match else None


def owner(study: StudyDir) -> int | None:
    """The pid of the live process running the study, or None."""
    pid = lock_pid(study)
    return pid if pid is not None and pid_alive(pid) else None


def check_not_running(study: StudyDir) -> None:
    """Raise `AdsearchError` if another live process runs this study."""
    running = owner(study)
    if running is not None and running != os.getpid():
        raise AdsearchError(f"study {study.path} is already running (pid {running}); wait for it to finish or "
                            f"stop it (kill {running}), then `adsearch resume {study.path}`")


@contextlib.contextmanager
def lock(study: StudyDir):
    """Hold the study's `.lock` (our pid) while it runs; a stale lock is taken over."""
    while True:
        try:
            fd = os.open(study.lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            check_not_running(study)
            study.lock_file.unlink(missing_ok=True)  # stale: its process is gone
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")
    try:
        yield
    finally:
        study.lock_file.unlink(missing_ok=True)
