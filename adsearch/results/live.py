"""The running trials as a study directory holds them: one *live entry* per trial in `live/`.

A trial's process writes its live entry (`live_entry`, a small JSON object: its epoch, last
accuracy and loss, size, compression rounds, times) into the study's `live/` (`save_live`) when it
starts and after every epoch, and removes it when it ends (`end_live`). A reader, in the driver or
from another shell (`adsearch ls`, `show`), reads the entries back (`read_live`) and turns them into
`LiveTrial`s (`live_trials`): what each says of its trial, its time so far and time left.

No Ray, no Optuna: a trial's process and the driver both use it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from adsearch.metrics import count, finite, percent, seconds, value, widths
from adsearch.results.rows import plain
from adsearch.results.study_dir import StudyDir, atomic_write
from adsearch.results.texts import short_settings

LIVE_FILES = {"baseline": "baseline.json", "search": "trial-{}.json", "control": "control-{}.json",
              "compute control": "compute-control-{}.json", "replicate": "replicate-{}.json"}
"""A live entry's file in `live/` by the entry's kind (the baseline, search trial N, the scratch
controls of trial N at equal epochs and at equal compute, a replicate of trial N: its seed in its
settings and its file name, `replicate-3-s1.json`), formatted with its trial number."""
LABELS = {"baseline": "baseline", "search": "trial {}", "control": "control of trial {}",
          "compute control": "equal-compute control of trial {}", "replicate": "replicate of trial {}"}
"""How each kind of live entry (`LIVE_FILES`) names its trial."""
SHOWN = ("accuracy", "loss", "train_loss", "params", "macs", "rounds", "widths")
"""What a live entry keeps of the trainer's per-epoch metrics (no densities, no histories)."""
QUIET_S = 600.0
"""A running trial's entry unchanged for longer than this (or three of its epochs, if longer) is
said to be quiet: its process may be gone."""


def live_entry(*, kind: str, number: int, settings: dict, epochs: int, metrics: dict | None, started: float,
               first_epoch: int = 0, now: float | None = None) -> dict:
    """The live entry a trial's process writes (`save_live`) when it starts (`metrics`
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
    """The trials of `entries` (`read_live`) seen at `now`: the baseline, then the search
    trials, then the controls, each by number; an entry that is not one is skipped."""
    now = time.time() if now is None else now
    trials = []
    for entry in entries:
        try:
            trials.append(LiveTrial.from_entry(entry, now))
        except ValueError:
            continue
    return sorted(trials, key=lambda t: (_ORDER[t.kind], t.number))


# --- the entries in live/ ------------------------------------------------------------------------


def live_file(study: StudyDir, kind: str, number: int, seed: int | None = None) -> Path:
    """Where the live entry of trial `number` of `kind` ('baseline', 'search', 'control', ...) is kept:
    live/baseline.json, live/trial-3.json, live/control-3.json; a replicate's with its `seed`,
    live/replicate-3-s1.json (the baseline's: replicate--1-s1.json).

    Raises:
        ValueError: an unknown kind.
    """
    if kind not in LIVE_FILES:
        raise ValueError(f"a live entry's kind must be one of {', '.join(map(repr, LIVE_FILES))}, got {kind!r}")
    name = LIVE_FILES[kind].format(number)
    return study.live_dir / (name.replace(".json", f"-s{seed}.json") if seed is not None else name)


def save_live(study: StudyDir, entry: dict) -> None:
    """Write a running trial's live entry (`live_entry`) atomically, replacing its last one; the
    file is named by the entry's `kind`, `number` and any `seed` in its settings (`live_file`)."""
    atomic_write(live_file(study, entry["kind"], entry["number"], (entry.get("settings") or {}).get("seed")),
                 json.dumps(entry))


def end_live(study: StudyDir, kind: str, number: int, seed: int | None = None) -> None:
    """Remove the live entry of a trial that ended (complete or failed); none there is fine."""
    live_file(study, kind, number, seed).unlink(missing_ok=True)


def clear_live(study: StudyDir) -> None:
    """Remove every live entry (and any write of one cut short): a run starting calls it, so the
    entries a stopped run left behind do not read as running trials."""
    if not study.live_dir.is_dir():
        return
    for path in study.live_dir.iterdir():
        if path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)


def read_live(study: StudyDir) -> list[dict]:
    """The live entries in `live/`, by file name; a file that cannot be read or is not a JSON
    object (one being replaced, a torn one) is skipped, so this never raises."""
    try:
        paths = sorted(study.live_dir.glob("*.json"))
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
