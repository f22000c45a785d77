"""One view of a study, computed once: what every writer of the report renders.

`report_view(spec, rows, state)` (or `view_of(record)` for a study read from disk) sorts the rows
(the baseline first), finds the baseline, the Pareto front over `search.objectives`, the
recommended trade-off and the state counts, and writes the recommendation. The Markdown, HTML,
PNG and terminal writers (`report_md`, `report_html`, `plots`, `report_text`) only render a
`ReportView`; none of them decides again which trials are on the front, which is recommended, how
states are counted, which points can be plotted or how a trial compares with the baseline.

A trial's ratios against the baseline and its accuracy drop are taken as the trial recorded them
(`<cost>_ratio`, `accuracy_drop`); only `compared` computes one when it is missing.

A trial's *arm* is its channel criterion x width rule (`arm_of`: 'activation_density / density',
'random / uniform 0.5'); a study with more than one arm is grouped by arm (`grouped_by_arm`): the
plots colour each arm, and `arm_table` / `arm_verdicts` compare the arms at equal parameters. A
trial's scratch control (`TrialRow.scratch`) is set against it by `scratch_verdict`. While a search
runs, `best_so_far` says the recommended trade-off among the trials finished so far.

Pure: no file I/O, no plotting library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from adsearch.metrics import (
    COSTS, against_baseline, count, finite, percent, points, seconds, times_fewer, value, widths, with_ratios,
)
from adsearch.results.pareto import baseline_index, objective_pairs, pareto_front, recommended
from adsearch.results.rows import BASELINE, TrialRow, sort_rows
from adsearch.spec.study_spec import CRITERIA, WIDTH_RULES, StudySpec


@dataclass(frozen=True)
class StateCounts:
    """The search trials by state: the one count every writer shows.

    `complete` and `failed` are the COMPLETE and FAIL search trials (together: the trials done);
    `unfinished` every other search trial (RUNNING, WAITING, ...). The baseline is not counted, nor
    are the repeats (`repeats`: parameter sets proposed again, which cost nothing).
    """

    complete: int = 0
    failed: int = 0
    unfinished: int = 0
    repeats: int = 0

    @property
    def done(self) -> int:
        return self.complete + self.failed


def state_counts(rows: Sequence[TrialRow]) -> StateCounts:
    """The search trials of `rows` counted by state (see `StateCounts`)."""
    search = [r for r in rows if r.in_budget]
    complete = sum(r.state == "COMPLETE" for r in search)
    failed = sum(r.state == "FAIL" for r in search)
    return StateCounts(complete=complete, failed=failed, unfinished=len(search) - complete - failed,
                       repeats=sum(r.is_repeat for r in rows))


# --- a trial against the baseline ---------------------------------------------------------------


def compared(row: TrialRow, key: str, baseline: TrialRow | None) -> float | None:
    """The row's `key` against the baseline (`<cost>_ratio`, trial / baseline, or `accuracy_drop`,
    baseline minus trial): as the trial recorded it, else computed from its metrics and the
    baseline's (`metrics.with_ratios`); None when neither gives a finite number."""
    v = row.metric(key)
    if v is None and baseline is not None and row is not baseline:
        v = with_ratios(row.metrics, baseline.metrics).get(key)
    return v if finite(v) else None


def fewer(row: TrialRow, cost: str, baseline: TrialRow | None) -> str:
    """'50.0x fewer' (or '1.50x more') for the row's `cost` against the baseline; '' for the
    baseline itself and when unknown."""
    return "" if row.is_baseline else times_fewer(compared(row, f"{cost}_ratio", baseline))


def cost_text(row: TrialRow, cost: str, baseline: TrialRow | None) -> str:
    """The row's `cost` with how many times fewer than the baseline: '23.0k (50.0x fewer)'."""
    f = fewer(row, cost, baseline)
    return count(row.metric(cost)) + (f" ({f})" if f else "")


def sharing_text(row: TrialRow) -> str:
    """What the trial took from others (the prefix cache, a repeat): 'repeat of trial 3',
    'reused trial 3 (no training)', 'epochs 1-4 from the baseline'; '' when it trained everything."""
    def name(number) -> str:
        return "the baseline" if number == BASELINE else f"trial {value(number)}"

    if row.metric("repeat_of") is not None:
        return f"repeat of {name(row.metric('repeat_of'))}"
    shared, source = row.metric("shared_epochs"), row.metric("shared_from")
    if not shared or source is None:
        return ""
    if shared == row.metric("epoch"):
        return f"reused {name(source)}" + ("" if row.metric("spent_train_macs") else " (no training)")
    return f"epoch{'s 1-' if shared > 1 else ' '}{shared} from {name(source)}"


def settings_text(row: TrialRow, paths: Sequence[str], quote: str = "") -> str:
    """The row's values of the searched `paths`: 'pruning.target_density = 0.3, ...' ('' for none);
    each path between `quote`s."""
    return ", ".join(f"{quote}{p}{quote} = {value(row.settings.get(p))}" for p in paths)


def short_settings(settings: dict) -> str:
    """Searched values by the last part of their path, as a progress line says them:
    {'pruning.target_density': 0.5, 'pruning.compress_at': [5, 10]} -> 'target_density=0.5, compress_at=[5, 10]'."""
    return ", ".join(f"{path.rsplit('.', 1)[-1]}={value(v)}" for path, v in settings.items())


# --- arms: which channels survive a cut x how many ---------------------------------------------

CLEAR_GAP = 0.005
"""The accuracy gap (a fraction: 0.5 points) the report calls a difference; a smaller one is "no clear
winner" (arms at equal parameters) or a match (a trial against its scratch control)."""

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


def _clear(gap: float) -> bool:
    """Whether an accuracy gap is a difference the report names (see `CLEAR_GAP`), as it is written."""
    return round(100 * abs(gap), 1) >= round(100 * CLEAR_GAP, 1)


@dataclass(frozen=True)
class ArmCell:
    """An arm at a parameter budget: the best accuracy of its complete trials at or under the budget
    (None: it has none there), and how many trials those are."""

    best: float | None
    trials: int

    def text(self) -> str:
        """'97.2% (3 trials)'; '—' when the arm has no trial at or under the budget."""
        return f"{percent(self.best)} ({_trials(self.trials)})" if self.trials else "—"


def _cell(rows: Sequence[TrialRow], budget: float) -> ArmCell:
    under = [r.metrics["accuracy"] for r in rows if r.metrics["params"] <= budget]
    return ArmCell(best=max(under) if under else None, trials=len(under))


def _budget_verdict(budget: float, ranked: list[tuple[str, ArmCell]]) -> str:
    """One budget's verdict from the arms with trials there, the most accurate first."""
    label = budget_text(budget)
    if len(ranked) == 1:
        arm, cell = ranked[0]
        return f"{label}: only {arm} has trials there ({cell.text()})."
    (first, a), (second, b) = ranked[:2]
    gap = a.best - b.best
    if _clear(gap):
        return (f"{label}: {first} leads by {points(gap)} points ({percent(a.best)}, best of {_trials(a.trials)}; "
                f"the next best, {second}, {percent(b.best)}, best of {_trials(b.trials)}).")
    if percent(a.best) == percent(b.best):
        return (f"{label}: {first} and {second} tie at {percent(a.best)} (best of {_trials(a.trials)} and of "
                f"{_trials(b.trials)}){' and others' if len(ranked) > 2 and ranked[2][1].best == a.best else ''}.")
    return (f"{label}: within {points(gap)} points: no clear winner on {a.trials} and {b.trials} trials "
            f"({first} {percent(a.best)}, {second} {percent(b.best)}).")


# --- a trial against its scratch control -------------------------------------------------------

SCRATCH_INTRO = ("A scratch control trains a trial's final widths from scratch with the same recipe and epochs, "
                 "no pruning (Liu et al., \"Rethinking the Value of Network Pruning\"): does pruning in training "
                 "beat simply training the small network?")
"""What a scratch control is, said the same by every writer."""


def scratch_metric(row: TrialRow, key: str) -> float | None:
    """Metric `key` of the row's scratch control (`TrialRow.scratch`), or None (no control, no finite value)."""
    v = (row.scratch or {}).get(key)
    return v if finite(v) else None


def scratch_verdict(row: TrialRow) -> str:
    """The trial against its scratch control (its final widths trained from scratch, same recipe and
    epochs) in one line, e.g. 'pruning in training: +0.8 points over training these widths from
    scratch, at 8.5x its training MACs' or 'training these widths from scratch matches it (-0.1
    points) at 8.5x less training compute'; '' when either accuracy is missing. Training compute is
    each one's `train_macs` (the schedule's cost from scratch, sharing left out)."""
    acc, control = row.metric("accuracy"), scratch_metric(row, "accuracy")
    if acc is None or control is None:
        return ""
    gap = acc - control
    mine, theirs = row.metric("train_macs"), scratch_metric(row, "train_macs")
    ratio = mine / theirs if mine and theirs else None  # pruning in training / scratch
    if _clear(gap):
        winner, loser, r = (("pruning in training", "training these widths from scratch", ratio) if gap > 0 else
                            ("training these widths from scratch", "pruning in training", ratio and 1 / ratio))
        return f"{winner}: +{points(abs(gap))} points over {loser}" + (f", {_compute(r)}" if r else "")
    if ratio is None:
        return f"training these widths from scratch matches pruning in training ({100 * -gap:+.1f} points)"
    if ratio >= 1:
        return f"training these widths from scratch matches it ({100 * -gap:+.1f} points) {_compute(1 / ratio)}"
    return f"pruning in training matches training these widths from scratch ({100 * gap:+.1f} points) {_compute(ratio)}"


def _compute(ratio: float) -> str:
    """How the subject's training MACs compare with the other's (subject / other)."""
    if round(ratio, 1) == 1 or round(1 / ratio, 1) == 1:
        return "at about the same training compute"
    return f"at {ratio:.1f}x its training MACs" if ratio > 1 else f"at {1 / ratio:.1f}x less training compute"


# --- the view ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportView:
    """A study as the report shows it. Indices (`front`, `best`, `plottable`, ...) are into `rows`."""

    spec: StudySpec
    state: str
    """'done', 'running' or 'interrupted'."""
    rows: list[TrialRow]
    """The baseline first, then the search trials by number."""
    baseline: TrialRow | None
    """The completed baseline with an accuracy, or None (then no ratios and no recommendation)."""
    paths: list[str]
    """The searched spec paths, in the spec's order."""
    objectives: list[tuple[str, str]]
    """`search.objectives` as (metric, mode) pairs."""
    front: list[int]
    """The Pareto front over the objectives among the COMPLETE rows, the baseline included."""
    best: int | None
    """The recommended trade-off (`pareto.recommended`), or None."""
    counts: StateCounts
    recommendation: str
    """The recommended trade-off (or why there is none) in one paragraph, Markdown-flavoured
    (`**bold**`, `` `code` ``); `plain` strips the marks."""
    directory: Path | None = None
    live: tuple[dict, ...] = ()
    """The entries of the trials running (or, in a study that no longer runs, left unfinished), as
    the study directory's `live/` holds them (`adsearch.study.progress.live_entry`); read by `show` and `ls`."""

    # --- what the study holds ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def max_drop(self) -> float:
        """`report.max_accuracy_drop`: how far below the baseline a recommendation may be."""
        return self.spec.report.max_accuracy_drop

    @property
    def objectives_text(self) -> str:
        """'accuracy (max), params (min)'."""
        return ", ".join(f"{m} ({mode})" for m, mode in self.objectives)

    @property
    def recommended(self) -> TrialRow | None:
        return self.rows[self.best] if self.best is not None else None

    @property
    def front_rows(self) -> list[TrialRow]:
        return [self.rows[i] for i in self.front]

    @property
    def search_rows(self) -> list[TrialRow]:
        return [r for r in self.rows if not r.is_baseline]

    @property
    def failed(self) -> list[TrialRow]:
        """The failed search trials (the rows `counts.failed` counts)."""
        return [r for r in self.search_rows if r.state == "FAIL" and not r.is_repeat]

    @property
    def costs(self) -> list[str]:
        """The costs (`metrics.COSTS`) plotted against accuracy: params always, the others when
        some trial has them."""
        return [m for m in COSTS if m == "params" or any(r.has(m) for r in self.rows)]

    def on_front(self, row: TrialRow) -> bool:
        return any(self.rows[i].number == row.number for i in self.front)

    def is_recommended(self, row: TrialRow) -> bool:
        return self.best is not None and self.rows[self.best].number == row.number

    def counts_text(self) -> str:
        """'4 complete, 1 failed, 1 running' (from `counts`; the unfinished part only when there are
        some, called 'unfinished' unless the study runs)."""
        c = self.counts
        text = f"{c.complete} complete, {c.failed} failed"
        if c.unfinished:
            text += f", {c.unfinished} {'running' if self.state == 'running' else 'unfinished'}"
        if c.repeats:
            text += f"; {c.repeats} repeat{'s' if c.repeats > 1 else ''} of a parameter set already tried (not trained)"
        return text

    def summary(self) -> str:
        """'5 of 6 search trials done: 4 complete, 1 failed, 1 running'."""
        return f"{self.counts.done} of {self.spec.search.trials} search trials done: {self.counts_text()}"

    def sharing(self) -> str:
        """What sharing saved the study, in one paragraph; '' when no trial took anything from another.

        Every completed trial but the repeats (the baseline included) is counted at its schedule's
        cost from scratch (`train_macs`, `wall_s`) against what the study ran for it
        (`spent_train_macs`, `spent_s`); the repeats are said apart: they cost nothing.
        """
        rows = self._spending_rows()
        repeats = sum(r.is_repeat for r in self.rows)
        reused = [r for r in rows if r.metric("shared_epochs") == r.metric("epoch") and not r.metric("spent_train_macs")]
        started = [r for r in rows if r not in reused and (r.metric("shared_epochs") or 0) > 0]
        if not (repeats or reused or started):
            return ""
        parts = [f"{len(started)} trial{'s' * (len(started) != 1)} started from a state another trial trained"]
        if reused:
            parts.append(f"{len(reused)} reused a network already trained (no training)")
        if repeats:
            parts.append(f"{repeats} repeated parameter set{'s' * (repeats != 1)} cost nothing")
        scratch, spent = self._spending()
        wall = sum(r.metric("wall_s") or 0 for r in rows)
        spent_s = sum(r.metric("spent_s") or 0 for r in rows)
        saved = self.compute_saved()
        return (f"Shared training: {self._and(parts)}. From scratch, the {len(rows)} completed trials (the baseline "
                f"included, the repeats not) would have cost {count(scratch)} training MACs and {seconds(wall)}; the "
                f"study ran {count(spent)}{f' ({saved})' if saved else ''} in {seconds(spent_s)}.")

    def _spending_rows(self) -> list[TrialRow]:
        """The completed trials that recorded what was run for them, the repeats left out."""
        return [r for r in self.rows if r.complete and not r.is_repeat and r.has("train_macs")
                and r.has("spent_train_macs")]

    def _spending(self) -> tuple[float, float]:
        """Training MACs of `_spending_rows`: their schedules' from scratch, and what was run."""
        rows = self._spending_rows()
        return sum(r.metrics["train_macs"] for r in rows), sum(r.metrics["spent_train_macs"] for r in rows)

    def compute_saved(self) -> str:
        """'2.3x less training compute' run than the completed trials' schedules cost from scratch
        (the repeats left out); '' when nothing was saved (or nothing recorded what was run)."""
        scratch, spent = self._spending()
        return f"{scratch / spent:.1f}x less training compute" if spent and scratch > spent else ""

    @staticmethod
    def _and(parts: list[str]) -> str:
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]

    # --- a trial against the baseline ----------------------------------------------------------

    def drop(self, row: TrialRow) -> float | None:
        """The accuracy drop of `row` below the baseline (a fraction; negative: above it)."""
        return compared(row, "accuracy_drop", self.baseline)

    def fewer(self, row: TrialRow, cost: str) -> str:
        """See `fewer`."""
        return fewer(row, cost, self.baseline)

    def cost_text(self, row: TrialRow, cost: str) -> str:
        """See `cost_text`."""
        return cost_text(row, cost, self.baseline)

    def inverse_ratio(self, row: TrialRow, cost: str) -> float | None:
        """baseline / trial for `cost` (50.0 for 50x fewer), or None: a number to sort by."""
        r = compared(row, f"{cost}_ratio", self.baseline)
        return 1 / r if r is not None and r > 0 else None

    # --- arms ----------------------------------------------------------------------------------

    def arm(self, row: TrialRow) -> str | None:
        """See `arm_of`."""
        return arm_of(row, self.spec)

    def arms(self) -> list[str]:
        """The arms of the complete search trials (not the repeats), ordered as `CRITERIA` x
        `WIDTH_RULES` x keep."""
        return list(self._arms)

    @cached_property
    def _arms(self) -> tuple[str, ...]:
        # asked once per plotted point (colours, hover texts): found once
        keys = {name: key for key, name in (_arm(r, self.spec) for r in self.search_rows
                                             if r.complete and not r.is_repeat)}
        return tuple(sorted(keys, key=lambda name: (keys[name], name)))

    @property
    def grouped_by_arm(self) -> bool:
        """Whether the study has more than one arm: then the plots colour the arms and the report
        compares them (`arm_table`, `arm_verdicts`); with one arm it looks as it always has."""
        return len(self.arms()) > 1

    def arm_color(self, arm: str) -> str:
        """The arm's colour in every plot (`ARM_COLORS`)."""
        arms = self.arms()
        return ARM_COLORS[(arms.index(arm) if arm in arms else len(arms)) % len(ARM_COLORS)]

    def _arm_rows(self) -> list[TrialRow]:
        """The trials the arms are compared on: complete search trials, not repeats, with accuracy and params."""
        return [r for r in self.search_rows if r.complete and not r.is_repeat and r.has("accuracy") and r.has("params")]

    def arm_budgets(self) -> list[float]:
        """The parameter budgets of the arm table, largest first: the trials' sizes fall in clusters
        (a cut of the same depth gives about the same size in every arm: 274k by density, 288k by
        keeping half), and each cluster's largest size is a budget, so that every arm's trials of a
        cluster are compared there. A cluster holds the sizes within 1.5x of its largest; with more
        than `ARM_BUDGETS` clusters the ratio grows (2, 4, 10, 100, 1000)."""
        sizes = sorted({r.metrics["params"] for r in self._arm_rows()}, reverse=True)
        budgets: list[float] = []
        for ratio in (1.5, 2, 4, 10, 100, 1000):
            budgets = []
            for size in sizes:
                if not budgets or size * ratio < budgets[-1]:
                    budgets.append(size)
            if len(budgets) <= ARM_BUDGETS:
                break
        return budgets[:ARM_BUDGETS]

    def arm_table(self) -> dict[str, list[ArmCell]]:
        """Per arm (`arms` order), one `ArmCell` per budget of `arm_budgets`."""
        budgets, rows = self.arm_budgets(), self._arm_rows()
        return {arm: [_cell([r for r in rows if self.arm(r) == arm], b) for b in budgets] for arm in self.arms()}

    def arm_verdicts(self) -> list[str]:
        """Which arm is most accurate at or under each budget, by how much over the next and on how
        many trials (a gap under `CLEAR_GAP`: no clear winner), then what the numbers rest on: one
        sentence each; [] for a study of one arm."""
        if not self.grouped_by_arm:
            return []
        table, out = self.arm_table(), []
        for k, budget in enumerate(self.arm_budgets()):
            there = [(arm, cells[k]) for arm, cells in table.items() if cells[k].trials]
            if there:
                out.append(_budget_verdict(budget, sorted(there, key=lambda ac: -ac[1].best)))
        out.append(f"One seed, one study: each figure is the best of an arm's trials in this search, not a mean over "
                   f"repeated runs; a gap under {points(CLEAR_GAP)} points is called no clear winner.")
        return out

    # --- scratch controls ------------------------------------------------------------------------

    @property
    def scratch_rows(self) -> list[TrialRow]:
        """The search trials with a scratch control (`TrialRow.scratch`), in `rows` order; when there
        are none the report shows nothing of scratch controls."""
        return [r for r in self.search_rows if r.scratch and not r.is_repeat]

    def scratch_summary(self) -> str:
        """The trials against their controls in one sentence: how many, the mean accuracy gap, how
        many above, below and within `CLEAR_GAP` of their control, the mean ratio of training MACs;
        and, when every controlled trial is on the front, that the front is selected for luck as
        well as merit (its controls are not). '' without two trials to compare."""
        pairs = [(r.metric("accuracy"), scratch_metric(r, "accuracy"), r.metric("train_macs"),
                  scratch_metric(r, "train_macs")) for r in self.scratch_rows]
        pairs = [p for p in pairs if p[0] is not None and p[1] is not None]
        if len(pairs) < 2:
            return ""
        gaps = [a - c for a, c, _, _ in pairs]
        ratios = [m / cm for _, _, m, cm in pairs if m and cm]
        above = sum(_clear(g) and g > 0 for g in gaps)
        below = sum(_clear(g) and g < 0 for g in gaps)
        mean = sum(gaps) / len(gaps)
        text = (f"Over {len(pairs)} trials with a control, pruning in training is {100 * mean:+.2f} points from "
                f"training the same widths from scratch on average ({above} clearly above their control, {below} "
                f"clearly below, {len(pairs) - above - below} within {points(CLEAR_GAP)} points)")
        if ratios:
            text += f", at {sum(ratios) / len(ratios):.1f}x the control's training MACs on average"
        text += "."
        if all(self.on_front(r) for r in self.scratch_rows):
            text += (" These are front trials, the best of the search: selected for luck as well as merit, unlike "
                     "their controls, so their edge is overstated (`adsearch scratch --trials` controls others).")
        return text

    # --- plots ---------------------------------------------------------------------------------

    def plottable(self, cost: str) -> list[int]:
        """The rows a plot of accuracy against `cost` (log axis) can show: COMPLETE, not a repeat,
        with a finite accuracy and a finite `cost` above zero."""
        return [i for i, r in enumerate(self.rows)
                if r.complete and not r.is_repeat and r.has("accuracy") and r.has(cost) and r.metrics[cost] > 0]

    def pair_front(self, cost: str) -> list[int]:
        """The plottable rows not beaten in (accuracy max, `cost` min), ordered by `cost`."""
        usable = self.plottable(cost)
        sub = [self.rows[i] for i in usable]
        front = [usable[k] for k in pareto_front(sub, [("accuracy", "max"), (cost, "min")])]
        return sorted(front, key=lambda i: self.rows[i].metrics[cost])

    def group_names(self, n: int, row: TrialRow | None = None) -> list[str]:
        """The names of `n` layer groups, from the density records of `row` (if given) or of any
        trial that has `n` of them; 'group 1', 'group 2', ... when none has."""
        for r in ([row] if row is not None else []) + self.rows:
            for h in reversed(r.history):
                names = list((h.get("density") or {}).keys())
                if len(names) == n:
                    return names
        return [f"group {k + 1}" for k in range(n)]

    def settings_text(self, row: TrialRow, quote: str = "") -> str:
        """See `settings_text`, over the study's searched paths."""
        return settings_text(row, self.paths, quote)


def plain(text: str) -> str:
    """Markdown-flavoured text (`ReportView.recommendation`) without its ** and ` marks."""
    return text.replace("**", "").replace("`", "")


def report_view(spec: StudySpec, rows: Sequence[TrialRow], state: str = "done",
                directory: Path | str | None = None, live: Sequence[dict] = ()) -> ReportView:
    """The view of a study from its spec, its rows (any order), its state and its running trials'
    live entries."""
    rows = sort_rows(rows)
    b = baseline_index(rows)
    baseline = rows[b] if b is not None else None
    best = recommended(rows, spec.report.max_accuracy_drop)
    paths = list(spec.search.space)
    return ReportView(
        spec=spec, state=state, rows=rows, baseline=baseline, paths=paths,
        objectives=objective_pairs(spec.search.objectives),
        front=pareto_front(rows, spec.search.objectives), best=best, counts=state_counts(rows),
        recommendation=_recommendation(spec, rows, best, baseline, paths),
        directory=Path(directory) if directory is not None else None, live=tuple(live))


def view_of(record) -> ReportView:
    """The view of a study read from disk (`records.StudyRecord`: spec, rows, state, directory and,
    where it has them, the live entries of its running trials)."""
    return report_view(record.spec, record.rows, record.state, record.directory, getattr(record, "live", ()))


def _recommendation(spec: StudySpec, rows: list[TrialRow], best: int | None, baseline: TrialRow | None,
                    paths: list[str]) -> str:
    limit = spec.report.max_accuracy_drop
    if baseline is None:
        return "None: there is no baseline to compare against."
    base_acc = percent(baseline.metric("accuracy"))
    if best is None:
        text = (f"**None qualifies**: no completed search trial is within {points(limit)} points of the "
                f"baseline's accuracy ({base_acc}).")
        done = [r for r in rows if not r.is_baseline and r.complete and r.has("accuracy")]
        if done:
            top = max(done, key=lambda r: r.metrics["accuracy"])
            text += (f" The most accurate is trial {top.label} at {percent(top.metric('accuracy'))} with "
                     f"{cost_text(top, 'params', baseline)} params.")
        return text
    r = rows[best]
    chosen = settings_text(r, paths, quote="`")
    drop = compared(r, "accuracy_drop", baseline)
    return (f"**Trial {r.label}**: the fewest parameters with accuracy within {points(limit)} points "
            f"of the baseline. Accuracy {percent(r.metric('accuracy'))} ({against_baseline(drop)} "
            f"the baseline's {base_acc}); params {cost_text(r, 'params', baseline)}; "
            f"MACs {cost_text(r, 'macs', baseline)}; training MACs {cost_text(r, 'train_macs', baseline)}; "
            f"wall time {seconds(r.metric('wall_s'))}; widths {widths(r.widths)}"
            + (f". Searched: {chosen}." if chosen else "."))


# --- the recommendation while a search runs ------------------------------------------------------


def best_so_far(baseline: TrialRow | None, rows: Sequence[TrialRow], max_accuracy_drop: float) -> str:
    """The recommended trade-off among the search trials `rows` so far, for the progress lines:
    '97.5% at 10.0x fewer params', 'none within 1.0 pts of the baseline yet', or '' without a
    baseline (`pareto.recommended` decides, as for the report)."""
    if baseline is None:
        return ""
    every = [baseline, *rows]
    i = recommended(every, max_accuracy_drop)
    if i is None:
        return f"none within {points(max_accuracy_drop)} pts of the baseline yet"
    r = every[i]
    return f"{percent(r.metric('accuracy'))} at {fewer(r, 'params', baseline) or count(r.metric('params'))} params"
