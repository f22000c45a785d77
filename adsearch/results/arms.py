"""Arms: which channels survive a cut (`pruning.criterion`) x how many (`pruning.widths`).

A trial's arm is `arm_of(row, spec)` ('activation_density / density', 'random / uniform 0.5');
`Arms` holds a study's arms and compares them at equal parameters: the budgets, a table of
`ArmCell`s (the best accuracy at or under each budget) and a verdict per budget, which tests the two
best arms' trials paired on their test samples (McNemar) and names a lead only when it is significant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from adsearch.metrics import count, finite, percent, points, value
from adsearch.results.rows import TrialRow
from adsearch.results.texts import CLEAR_GAP, compare, differs
from adsearch.spec.pruning import CRITERIA, WIDTH_RULES
from adsearch.spec.study_spec import StudySpec

ARM_BUDGETS = 5
"""The arm table compares the arms at this many parameter budgets at most."""

ARM_COLORS = ("#1f77b4", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#393b79")
"""Each arm's colour in every plot (HTML and PNG alike), in `ReportView.arms` order: none of them the
orange, red and green that mark the front, the baseline and the recommended trial."""

ARM_INTRO = ("An arm is which channels survive a cut (`pruning.criterion`) / how many (`pruning.widths`; with "
             "uniform, the fraction `pruning.keep` of every layer). Each cell: the best accuracy of the arm's "
             "complete trials at or under the parameter budget, and how many trials those are.")
"""What the arm table shows, said the same by every writer (Markdown-flavoured; `plain` strips the marks)."""


def _pruning(row: TrialRow, spec: StudySpec, name: str):
    """The row's `pruning.<name>`: its searched value, else the base spec's."""
    v = row.settings.get(f"pruning.{name}")
    return v if v is not None else getattr(spec.pruning, name)


def _arm(row: TrialRow, spec: StudySpec) -> tuple[tuple, str] | None:
    """(a key ordering arms as `CRITERIA` x `WIDTH_RULES` x keep, the arm's name), None for the baseline."""
    if row.is_baseline:
        return None
    if _pruning(row, spec, "method") == "none":
        return (len(CRITERIA), 0, 0.0), "no pruning"
    criterion, rule = _pruning(row, spec, "criterion"), _pruning(row, spec, "widths")
    keep = _pruning(row, spec, "keep") if rule == "uniform" else None
    key = (CRITERIA.index(criterion) if criterion in CRITERIA else len(CRITERIA),
           WIDTH_RULES.index(rule) if rule in WIDTH_RULES else len(WIDTH_RULES), keep if finite(keep) else 0.0)
    return key, f"{criterion} / {rule}" + (f" {value(keep)}" if keep is not None else "")


def arm_of(row: TrialRow, spec: StudySpec) -> str | None:
    """The row's arm, criterion / width rule: 'activation_density / density', and with the uniform rule
    the fraction kept, 'random / uniform 0.5'; 'no pruning' for `pruning.method: none`; None for the
    baseline. Each part is the trial's searched value, else the base spec's."""
    arm = _arm(row, spec)
    return arm[1] if arm is not None else None


def budget_text(budget: float) -> str:
    """A parameter budget as the arm table's header says it: '<= 288k params'."""
    return f"<= {count(budget)} params"


def _trials(n: int) -> str:
    return f"{n} trial{'s' * (n != 1)}"


@dataclass(frozen=True)
class ArmCell:
    """An arm at a parameter budget: the best accuracy of its complete trials at or under the budget
    (None: it has none there), how many trials those are, and the trial with the best accuracy."""

    best: float | None
    trials: int
    row: TrialRow | None = field(default=None, compare=False)

    def text(self) -> str:
        """'97.2% (3 trials)'; '—' when the arm has no trial at or under the budget."""
        return f"{percent(self.best)} ({_trials(self.trials)})" if self.trials else "—"


@dataclass(frozen=True)
class Arms:
    """A study's arms (`names`: those of its complete search trials, not the repeats, ordered as
    `CRITERIA` x `WIDTH_RULES` x keep) and the trials they are compared on (`rows`: those of them
    with accuracy and params)."""

    spec: StudySpec
    names: tuple[str, ...]
    rows: tuple[TrialRow, ...]

    @classmethod
    def of(cls, spec: StudySpec, search_rows: Sequence[TrialRow]) -> Arms:
        """The arms of the search trials `search_rows` of a study of `spec`."""
        done = [r for r in search_rows if r.complete and not r.is_repeat]
        keys = {name: key for key, name in (_arm(r, spec) for r in done)}
        return cls(spec=spec, names=tuple(sorted(keys, key=lambda name: (keys[name], name))),
                   rows=tuple(r for r in done if r.has("accuracy") and r.has("params")))

    @property
    def grouped(self) -> bool:
        """Whether the study has more than one arm: then the plots colour the arms and the report
        compares them (`table`, `verdicts`); with one arm it looks as it always has."""
        return len(self.names) > 1

    def color(self, arm: str) -> str:
        """The arm's colour in every plot (`ARM_COLORS`)."""
        return ARM_COLORS[(self.names.index(arm) if arm in self.names else len(self.names)) % len(ARM_COLORS)]

    def budgets(self) -> list[float]:
        """The parameter budgets of the arm table, largest first: the trials' sizes fall in clusters
        (a cut of the same depth gives about the same size in every arm: 274k by density, 288k by
        keeping half), and each cluster's largest size is a budget, so that every arm's trials of a
        cluster are compared there. A cluster holds the sizes within 1.5x of its largest; with more
        than `ARM_BUDGETS` clusters the ratio grows (2, 4, 10, 100, 1000)."""
        sizes = sorted({r.metrics["params"] for r in self.rows}, reverse=True)
        budgets: list[float] = []
        for ratio in (1.5, 2, 4, 10, 100, 1000):
            budgets = []
            for size in sizes:
                if not budgets or size * ratio < budgets[-1]:
                    budgets.append(size)
            if len(budgets) <= ARM_BUDGETS:
                break
        return budgets[:ARM_BUDGETS]

    def table(self) -> dict[str, list[ArmCell]]:
        """Per arm (`names` order), one `ArmCell` per budget of `budgets`."""
        budgets = self.budgets()
        return {arm: [_cell([r for r in self.rows if arm_of(r, self.spec) == arm], b) for b in budgets]
                for arm in self.names}

    def verdicts(self) -> list[str]:
        """Which arm is most accurate at or under each budget, by how much over the next and on how
        many trials (a gap under `CLEAR_GAP`: no clear winner), then what the numbers rest on: one
        sentence each; [] for a study of one arm."""
        if not self.grouped:
            return []
        table, out = self.table(), []
        for k, budget in enumerate(self.budgets()):
            there = [(arm, cells[k]) for arm, cells in table.items() if cells[k].trials]
            if there:
                out.append(_budget_verdict(budget, sorted(there, key=lambda ac: -ac[1].best)))
        if all(r.correct for r in self.rows):
            rule = ("a lead is named only where the two trials' paired test finds the gap significant at 5% "
                    "(McNemar's on their test samples; over their seeds where both were replicated, a t-test)")
        else:  # a study recorded before trials kept their test samples
            rule = f"a gap under {points(CLEAR_GAP)} points is called no clear winner"
        out.append("One seed, one study: each figure is the best of an arm's trials in this search, not a mean over "
                   f"repeated runs; {rule}.")
        return out


def _cell(rows: Sequence[TrialRow], budget: float) -> ArmCell:
    under = [r for r in rows if r.metrics["params"] <= budget]
    top = max(under, key=lambda r: r.metrics["accuracy"], default=None)
    return ArmCell(best=top.metrics["accuracy"] if top else None, trials=len(under), row=top)


def _budget_verdict(budget: float, ranked: list[tuple[str, ArmCell]]) -> str:
    """One budget's verdict from the arms with trials there, the most accurate first."""
    label = budget_text(budget)
    if len(ranked) == 1:
        arm, cell = ranked[0]
        return f"{label}: only {arm} has trials there ({cell.text()})."
    (first, a), (second, b) = ranked[:2]
    gap = a.best - b.best
    test = compare(a.row, b.row) if a.row is not None and b.row is not None else None
    if differs(gap, test):
        return (f"{label}: {first} leads by {points(gap)} points ({percent(a.best)}, best of {_trials(a.trials)}; "
                f"the next best, {second}, {percent(b.best)}, best of {_trials(b.trials)}"
                + (f"; {test.text()}" if test else "") + ").")
    if percent(a.best) == percent(b.best):
        return (f"{label}: {first} and {second} tie at {percent(a.best)} (best of {_trials(a.trials)} and of "
                f"{_trials(b.trials)}){' and others' if len(ranked) > 2 and ranked[2][1].best == a.best else ''}.")
    if test is not None:
        return (f"{label}: {first} {percent(a.best)} and {second} {percent(b.best)}, {points(gap)} points apart, "
                f"within the noise ({test.text()}): no winner on {a.trials} and {b.trials} trials.")
    return (f"{label}: within {points(gap)} points: no clear winner on {a.trials} and {b.trials} trials "
            f"({first} {percent(a.best)}, {second} {percent(b.best)}).")
