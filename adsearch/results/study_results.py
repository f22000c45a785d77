"""A study read back for a notebook: `load_study(dir)` -> `StudyResults`, its trials as DataFrames.

What `trials.csv` and `pareto.csv` hold, as pandas reads them (one row per trial, indexed by trial
number, the baseline -1), plus each trial's per-epoch history and its network rebuilt from its
final checkpoint in `trials/`. A snapshot: read once, never written; load again to see a running
study move on. The columns are `TrialRow.flat`'s, the same as `trials.csv`'s.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import pandas as pd

from adsearch.results.pareto import pareto_front, recommended
from adsearch.results.reading import StudyRecord, read_study
from adsearch.results.rows import BASELINE, TrialRow
from adsearch.results.trial_network import trial_network


class StudyResults:
    """One study on disk, read-only: `.spec`, `.state`, `.baseline`, `.trials`, `.front`,
    `.recommended`, `.history(trial)`, `.model(trial)`."""

    def __init__(self, record: StudyRecord):
        self._record = record

    def __repr__(self) -> str:
        r = self._record
        return f"StudyResults({r.name!r}, {r.state}, {r.trials_done}/{r.trials_total} trials, {r.directory})"

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def directory(self) -> Path:
        return self._record.directory

    @property
    def spec(self):
        """The study's spec as run (`StudySpec`)."""
        return self._record.spec

    @property
    def state(self) -> str:
        """'done', 'running' or 'interrupted'."""
        return self._record.state

    @cached_property
    def trials(self) -> pd.DataFrame:
        """One row per trial, indexed by `number` (-1: the baseline): role, state, error, a
        `param:<path>` column per searched spec path, every metric and ratio (NaN where a trial
        has none), gpu_ids, widths, base_widths, and `on_front` / `recommended` (bools)."""
        rows = self._record.rows
        front = {rows[i].number for i in pareto_front(rows, self.spec.search.objectives)}
        best = recommended(rows, self.spec.report.max_accuracy_drop, size_tolerance=self.spec.report.size_tolerance)
        table = pd.DataFrame([r.flat(list(self.spec.search.space)) for r in rows]).set_index("number")
        table["on_front"] = table.index.isin(front)
        table["recommended"] = table.index == (rows[best].number if best is not None else None)
        return table

    @property
    def baseline(self) -> pd.Series | None:
        """The baseline's row of `trials`, or None while it has not finished (or the spec runs none)."""
        return self.trials.loc[BASELINE] if BASELINE in self.trials.index else None

    @property
    def front(self) -> pd.DataFrame:
        """The Pareto-optimal trials over `search.objectives` (the baseline among them if it is)."""
        return self.trials[self.trials["on_front"]]

    @property
    def recommended(self) -> pd.Series | None:
        """The recommended trade-off (fewest params within `report.max_accuracy_drop` of the
        baseline), or None when no trial qualifies."""
        chosen = self.trials[self.trials["recommended"]]
        return chosen.iloc[0] if len(chosen) else None

    def history(self, trial: int) -> pd.DataFrame:
        """Trial `trial`'s per-epoch records (epoch, train_loss, accuracy, params, widths, density, ...),
        one row per epoch, indexed by epoch.

        Raises:
            AdsearchError: no such trial (the message lists those there are).
        """
        row = self._row(trial)
        table = pd.DataFrame(row.history)
        return table.set_index("epoch") if "epoch" in table else table

    def model(self, trial: int, control: str | None = None):
        """The network trial `trial` ended with (-1: the baseline), at its compressed widths, with
        its final weights, on the CPU, in eval mode; with `control` ('epochs' or 'compute') that of
        its scratch control instead: the same widths trained from scratch.

        Raises:
            AdsearchError: no such trial, a trial that failed or has not finished, no such control
                completed, or the checkpoint missing or unreadable.
        """
        return trial_network(self._record, self._row(trial), control)

    def _row(self, trial: int) -> TrialRow:
        return self._record.row(int(trial))


def load_study(directory: Path | str) -> StudyResults:
    """Read the study in `directory` (e.g. `reports/quickstart`), in any state, running too.

    Raises:
        StudyDirError: no study there (the message lists the studies next to it), or a file of
            it that cannot be read (named).
    """
    return StudyResults(read_study(directory))
