"""A trial as every reader of a study sees it: one typed row, built only here.

A `TrialRow` holds what identifies a trial (number, role, state, error), what was searched
(`settings`: spec path -> value as the spec writes it), what it measured (`metrics`, keyed by
`adsearch.metrics.METRICS`), its widths, and its traces (per-epoch `history`, `compressions`).
Rows are made from what a study records: the baseline's `baseline.json` (`baseline_row`) and
each Optuna trial of `study.db` (`search_row`); the report, `show`, `ls` and export only read them.
`flat()` is the one place the `param:<path>` columns of `trials.csv` are made.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from adsearch.metrics import METRICS, accuracy_interval, finite
from adsearch.spec.space import decode_choice
from adsearch.spec.study_spec import StudySpec

SHAPE = ("widths", "base_widths", "gpu_ids", "correct")
"""What a trial records besides its metrics: its final widths, the base spec's, the GPUs it ran on,
and which test samples it got right (`adsearch.correctness.record`: not in the CSVs)."""
TRACE = ("history", "compressions")
"""Per-trial traces: per-epoch records and compression rounds (in the HTML report, not the CSVs)."""
RECORDED = (*METRICS, *SHAPE)
"""The result keys kept per trial (Optuna user attributes, `baseline.json`, then trials.csv)."""
FINISHED = ("COMPLETE", "FAIL")
REPEAT_OF = "repeat_of"
"""A repeat's record of the earlier trial whose parameters it repeats (a repeat is not in the budget)."""
STOPPED_AT = "stopped_at"
"""A trial early stopping stopped (`search.early_stop`): the epoch it stopped after (its state is PRUNED)."""
SEARCH_ENDED = "search_ended"
"""The Optuna study's record of why its search ended before the budget (an exhausted space)."""
BASELINE = -1
"""The baseline's trial number."""


@dataclass
class TrialRow:
    """One trial of a study: the baseline (number -1) or a search trial."""

    number: int
    role: str = "search"
    """'baseline' or 'search'."""
    state: str = "COMPLETE"
    """Optuna's: COMPLETE, FAIL, RUNNING, WAITING, PRUNED."""
    error: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    """The searched values, by spec path (lists as lists); empty for the baseline."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Values of `METRICS` the trial reported (missing while it has not)."""
    widths: list[int] | None = None
    base_widths: list[int] | None = None
    gpu_ids: list[str] | None = None
    correct: str | None = None
    """Which test samples the trial got right (`adsearch.correctness.record`), for paired tests; None
    for a trial recorded before they were kept."""
    history: list[dict] = field(default_factory=list)
    compressions: list[dict] = field(default_factory=list)
    scratch: dict[str, Any] | None = None
    """The trial's scratch control at equal epochs, once run: its final widths trained from the start
    with the same recipe and epochs, no pruning (`METRICS` keys: accuracy, top5, loss, params, macs,
    train_macs, wall_s, ..., and `correct`). None when no control was run for it."""
    replicates: dict[int, dict[str, Any]] = field(default_factory=dict)
    """The trial trained again with other seeds (`search.replicates`, `adsearch replicate`): seed -> what
    was recorded of it (as a scratch control: `state`, metrics, widths, `correct`)."""
    seeds: dict[int, float] = field(default_factory=dict)
    """On the row the report shows for a replicated trial (`results.seeds.mean_row`): its accuracy by
    seed, its own first; its metrics are then means over them. Empty otherwise."""
    seed_correct: dict[int, str] = field(default_factory=dict)
    """On that row: its correct test samples by seed (`correct` is its first seed's)."""
    stopped_at: int | None = None
    """The epoch after which early stopping stopped the trial (`search.early_stop`; state PRUNED), its
    metrics those of that epoch; None for a trial it did not stop."""
    scratch_compute: dict[str, Any] | None = None
    """Its scratch control at equal compute, once run: the same, trained for as many epochs as bring its
    training MACs nearest the trial's (its `epoch` says how many). None when none was run."""

    def control(self, match: str) -> dict[str, Any] | None:
        """The trial's scratch control matched on `match`: 'epochs' (`scratch`) or 'compute' (`scratch_compute`)."""
        return self.scratch if match == "epochs" else self.scratch_compute if match == "compute" else None

    @property
    def is_baseline(self) -> bool:
        return self.role == "baseline"

    @property
    def label(self) -> str:
        """'baseline' or the trial number, as every view names a trial."""
        return "baseline" if self.is_baseline else str(self.number)

    @property
    def complete(self) -> bool:
        return self.state == "COMPLETE"

    @property
    def state_text(self) -> str:
        """The state as tables show it: Optuna's, or 'stopped@E' for a trial early stopping stopped after epoch E."""
        return f"stopped@{self.stopped_at}" if self.stopped else self.state

    @property
    def stopped(self) -> bool:
        """Stopped early by `search.early_stop`: finished, but not a point of the front."""
        return self.state == "PRUNED" and self.stopped_at is not None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED or self.stopped

    @property
    def is_repeat(self) -> bool:
        """A parameter set proposed again, told the earlier trial's result without training."""
        return self.metric(REPEAT_OF) is not None

    @property
    def in_budget(self) -> bool:
        """A search trial that counts towards `search.trials` once finished: not the baseline, not a repeat."""
        return not self.is_baseline and not self.is_repeat

    def metric(self, name: str):
        """The value of metric `name`, or None if the trial has none (NaN counts as none)."""
        v = self.metrics.get(name)
        return v if v is None or not isinstance(v, float) or math.isfinite(v) else None

    def has(self, name: str) -> bool:
        """Whether the trial has a finite value for metric `name`."""
        return finite(self.metrics.get(name))

    def flat(self, space: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
        """The row as one flat mapping, as trials.csv writes it: number, role, state, error, one
        `param:<path>` per searched path (those of `space` first), the metrics, the widths."""
        paths = [*space, *(p for p in self.settings if p not in space)]
        metrics = {}
        for k in METRICS:
            metrics[k] = self.metrics.get(k)
            if k == "accuracy":  # its 95% interval beside it; over several seeds, their number and spread
                metrics["accuracy_low"], metrics["accuracy_high"] = self.accuracy_interval
                metrics["seeds"], metrics["accuracy_std"] = len(self.seeds) or None, self.accuracy_std
        return {"number": self.number, "role": self.role, "state": self.state, "error": self.error,
                **{f"param:{p}": self.settings.get(p) for p in paths}, **metrics, "stopped_at": self.stopped_at,
                "gpu_ids": self.gpu_ids, "widths": self.widths, "base_widths": self.base_widths}

    @property
    def accuracy_interval(self) -> tuple[float, float]:
        """The 95% Wilson interval of the accuracy on its `test_samples` (NaNs without them: a study
        recorded before they were; and for a mean over seeds, whose spread is `accuracy_std`)."""
        if self.seeds:
            return math.nan, math.nan
        return accuracy_interval(self.metrics.get("accuracy"), self.metrics.get("test_samples"))

    @property
    def accuracy_std(self) -> float | None:
        """The standard deviation of the accuracy over the trial's seeds (`seeds`), or None."""
        return statistics.stdev(self.seeds.values()) if len(self.seeds) >= 2 else None

    @classmethod
    def from_result(cls, number: int, result: dict, *, role: str = "search", state: str = "COMPLETE",
                    error: str = "", settings: dict | None = None) -> TrialRow:
        """A row from a flat result (a trial's last report, `baseline.json`, user attributes)."""
        return cls(number=number, role=role, state=state, error=error or "", settings=dict(settings or {}),
                   metrics={k: result[k] for k in METRICS if result.get(k) is not None},
                   widths=result.get("widths"), base_widths=result.get("base_widths"), gpu_ids=result.get("gpu_ids"),
                   correct=result.get("correct") if isinstance(result.get("correct"), str) else None,
                   history=list(result.get("history") or []), compressions=list(result.get("compressions") or []),
                   stopped_at=result.get(STOPPED_AT) if state == "PRUNED" else None)


def baseline_row(result: dict) -> TrialRow:
    """The baseline's row from what `baseline.json` holds."""
    return TrialRow.from_result(BASELINE, result, role="baseline")


def search_row(trial, spec: StudySpec) -> TrialRow:
    """A search trial's row from its Optuna trial (`optuna.trial.FrozenTrial`): the sampled values
    decoded as the spec writes them, the results kept as user attributes."""
    space = spec.search.space
    settings = {path: decode_choice(space[path], trial.params[path]) if trial.params.get(path) is not None else None
                for path in space}
    return TrialRow.from_result(trial.number, trial.user_attrs, state=trial.state.name,
                                error=trial.user_attrs.get("error", ""), settings=settings)


def sort_rows(rows) -> list[TrialRow]:
    """The baseline first, then the search trials by number."""
    return sorted(rows, key=lambda r: (not r.is_baseline, r.number))


def find(rows, number: int) -> TrialRow | None:
    """The row of trial `number` (-1: the baseline), or None."""
    return next((r for r in rows if r.number == number), None)


def plain(value):
    """`value` as JSON and Optuna user attributes keep it: non-finite floats as None, tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value
