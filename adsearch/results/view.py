"""One view of a study, computed once: what every writer of the report renders.

`report_view(spec, rows, state)` (or `view_of(record)` for a study read from disk) sorts the rows
(the baseline first), finds the baseline, the Pareto front over `search.objectives`, the
recommended trade-off and the state counts, and writes the recommendation. The Markdown, HTML,
PNG and terminal writers (`report.markdown`, `report.html`, `report.plots`, `report.text`) only render a
`ReportView`; none of them decides again which trials are on the front, which is recommended, how
states are counted, which points can be plotted or how a trial compares with the baseline.

A trial's ratios against the baseline and its accuracy drop are taken as the trial recorded them
(`<cost>_ratio`, `accuracy_drop`); only `texts.compared` computes one when it is missing. A trial
trained with several seeds is shown by its means over them (`adsearch.results.seeds`), and then,
where the baseline was, every ratio and drop is computed against the baseline's means. A comparison
the view states carries its paired test (`texts.compare`: McNemar on the test samples, pooled over
the seeds both trials have).

The view hands over to the modules that own the parts it shows: a study with more than one arm
(`adsearch.results.arms`) is grouped by arm (`grouped_by_arm`): the plots colour each arm, and
`arm_table` / `arm_verdicts` compare the arms at equal parameters; the trials with a scratch control
are set against it (`adsearch.results.scratch_view`). What sharing saved (`adsearch.results.sharing`) and
what the plots show (`adsearch.results.plot_data`) are worked out over the view's `rows`.
While a search runs, `best_so_far` says the recommended trade-off among the trials finished so far.

Pure: no file I/O, no plotting library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from adsearch.correctness import Paired, p_text
from adsearch.metrics import COSTS, against_baseline, count, finite, percent, points, seconds, widths
from adsearch.results.arms import ArmCell, Arms, arm_of
from adsearch.results.pareto import baseline_index, objective_pairs, pareto_front, qualifying, recommended
from adsearch.results.rows import TrialRow, sort_rows
from adsearch.results.scratch_view import MATCH_TITLES, control_beats_trial, scratch_summary
from adsearch.results.seeds import SeedTest, mean_row
from adsearch.results.texts import accuracy_text, compare, compared, cost_text, fewer, settings_text
from adsearch.spec.study_spec import StudySpec


@dataclass(frozen=True)
class StateCounts:
    """The search trials by state: the one count every writer shows.

    `complete` and `failed` are the COMPLETE and FAIL search trials, `stopped` those early stopping
    stopped (together: the trials done); `unfinished` every other search trial (RUNNING, WAITING, ...).
    The baseline is not counted, nor are the repeats (`repeats`: parameter sets proposed again, which
    cost nothing).
    """

    complete: int = 0
    failed: int = 0
    unfinished: int = 0
    repeats: int = 0
    stopped: int = 0

    @property
    def done(self) -> int:
        return self.complete + self.failed + self.stopped

    def text(self, state: str) -> str:
        """'4 complete, 2 stopped early, 1 failed, 1 running' (the stopped and unfinished parts only when
        there are some, called 'unfinished' unless the study's `state` is 'running')."""
        text = f"{self.complete} complete, " + (f"{self.stopped} stopped early, " if self.stopped else "") + \
            f"{self.failed} failed"
        if self.unfinished:
            text += f", {self.unfinished} {'running' if state == 'running' else 'unfinished'}"
        if self.repeats:
            text += (f"; {self.repeats} repeat{'s' if self.repeats > 1 else ''} of a parameter set already tried "
                     "(not trained)")
        return text


def state_counts(rows: Sequence[TrialRow]) -> StateCounts:
    """The search trials of `rows` counted by state (see `StateCounts`)."""
    search = [r for r in rows if r.in_budget]
    complete = sum(r.state == "COMPLETE" for r in search)
    failed = sum(r.state == "FAIL" for r in search)
    stopped = sum(r.stopped for r in search)
    return StateCounts(complete=complete, failed=failed, unfinished=len(search) - complete - failed - stopped,
                       repeats=sum(r.is_repeat for r in rows), stopped=stopped)


# --- the view ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportView:
    """A study as the report shows it. Indices (`front`, `best`) are into `rows`; so are those of
    `plot_data` over `rows`. A method without a docstring hands over to the function of its name in
    the module that owns it (`texts`, `arms`, `StateCounts`)."""

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
    the study directory's `live/` holds them (`adsearch.results.live.live_entry`); read by `show` and `ls`."""

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
        return self.counts.text(self.state)

    def summary(self) -> str:
        """'5 of 6 search trials done: 4 complete, 1 failed, 1 running'."""
        return f"{self.counts.done} of {self.spec.search.trials} search trials done: {self.counts_text()}"

    # --- a trial against the baseline ----------------------------------------------------------

    def drop(self, row: TrialRow) -> float | None:
        """The accuracy drop of `row` below the baseline (a fraction; negative: above it)."""
        return compared(row, "accuracy_drop", self.baseline)

    def baseline_test(self, row: TrialRow) -> Paired | SeedTest | None:
        """`row` against the baseline (`texts.compare`); None for the baseline itself, or where no
        test is possible. `drop_p` writes its p-value for the tables."""
        return compare(row, self.baseline) if self.baseline and not row.is_baseline else None

    @cached_property
    def paired_with_baseline(self) -> bool:
        """Whether some trial is tested paired against the baseline: then the tables show its p-value."""
        return any(self.baseline_test(r) is not None for r in self.rows)

    def fewer(self, row: TrialRow, cost: str) -> str:
        return fewer(row, cost, self.baseline)

    def cost_text(self, row: TrialRow, cost: str) -> str:
        return cost_text(row, cost, self.baseline)

    def inverse_ratio(self, row: TrialRow, cost: str) -> float | None:
        """baseline / trial for `cost` (50.0 for 50x fewer), or None: a number to sort by."""
        r = compared(row, f"{cost}_ratio", self.baseline)
        return 1 / r if r is not None and r > 0 else None

    # --- arms (`adsearch.results.arms`) ------------------------------------------------------

    @cached_property
    def _arms(self) -> Arms:
        # asked once per plotted point (colours, hover texts): found once
        return Arms.of(self.spec, self.search_rows)

    def arm(self, row: TrialRow) -> str | None:
        return arm_of(row, self.spec)

    def arms(self) -> list[str]:
        return list(self._arms.names)

    @property
    def grouped_by_arm(self) -> bool:
        """See `Arms.grouped`."""
        return self._arms.grouped

    def arm_color(self, arm: str) -> str:
        return self._arms.color(arm)

    def arm_budgets(self) -> list[float]:
        return self._arms.budgets()

    def arm_table(self) -> dict[str, list[ArmCell]]:
        return self._arms.table()

    def arm_verdicts(self) -> list[str]:
        return self._arms.verdicts()

    # --- scratch controls (`adsearch.results.scratch_view`) -------------------------------------

    @property
    def scratch_rows(self) -> list[TrialRow]:
        """The search trials with a scratch control of either match (`TrialRow.control`), in `rows`
        order; when there are none the report shows nothing of scratch controls."""
        return [r for r in self.search_rows if (r.scratch or r.scratch_compute) and not r.is_repeat]

    @property
    def scratch_matches(self) -> list[str]:
        """The matches ('epochs', 'compute') some trial has a control of, in `MATCH_TITLES` order."""
        return [m for m in MATCH_TITLES if self.matched_rows(m)]

    def matched_rows(self, match: str) -> list[TrialRow]:
        return [r for r in self.scratch_rows if r.control(match)]

    def scratch_summary(self, match: str = "epochs") -> str:
        """See `scratch_view.scratch_summary` (over the trials with a control matched on `match`)."""
        return scratch_summary(self.matched_rows(match), self.on_front, match)

    def settings_text(self, row: TrialRow, quote: str = "") -> str:
        return settings_text(row, self.paths, quote)


def drop_p(view: ReportView, row: TrialRow) -> str:
    """The p-value of `row`'s accuracy drop (`ReportView.baseline_test`) as a table cell: '0.25', '0.002 *'
    (significant at 5%), '' without a test."""
    test = view.baseline_test(row)
    return "" if test is None else p_text(test.p_value) + (" *" if test.significant else "")


DROP_P = "drop p"
"""The tables' column of `drop_p`, and what it means (`DROP_P_NOTE`)."""
DROP_P_NOTE = ("drop p: McNemar's exact test of the trial against the baseline, paired on their test samples "
               "(pooled over the seeds both were trained with; * significant at 5%)")


def stopped_rows(view: ReportView) -> list[TrialRow]:
    """The search trials early stopping stopped (the rows `counts.stopped` counts)."""
    return [r for r in view.search_rows if r.stopped and not r.is_repeat]


def stopping_text(view: ReportView) -> str:
    """What early stopping did, in one sentence ('' when it stopped nothing)."""
    stopped = stopped_rows(view)
    if not stopped:
        return ""
    rule, epochs = view.spec.search.early_stop, view.spec.train.epochs
    saved = sum(epochs - r.stopped_at for r in stopped)
    how = (f" at rungs {', '.join(map(str, rule.rungs))} (keep {rule.keep:g} of {rule.peers.replace('_', ' ')} "
           f"peers, from {rule.min_peers})" if rule is not None else "")
    return (f"Early stopping{how} stopped {len(stopped)} of {len(view.search_rows)} search trials, "
            f"{saved} of their {len(stopped) * epochs} epochs not trained; they are listed with the metrics "
            "of the epoch they stopped at and are not points of the front.")


def plain(text: str) -> str:
    """Markdown-flavoured text (`ReportView.recommendation`) without its ** and ` marks."""
    return text.replace("**", "").replace("`", "")


def report_view(spec: StudySpec, rows: Sequence[TrialRow], state: str = "done",
                directory: Path | str | None = None, live: Sequence[dict] = ()) -> ReportView:
    """The view of a study from its spec, its rows (any order), its state and its running trials'
    live entries. A trial trained with several seeds (`TrialRow.replicates`) is shown, placed on the
    front and recommended by its means over them (`seeds.mean_row`)."""
    recompute = any(r.is_baseline and r.replicates for r in rows)  # then every drop is against its means
    rows = sort_rows(mean_row(r, spec.seed, recompute=recompute) for r in rows)
    b = baseline_index(rows)
    baseline = rows[b] if b is not None else None
    best = recommended(rows, spec.report.max_accuracy_drop, size_tolerance=spec.report.size_tolerance)
    paths = list(spec.search.space)
    return ReportView(
        spec=spec, state=state, rows=rows, baseline=baseline, paths=paths,
        objectives=objective_pairs(spec.search.objectives),
        front=pareto_front(rows, spec.search.objectives), best=best, counts=state_counts(rows),
        recommendation=_recommendation(spec, rows, best, baseline, paths),
        directory=Path(directory) if directory is not None else None, live=tuple(live))


def view_of(record) -> ReportView:
    """The view of a study read from disk (`reading.StudyRecord`: spec, rows, state, directory and,
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
    passed_over = qualifying(rows, limit).index(best) > 0
    why = (f"within {points(limit)} points of the baseline, the fewest parameters that no trial at most "
           f"{100 * spec.report.size_tolerance:g}% larger beats on accuracy" if passed_over else
           f"the fewest parameters with accuracy within {points(limit)} points of the baseline")
    test = compare(r, baseline)  # as `ReportView.baseline_test`, before the view exists
    first = "their first seed's test samples, " if r.seeds or baseline.seeds else "them, "  # one replicated
    notes = [*(["95% intervals from the test samples"] if finite(r.accuracy_interval[0]) else []),
             *([f"paired on {first}{test.text()}" if isinstance(test, Paired) else test.text()] if test else [])]
    return (f"**Trial {r.label}**: {why}. Accuracy {accuracy_text(r)}, {against_baseline(drop)} "
            f"the baseline's {accuracy_text(baseline)}" + (f" ({'; '.join(notes)})" if notes else "")
            + f"; params {cost_text(r, 'params', baseline)}; "
            f"MACs {cost_text(r, 'macs', baseline)}; training MACs {cost_text(r, 'train_macs', baseline)}; "
            f"wall time {seconds(r.metric('wall_s'))}; widths {widths(r.widths)}"
            + (f". Searched: {chosen}." if chosen else ".") + " " + _rivals(spec, rows, best) + _beaten(r))


def _beaten(row: TrialRow) -> str:
    """' ...' saying that the recommended trial's scratch control is significantly more accurate, and how
    to export it; '' when none is."""
    beaten = control_beats_trial(row)
    if beaten is None:
        return ""
    match, control, test = beaten
    what = ("trained from scratch for as many training MACs" if match == "compute" else
            "trained from scratch for as many epochs")
    return (f" **Its scratch control beats it**: the same widths {what} ({control.get('epoch')} epochs) reached "
            f"{percent(control.get('accuracy'))} against its {percent(row.metric('accuracy'))} ({test.text()}): "
            f"pruning in training cost accuracy here; `adsearch export <study> --trial {row.label} --control "
            f"{match}` writes that network.")


def _rivals(spec: StudySpec, rows: list[TrialRow], best: int) -> str:
    """One sentence: why the recommended row `best` was chosen over its nearest rivals among the
    qualifying trials, the nearest smaller one (passed over: `report.size_tolerance`) and the next
    larger one."""
    limit, tolerance = spec.report.max_accuracy_drop, spec.report.size_tolerance
    candidates = qualifying(rows, limit)
    at = candidates.index(best)
    r, smaller = rows[best], [rows[i] for i in candidates[:at]]
    larger = [rows[i] for i in candidates[at + 1:] if rows[i].metrics["params"] > r.metrics["params"]]
    params, acc = r.metrics["params"], r.metrics["accuracy"]

    def gap(other: TrialRow) -> str:
        d = other.metrics["accuracy"] - acc
        return f"{points(abs(d))} points {'more' if d > 0 else 'less'} accurate" if d else "as accurate"

    def tested(other: TrialRow) -> list[str]:
        """`other` against the recommended trial, paired on their test samples (none: [])."""
        test = compare(other, r)
        return [test.text()] if test is not None else []

    parts = []
    if smaller:
        s = smaller[-1]
        why = (f"a trial at most `report.size_tolerance` = {100 * tolerance:g}% larger and more accurate is "
               "preferred")
        parts.append(f"over trial {s.label}, {100 * (1 - s.metrics['params'] / params):.1f}% smaller but "
                     f"{gap(s)} ({'; '.join([*tested(s), why])})")
    else:
        parts.append(f"as no smaller trial is within {points(limit)} points of the baseline")
    if larger:
        n = larger[0]
        ratio = n.metrics["params"] / params
        more = f"{100 * (ratio - 1):.1f}% more params" if ratio < 2 else f"{ratio:.1f}x the params"
        parts.append(f"over trial {n.label}, the next larger ({'; '.join([f'{more}, {gap(n)}', *tested(n)])})")
    return "Chosen " + " and ".join(parts) + "."


# --- the recommendation while a search runs ------------------------------------------------------


def best_so_far(baseline: TrialRow | None, rows: Sequence[TrialRow], max_accuracy_drop: float, *,
                size_tolerance: float) -> str:
    """The recommended trade-off among the search trials `rows` so far, for the progress lines:
    '97.5% at 10.0x fewer params', 'none within 1.0 pts of the baseline yet', or '' without a
    baseline (`pareto.recommended` decides, as for the report)."""
    if baseline is None:
        return ""
    every = [baseline, *rows]
    i = recommended(every, max_accuracy_drop, size_tolerance=size_tolerance)
    if i is None:
        return f"none within {points(max_accuracy_drop)} pts of the baseline yet"
    r = every[i]
    return f"{percent(r.metric('accuracy'))} at {fewer(r, 'params', baseline) or count(r.metric('params'))} params"
