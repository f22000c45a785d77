"""What Ray Tune calls back in the process driving a study, and what those callbacks report to.

`DRIVER` is the one driver of this process: where the callbacks' lines go and which live board
they update (`Live` says how a study shows its running trials). The callbacks: `SearchProgress`
(a line per finished search trial), `ControlProgress` (a line per finished scratch control) and
`PlacementWait` (stops a run whose first trial is not placed in time).
"""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ray import tune
from rich.console import Console

from adsearch.errors import one_line
from adsearch.report.text import progress_line
from adsearch.results.rows import STOPPED_AT, TrialRow, baseline_row
from adsearch.results.live import clear_live
from adsearch.results.study_dir import StudyDir
from adsearch.results.view import best_so_far
from adsearch.spec.study_spec import StudySpec
from adsearch.study.disk import DiskEstimate, is_write_failure
from adsearch.study.progress import Board, Monitor
from adsearch.study.scratch import completed, control_line, failed
from adsearch.study.searcher import TRIAL_KEY, finished_count, stopped_epoch


@dataclass
class Live:
    """How a study shows its running trials: on `console`, live where it is a terminal, else as plain
    lines at most every `every_s` seconds (`adsearch.study.progress.Monitor`)."""

    console: Console
    every_s: float = 30.0


class _Driver:
    """What the Ray Tune callbacks running in this process report to: the running study's `say`, and
    why a run stopped before any trial was placed. Ray pickles callbacks with its experiment and
    unpickles them when a study resumes, so they keep no console of their own and look here."""

    def __init__(self):
        self.say: Callable[[str], None] = print
        self.board: Board | None = None
        """The live display's board (`adsearch.study.progress`), while one is shown."""
        self.placement_timeout_s: float | None = None
        """How long the run now fitting waits for its first trial to be placed (None: for ever)."""
        self.unplaced = False
        """Whether it stopped for that."""
        self.write_failure: str | None = None
        """The error of a trial of that run that could not write its files (it stopped for that)."""
        self.disk: tuple[Path, DiskEstimate | None] = (Path("."), None)
        """The running study's folder and what it writes there (`adsearch.study.disk`)."""

    @contextlib.contextmanager
    def driving(self, spec: StudySpec, study: StudyDir, say: Callable[[str], None], live: Live | None,
                estimate: DiskEstimate | None = None):
        """While a study runs in this process: its callbacks' lines go to `say`; with `live`, the running
        trials are shown as `live` says (`adsearch.study.progress.Monitor`), from entries cleared first (those a
        killed run left); `estimate` is what it writes (for the error of a full disk)."""
        before, self.say = self.say, say
        self.disk = (study.path, estimate)
        clear_live(study)
        try:
            if live is None:
                yield
                return
            self.board = Board(spec.report.max_accuracy_drop, spec.report.size_tolerance)
            with Monitor(study, self.board, console=live.console, terminal=live.console.is_terminal,
                         every_s=live.every_s, say=say):
                yield
        finally:
            self.say, self.board = before, None


DRIVER = _Driver()
"""The driver of this process (the only one: the callbacks find it by this name)."""


class SearchProgress(tune.Callback):
    """Prints a line per finished trial: done/total and the current recommended trade-off."""

    stops = False
    """Whether the study stops trials early (`search.early_stop`): a finished trial is then looked up
    in the storage for its stop."""

    def __init__(self, total: int, baseline: dict | None, max_drop: float, url: str, study_name: str, *,
                 size_tolerance: float, stops: bool = False):
        self.total, self.max_drop, self.size_tolerance, self.stops = total, max_drop, size_tolerance, stops
        self.url, self.study_name = url, study_name
        self.baseline = baseline_row(baseline) if baseline else None
        self.rows: list[TrialRow] = []

    def _line(self, trial, state: str, error: str = "") -> None:
        config = dict(trial.config or {})
        number = config.pop(TRIAL_KEY, len(self.rows))
        result = dict(trial.last_result or {})
        epoch = stopped_epoch(self.url, self.study_name, number) if self.stops and state == "COMPLETE" else None
        if epoch is not None:  # early stopping stopped it (`early_stop`)
            state, result[STOPPED_AT] = "PRUNED", epoch
        row = TrialRow.from_result(number, result, state=state, error=error, settings=config)
        self.rows.append(row)
        if DRIVER.board is not None:
            DRIVER.board.finished(row)
        done = max(len(self.rows), finished_count(self.url, self.study_name))  # counts those before a resume
        DRIVER.say(progress_line(row, done=done, total=self.total,
                                 best=best_so_far(self.baseline, self.rows, self.max_drop,
                                                   size_tolerance=self.size_tolerance)))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trial, "COMPLETE")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, "FAIL", _trial_error(trial))


class ControlProgress(tune.Callback):
    """Says each control's result as it finishes (`scratch.control_line`)."""

    def __init__(self, rows: list[TrialRow], match: str = "epochs"):
        self.rows = {r.number: r for r in rows}
        self.match = match

    def _line(self, trial, control: dict) -> None:
        row = self.rows.get((trial.config or {}).get(TRIAL_KEY))
        if row is not None:
            DRIVER.say(control_line(row, control, self.match))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trial, completed(trial.last_result or {}))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, failed((trial.last_result or {}).get("error") or _trial_error(trial)))


class ReplicateProgress(tune.Callback):
    """Says each replicate's result as it finishes, in the words of `line(row, seed, result)`
    (`replicates.replicate_line`); `jobs` maps the Ray trial's `TRIAL_KEY` to (the trial's row, the seed)."""

    def __init__(self, jobs: dict[int, tuple[TrialRow, int]], line: Callable[[TrialRow, int, dict], str]):
        self.jobs, self.line = jobs, line

    def _line(self, trial, result: dict) -> None:
        job = self.jobs.get((trial.config or {}).get(TRIAL_KEY))
        if job is not None:
            DRIVER.say(self.line(*job, result))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trial, completed(trial.last_result or {}))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, failed((trial.last_result or {}).get("error") or _trial_error(trial)))


class PlacementWait(tune.Stopper, tune.Callback):
    """Stops a run whose first trial is not placed within `DRIVER.placement_timeout_s`
    (`resources.placement_timeout_s`: a cluster with no node that has `resources.per_trial`, waiting
    for an autoscaler), and tells `DRIVER`. A run restored from its snapshot waits afresh, as long
    as the spec it resumes with says."""

    def __init__(self):
        self._since: float | None = None
        self._placed = False

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()

    def __call__(self, trial_id, result) -> bool:
        return False

    def on_trial_start(self, iteration, trials, trial, **info):
        self._placed = True

    def on_trial_error(self, iteration, trials, trial, **info):
        """A trial that could not write its files (a full disk) stops the run as Ctrl-C does: the
        others would fail the same way, and it is no failure of the trial's (`Searcher` leaves it
        to run again)."""
        error = (trial.last_result or {}).get("error") or _trial_error(trial)
        if DRIVER.write_failure is None and is_write_failure(error):
            DRIVER.write_failure = error
            if callable(signal.getsignal(signal.SIGUSR1)):  # Tune's graceful stop (see stop_all)
                signal.raise_signal(signal.SIGUSR1)

    def stop_all(self) -> bool:
        if self._placed or DRIVER.unplaced or DRIVER.placement_timeout_s is None:
            return False
        now = time.monotonic()
        self._since = self._since or now
        if now - self._since < DRIVER.placement_timeout_s:
            return False
        DRIVER.unplaced = True
        # Returning True would end the trials (a resume would not go on with them): end the run as
        # Ctrl-C does instead. Tune treats SIGUSR1 as its first SIGINT where it installed its
        # handler (this, the main thread); never raise it where the default (exit) would act.
        if not callable(signal.getsignal(signal.SIGUSR1)):
            raise _Unplaced("no trial placed within resources.placement_timeout_s")
        signal.raise_signal(signal.SIGUSR1)
        return False


class _Unplaced(RuntimeError):
    """`PlacementWait` ends a Tune run it cannot stop gracefully (Tune not in the main thread)."""


def _trial_error(trial) -> str:
    """The exception a Ray trial ended with, as one line."""
    try:
        error = trial.get_pickled_error() or trial.get_error()
    except Exception:  # noqa: BLE001 - best effort: the error file may be unreadable
        error = None
    return one_line(error) if error else "unknown error"
