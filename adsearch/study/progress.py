"""What a study shows while it runs: every running trial's epoch, last accuracy and loss, size,
compression rounds, time so far and time left; the study's trials done, failures, recommended
trade-off and time left.

A trial's process writes its *live entry* (`live_entry`, a small JSON object) into the study
directory's `live/` (`records.StudyDir.save_live`) when it starts and after every epoch, and
removes it when it ends (`end_live`). A reader, in the driver or from another shell (`adsearch ls`,
`show`), turns the entries back into `LiveTrial`s. The driver keeps a `Board` (the entries read from
disk plus what only it knows: the baseline, each finished trial, the budget) and a `Monitor` shows
the board while the run lasts: a `rich.live.Live` display on a terminal, otherwise a block of plain
lines at most every `every_s` seconds, and only for trials whose epoch changed.

No Ray, no Optuna: a trial's process and the driver both use it.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from adsearch.metrics import count, finite, percent, seconds, value, widths
from adsearch.results.study_dir import LIVE_FILES
from adsearch.results.rows import TrialRow, plain
from adsearch.results.view import best_so_far, short_settings

if TYPE_CHECKING:
    from adsearch.results.study_dir import StudyDir

LABELS = {"baseline": "baseline", "search": "trial {}", "control": "control of trial {}"}
"""How each kind of live entry (`records.LIVE_FILES`) names its trial."""
SHOWN = ("accuracy", "loss", "train_loss", "params", "macs", "rounds", "widths")
"""What a live entry keeps of the trainer's per-epoch metrics (no densities, no histories)."""
QUIET_S = 600.0
"""A running trial's entry unchanged for longer than this (or three of its epochs, if longer) is
said to be quiet: its process may be gone."""


def live_entry(*, kind: str, number: int, settings: dict, epochs: int, metrics: dict | None, started: float,
               first_epoch: int = 0, now: float | None = None) -> dict:
    """The live entry a trial's process writes (`StudyDir.save_live`) when it starts (`metrics`
    None: epoch 0) and after every epoch.

    Args:
        kind: 'baseline', 'search' (trial `number` of the search) or 'control' (the scratch
            control of trial `number`).
        settings: the searched values, by dotted spec path ({} for the baseline).
        epochs: the epochs the trial trains in all.
        metrics: the trainer's per-epoch results (`epoch`, `accuracy`, `loss`, `params`, `rounds`,
            `widths`, ...), or None before the first epoch.
        started: when the trial's process began (`time.time()`).
        first_epoch: the epoch it resumed from (0 for a fresh start). Epochs before it, and those
            taken from the prefix cache (`shared_epochs`), were not trained here, so the time left
            is estimated from the epochs after it only.
        now: the time of the entry (default: now).

    Raises:
        ValueError: an unknown `kind`.
    """
    if kind not in LIVE_FILES:
        raise ValueError(f"a live entry's kind must be one of {', '.join(map(repr, LIVE_FILES))}, got {kind!r}")
    metrics = metrics or {}
    epoch = int(metrics.get("epoch") or 0)
    shared = metrics.get("shared_epochs")
    first = max(first_epoch, int(shared) if finite(shared) else 0)
    return plain({"kind": kind, "number": number, "settings": dict(settings), "epochs": epochs, "epoch": epoch,
                  "first_epoch": min(first, epoch), "started": started,
                  "updated": time.time() if now is None else now, **{k: metrics.get(k) for k in SHOWN}})


@dataclass(frozen=True)
class LiveTrial:
    """A running trial as its live entry says, seen at time `now`."""

    kind: str
    number: int
    settings: dict
    epochs: int
    epoch: int
    """The last epoch finished (0: none yet)."""
    first_epoch: int
    started: float
    updated: float
    """When the entry was written."""
    now: float
    accuracy: float | None = None
    loss: float | None = None
    params: float | None = None
    rounds: int | None = None
    widths: list[int] | None = None

    @classmethod
    def from_entry(cls, entry: dict, now: float | None = None) -> LiveTrial:
        """The trial of a live entry (`live_entry`), seen at `now` (default: now).

        Raises:
            ValueError: not a live entry (a kind, number or time missing or of the wrong type).
        """
        try:
            kind = entry["kind"]
            if kind not in LABELS:
                raise ValueError(f"unknown kind {kind!r}")
            return cls(kind=kind, number=int(entry["number"]), settings=dict(entry.get("settings") or {}),
                       epochs=int(entry["epochs"]), epoch=int(entry.get("epoch") or 0),
                       first_epoch=int(entry.get("first_epoch") or 0), started=float(entry["started"]),
                       updated=float(entry["updated"]), now=time.time() if now is None else now,
                       accuracy=_number(entry.get("accuracy")), loss=_number(entry.get("loss")),
                       params=_number(entry.get("params")), rounds=_number(entry.get("rounds")),
                       widths=entry.get("widths") if isinstance(entry.get("widths"), list) else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a live entry ({exc}): {entry!r:.200}") from None

    @property
    def key(self) -> tuple[str, int]:
        return self.kind, self.number

    @property
    def label(self) -> str:
        """'baseline', 'trial 3', 'control of trial 3'."""
        return LABELS[self.kind].format(self.number)

    @property
    def elapsed_s(self) -> float:
        """Time since the trial's process began."""
        return max(0.0, self.now - self.started)

    @property
    def epoch_s(self) -> float | None:
        """Seconds per epoch trained in this process (setup included); None before its first."""
        trained = self.epoch - self.first_epoch
        return (self.updated - self.started) / trained if trained > 0 else None

    @property
    def left_s(self) -> float | None:
        """The estimated time left: its epochs to go at `epoch_s` each, less the time since the last
        one; None before the first epoch trained in this process."""
        if self.epoch_s is None:
            return None
        return max(0.0, self.epoch_s * (self.epochs - self.epoch) - max(0.0, self.now - self.updated))

    @property
    def quiet_s(self) -> float:
        """Time since the entry was last written."""
        return max(0.0, self.now - self.updated)

    @property
    def quiet(self) -> bool:
        """Whether the entry has not changed for long (`QUIET_S`, or three epochs if longer): the
        trial's process may have died without removing it."""
        return self.quiet_s > max(QUIET_S, 3 * (self.epoch_s or 0.0))

    @property
    def progress(self) -> str:
        """'trial 3 epoch 5/20'."""
        return f"{self.label} epoch {self.epoch}/{self.epochs}"

    def results(self) -> str:
        """'accuracy 91.2%, loss 0.312, params 115k, rounds 1' (what it has; widths without params)."""
        parts = [f"accuracy {percent(self.accuracy)}" if self.accuracy is not None else "",
                 f"loss {value(self.loss)}" if self.loss is not None else "",
                 f"params {count(self.params)}" if self.params is not None else
                 f"widths {widths(self.widths)}" if self.widths else "",
                 f"rounds {value(self.rounds)}" if self.rounds is not None else ""]
        return ", ".join(p for p in parts if p)

    def _head(self) -> str:
        return self.label + (f" ({short_settings(self.settings)})" if self.settings else "")

    def text(self) -> str:
        """The trial while it runs: 'trial 3 (target_density=0.5): epoch 5/20, accuracy 91.2%, loss
        0.312, params 115k, rounds 1; 1m 40s so far, about 5m 00s left'."""
        so_far = f"{seconds(self.elapsed_s)} so far"
        if self.epoch == 0:
            return f"{self._head()}: starting, {self.epochs} epochs; {so_far}"
        results = self.results()
        return (f"{self._head()}: epoch {self.epoch}/{self.epochs}{', ' + results if results else ''}; {so_far}, "
                f"{left_text(self.left_s)}")

    def line(self) -> str:
        """The plain line a study prints for it: '  running ' and `text()`."""
        return f"  running {self.text()}"

    def stopped_text(self) -> str:
        """The trial as a stopped run left it: 'trial 3 (target_density=0.5): stopped at epoch 5 of
        20, accuracy 91.2%, ...; last update 2h 03m ago'."""
        results = self.results() if self.epoch else ""
        return (f"{self._head()}: stopped at epoch {self.epoch} of {self.epochs}{', ' + results if results else ''}; "
                f"last update {seconds(self.quiet_s)} ago")


def _number(v) -> float | None:
    return v if finite(v) else None


def left_text(left_s: float | None) -> str:
    """'about 5m 00s left', or 'time left unknown' (None)."""
    return f"about {seconds(left_s)} left" if left_s is not None else "time left unknown"


_ORDER = {kind: i for i, kind in enumerate(LABELS)}


def live_trials(entries: Iterable[dict], now: float | None = None) -> list[LiveTrial]:
    """The trials of `entries` (`StudyDir.read_live`) seen at `now`: the baseline, then the search
    trials, then the controls, each by number; an entry that is not one is skipped."""
    now = time.time() if now is None else now
    trials = []
    for entry in entries:
        try:
            trials.append(LiveTrial.from_entry(entry, now))
        except ValueError:
            continue
    return sorted(trials, key=lambda t: (_ORDER[t.kind], t.number))


# --- the study while it runs -------------------------------------------------------------------


@dataclass
class Board:
    """What the live display shows: the running trials (from their live entries, `update`) and
    what the driver tells it: the baseline (`set_baseline`), each finished search trial
    (`finished`) and the budget (`totals`). Safe to use from the driver and the monitor's thread."""

    max_drop: float
    """`report.max_accuracy_drop`, for the recommended trade-off (`view.best_so_far`)."""
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
        """The running trials from their live entries (`StudyDir.read_live`); an entry of a trial
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
            best = best_so_far(self.baseline, self.rows, self.max_drop) or (
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
        entries = self.study_dir.read_live()
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

