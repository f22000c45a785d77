"""What a study shows while it runs: every running trial's epoch, last accuracy and loss, size,
compression rounds, time so far and time left; the study's trials done, failures, recommended
trade-off and time left.

The running trials come from their live entries in the study's `live/` (`adsearch.results.live`).
The driver keeps a `Board` (the entries read from disk plus what only it knows: the baseline, each
finished trial, the budget) and a `Monitor` shows the board while the run lasts: a `rich.live.Live`
display on a terminal, otherwise a block of plain lines at most every `every_s` seconds, and only
for trials whose epoch changed.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from adsearch.metrics import count, percent, seconds, value, widths
from adsearch.results.live import LiveTrial, left_text, live_trials, read_live
from adsearch.results.rows import TrialRow
from adsearch.results.study_dir import StudyDir
from adsearch.results.texts import short_settings
from adsearch.results.view import best_so_far


# --- the study while it runs -------------------------------------------------------------------


@dataclass
class Board:
    """What the live display shows: the running trials (from their live entries, `update`) and
    what the driver tells it: the baseline (`set_baseline`), each finished search trial
    (`finished`) and the budget (`totals`). Safe to use from the driver and the monitor's thread."""

    max_drop: float
    """`report.max_accuracy_drop`, for the recommended trade-off (`view.best_so_far`)."""
    size_tolerance: float
    """`report.size_tolerance`, the same."""
    total: int = 0
    done_before: int = 0
    failed_before: int = 0
    concurrent: int = 1
    baseline: TrialRow | None = None
    rows: list[TrialRow] = field(default_factory=list)
    """The search trials finished in this run."""
    running: list[LiveTrial] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False, compare=False)

    # --- what the driver says --------------------------------------------------------------------

    def set_baseline(self, row: TrialRow | None) -> None:
        """The finished baseline (None: none, or not yet)."""
        with self._lock:
            self.baseline = row

    def finished(self, row: TrialRow) -> None:
        """A search trial finished, complete or failed."""
        with self._lock:
            self.rows.append(row)
            self.running = [t for t in self.running if not self._ended(t)]

    def totals(self, total: int, done_before: int = 0, concurrent: int = 1, failed_before: int = 0) -> None:
        """The budget (`total` trials), those finished before this run (`done_before`, of which
        `failed_before` failed) and how many trials run at once."""
        with self._lock:
            self.total, self.done_before, self.failed_before = total, done_before, failed_before
            self.concurrent = max(1, concurrent)

    def update(self, entries: Iterable[dict], now: float | None = None) -> None:
        """The running trials from their live entries (`live.read_live`); an entry of a trial
        already finished (its process has not removed it yet) is left out."""
        trials = live_trials(entries, now)
        with self._lock:
            self.running = [t for t in trials if not self._ended(t)]

    def _ended(self, trial: LiveTrial) -> bool:
        if trial.kind == "baseline":
            return self.baseline is not None
        return trial.kind == "search" and any(r.number == trial.number and not r.is_baseline for r in self.rows)

    # --- the study -----------------------------------------------------------------------------

    @property
    def done(self) -> int:
        """Search trials of the budget finished, before this run and in it."""
        with self._lock:
            return self.done_before + sum(r.in_budget for r in self.rows)

    @property
    def failed(self) -> int:
        with self._lock:
            return self.failed_before + sum(r.in_budget and r.state == "FAIL" for r in self.rows)

    def trial_s(self) -> float | None:
        """A search trial's expected duration: the mean of the finished ones (the time the study
        spent on each), else of the running ones' estimates (epochs x seconds per epoch), else
        the baseline's; None with nothing to go on."""
        with self._lock:
            spent = [_spent(r) for r in self.rows if r.in_budget]
            spent = [s for s in spent if s is not None]
            if spent:
                return sum(spent) / len(spent)
            guesses = [t.epoch_s * t.epochs for t in self.running if t.kind != "baseline" and t.epoch_s is not None]
            if guesses:
                return sum(guesses) / len(guesses)
            if self.baseline is not None and (s := _spent(self.baseline)) is not None:
                return s
            base = next((t for t in self.running if t.kind == "baseline" and t.epoch_s is not None), None)
            return base.epoch_s * base.epochs if base is not None else None

    def left_s(self) -> float | None:
        """The study's estimated time left: the running baseline's time left, then the running and
        waiting trials (`total` - done - running, each `trial_s`) shared out over `concurrent`
        slots, each taking the next trial as it frees up; None when it cannot be estimated."""
        with self._lock:
            baseline = next((t for t in self.running if t.kind == "baseline"), None)
            others = [t for t in self.running if t.kind != "baseline"]
            waiting = max(0, self.total - self.done - len(others))
            per_trial = self.trial_s()
            first = 0.0
            if baseline is not None:
                first = baseline.left_s
                if first is None:
                    return None
            lefts = [t.left_s if t.left_s is not None else per_trial for t in others]
            if None in lefts or (waiting and per_trial is None):
                return None
            return first + _finish(lefts, waiting, per_trial or 0.0, self.concurrent)

    def study_line(self) -> str:
        """'  study: 3/8 trials done, 1 failed, 2 running; recommended so far: 97.5% at 10.0x fewer
        params; about 13m 00s left'."""
        with self._lock:
            parts = [f"{self.done}/{self.total} trials done"] if self.total or self.done else []
            if self.failed:
                parts.append(f"{self.failed} failed")
            if any(t.kind == "baseline" for t in self.running):
                parts.append("baseline running")
            others = sum(t.kind != "baseline" for t in self.running)
            if others:
                parts.append(f"{others} running")
            best = best_so_far(self.baseline, self.rows, self.max_drop, size_tolerance=self.size_tolerance) or (
                "none until the baseline is done" if any(t.kind == "baseline" for t in self.running)
                else "none without a baseline")
            left = left_text(self.left_s()) if self.running or self.done < self.total else ""
            return "  study: " + "; ".join(p for p in (", ".join(parts), f"recommended so far: {best}", left) if p)

    def renderable(self) -> Group:
        """The board for `rich.live.Live`: a table of the running trials, then the study line."""
        with self._lock:
            study = Text(self.study_line().strip())
            if not self.running:
                return Group(study)
            table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
            for name, justify in (("trial", "left"), ("settings", "left"), ("epoch", "right"), ("accuracy", "right"),
                                  ("loss", "right"), ("params", "right"), ("rounds", "right"), ("so far", "right"),
                                  ("left", "right")):
                table.add_column(name, justify=justify, overflow="fold")
            for t in self.running:
                size = count(t.params) if t.params is not None else widths(t.widths)
                table.add_row(*map(Text, (
                    t.label, short_settings(t.settings), f"{t.epoch}/{t.epochs}",
                    percent(t.accuracy) if t.epoch else "—", value(t.loss) if t.epoch else "—", size,
                    value(t.rounds), seconds(t.elapsed_s), seconds(t.left_s))))
            return Group(table, study)


def _spent(row: TrialRow) -> float | None:
    """What the study spent on a finished trial, in seconds (with the prefix cache less than its wall time)."""
    for key in ("spent_s", "wall_s"):
        v = row.metric(key)
        if v is not None and v >= 0:
            return v
    return None


def _finish(lefts: Sequence[float], waiting: int, per_trial: float, slots: int) -> float:
    """When the last trial ends if each of `slots` slots finishes its running trial (`lefts`), then
    takes the next of `waiting` trials of `per_trial` seconds each, as it frees up."""
    free = sorted(lefts) + [0.0] * max(0, slots - len(lefts))
    heapq.heapify(free)
    for _ in range(waiting):
        heapq.heappush(free, heapq.heappop(free) + per_trial)
    return max(free, default=0.0)


# --- the display -------------------------------------------------------------------------------


class Monitor:
    """Shows `board` while a run lasts (a context manager): a daemon thread reads the study's live
    entries every `poll_s` seconds (`poll`) and

    - on a terminal (`terminal`), redraws a `rich.live.Live` display on `console` (the driver's
      lines printed through the same console appear above it; it is removed on exit);
    - otherwise prints through `say` a block: a line for each trial whose epoch changed since it
      was last printed, then the study line; at most one block every `every_s` seconds, none
      while no epoch changes.

    The thread never raises (a failed read or print is skipped) and nothing is shown after exit,
    also when the run ends with an exception or Ctrl-C. `say` is used only off a terminal; `clock`
    (`time.monotonic`) is what `every_s` is measured on.
    """

    def __init__(self, study_dir: StudyDir, board: Board, *, console: Console | None = None, terminal: bool,
                 every_s: float, poll_s: float = 1.0, say: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic):
        self.study_dir, self.board = study_dir, board
        self.console, self.terminal, self.every_s, self.poll_s, self.say = console, terminal, every_s, poll_s, say
        self.clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stopped = True
        self._thread: threading.Thread | None = None
        self._live: Live | None = None
        self._printed: dict[tuple[str, int], int] = {}
        self._last_block: float | None = None

    def __enter__(self) -> Monitor:
        self._stop.clear()
        self._stopped, self._printed, self._last_block = False, {}, None
        if self.terminal:
            self._live = Live(self.board.renderable(), console=self.console or Console(), auto_refresh=False,
                              transient=True)
            self._live.start()
        self._poll_quietly()
        self._thread = threading.Thread(target=self._run, name="adsearch-live", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:  # a poll under way ends first; none shows anything after this
            self._stopped = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._poll_quietly()

    def _poll_quietly(self) -> None:
        try:
            self.poll()
        except Exception:  # noqa: BLE001 - the display must never stop the study; the next poll tries again
            pass

    def poll(self) -> None:
        """Read the live entries once and show them: redraw the terminal display, or print a block
        if one is due. The thread calls it every `poll_s` seconds; nothing happens after exit."""
        entries = read_live(self.study_dir)
        with self._lock:
            if self._stopped:
                return
            self.board.update(entries)
            if self._live is not None:
                self._live.update(self.board.renderable(), refresh=True)
            else:
                self._print_block(self.clock())

    def _print_block(self, at: float) -> None:
        running = self.board.running
        self._printed = {k: e for k, e in self._printed.items() if any(t.key == k for t in running)}
        changed = [t for t in running if self._printed.get(t.key) != t.epoch]
        if not changed or (self._last_block is not None and at - self._last_block < self.every_s):
            return
        self._last_block = at
        self._printed.update({t.key: t.epoch for t in changed})
        for line in [t.line() for t in changed] + [self.board.study_line()]:
            self.say(line)

