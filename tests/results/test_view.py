"""The report's view, checked by hand on a handful of trials: the front, the recommended trial,
the state counts, the comparisons with the baseline, what can be plotted; the arms (criterion x
width rule) compared at equal parameters, and a trial against its scratch control.

The study (objectives: accuracy max, params min; a recommendation may be 1 point below the baseline):

| trial | state | accuracy | params | MACs | recorded | note |
| baseline | COMPLETE | 90.0% | 1000 | 100 | ratios 1, drop 0 | the most accurate: on the front |
| 0 | COMPLETE | 89.5% | 300 | 30 | params_ratio 0.3, drop 0.005 | on the front, recommended |
| 1 | COMPLETE | 80.0% | 100 | — | nothing | the fewest params: on the front |
| 2 | COMPLETE | 85.0% | 500 | 50 | nothing | dominated by 0 |
| 3 | FAIL | | | | | |
| 4 | RUNNING | | | | | |
| 5 | WAITING | | | | | |
| 6 | COMPLETE | 89.0% | 400 | 40 | nothing | exactly 1 point down, but more params than 0 |
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import HAND_MADE_SPEC, trial_row

from adsearch import correctness
from adsearch.report.html import html_page
from adsearch.report.markdown import markdown
from adsearch.report.text import study_text
from adsearch.spec.loading import parse_spec
from adsearch.results.arms import ArmCell, arm_of, budget_text
from adsearch.results.plot_data import group_names, pair_front, plottable
from adsearch.results.scratch_view import scratch_metric, scratch_verdict
from adsearch.results.view import StateCounts, plain, report_view, view_of

SPEC = HAND_MADE_SPEC.replace("trials: 6", "trials: 8")  # room for the unfinished trials below


def rows():
    def t(number, accuracy, params, macs=None, **recorded):
        return trial_row(number, settings={"pruning.target_density": 0.5}, accuracy=accuracy, params=params,
                         macs=macs, **recorded)

    return [
        t(6, 0.89, 400, 40),
        t(1, 0.80, 100),
        trial_row(3, state="FAIL", error="boom", settings={"pruning.target_density": 0.9}),
        trial_row(4, state="RUNNING"),
        trial_row(5, state="WAITING"),
        t(2, 0.85, 500, 50),
        t(0, 0.895, 300, 30, params_ratio=0.3, accuracy_drop=0.005),
        trial_row(-1, role="baseline", accuracy=0.90, params=1000, macs=100, params_ratio=1.0, macs_ratio=1.0,
                  accuracy_drop=0.0, widths=[8, 16]),
    ]


@pytest.fixture
def view():
    return report_view(parse_spec(SPEC), rows(), "running", "reports/hand-made")


def numbers(view, indices) -> list[int]:
    return [view.rows[i].number for i in indices]


def test_rows_are_sorted_and_the_front_and_recommendation_found(view):
    assert [r.number for r in view.rows] == [-1, 0, 1, 2, 3, 4, 5, 6]
    assert view.baseline is view.rows[0] and view.paths == ["pruning.target_density"]
    assert numbers(view, view.front) == [-1, 0, 1]
    assert [r.number for r in view.front_rows] == [-1, 0, 1]
    assert view.recommended.number == 0 and view.best == 1  # 0.5 points down with 300 params; 6 has 400
    assert view.on_front(view.rows[2]) and not view.on_front(view.rows[3])
    assert view.is_recommended(view.rows[1]) and not view.is_recommended(view.rows[7])
    assert view.objectives == [("accuracy", "max"), ("params", "min")]
    assert view.objectives_text == "accuracy (max), params (min)"
    assert view.directory == Path("reports/hand-made") and view.max_drop == 0.01


def test_states_are_counted_once_for_every_writer(view):
    assert view.counts == StateCounts(complete=4, failed=1, unfinished=2)  # RUNNING and WAITING
    assert view.counts.done == 5 and [r.number for r in view.failed] == [3]
    assert view.summary() == "5 of 8 search trials done: 4 complete, 1 failed, 2 running"
    stopped = report_view(view.spec, rows(), "interrupted")
    assert stopped.counts_text() == "4 complete, 1 failed, 2 unfinished"
    # the Markdown, the HTML page and `show` say the same
    assert "5 of 8 search trials done: 4 complete, 1 failed, 2 running." in markdown(view)
    assert "5 of 8 search trials done: 4 complete, 1 failed, 2 running." in html_page(view, "")
    assert "search: 5 of 8 trials done (4 complete, 1 failed, 2 running)" in study_text(view)


def test_comparisons_use_what_a_trial_recorded_else_the_baseline(view):
    by = {r.number: r for r in view.rows}
    assert view.drop(by[0]) == 0.005  # recorded
    assert view.drop(by[6]) == pytest.approx(0.01)  # computed: 0.90 - 0.89
    assert view.fewer(by[0], "params") == "3.3x fewer"  # recorded 0.3
    assert view.fewer(by[6], "params") == "2.5x fewer"  # computed: 400 / 1000
    assert view.fewer(by[0], "macs") == "3.3x fewer"  # computed: 30 / 100
    assert view.fewer(by[1], "macs") == "" and view.fewer(by[-1], "params") == ""  # no MACs; the baseline itself
    assert view.cost_text(by[1], "params") == "100 (10.0x fewer)" and view.cost_text(by[-1], "params") == "1.00k"
    assert view.inverse_ratio(by[0], "params") == pytest.approx(1 / 0.3) and view.inverse_ratio(by[3], "params") is None
    alone = report_view(view.spec, [r for r in rows() if not r.is_baseline])
    assert alone.baseline is None and alone.fewer(alone.rows[-1], "params") == ""  # trial 6 recorded nothing


def test_plots_show_complete_trials_with_the_cost(view):
    assert view.costs == ["params", "macs"]  # nobody has train_macs
    assert numbers(view, plottable(view.rows, "params")) == [-1, 0, 1, 2, 6]
    assert numbers(view, plottable(view.rows, "macs")) == [-1, 0, 2, 6]  # trial 1 has no MACs
    assert numbers(view, pair_front(view.rows, "params")) == [1, 0, -1]  # by params
    assert numbers(view, pair_front(view.rows, "macs")) == [0, -1]


def test_recommendation_text(view):
    text = view.recommendation
    assert text.startswith("**Trial 0**: the fewest parameters with accuracy within 1.0 points of the baseline. "
                           "Accuracy 89.5%, 0.5 points below the baseline's 90.0%; params 300 (3.3x fewer); "
                           "MACs 30 (3.3x fewer);")
    assert text.endswith("Searched: `pruning.target_density` = 0.5. Chosen as no smaller trial is within 1.0 points of "
                         "the baseline and over trial 6, the next larger (33.3% more params, 0.5 points less accurate).")
    assert plain(text).startswith("Trial 0: ") and "Searched: pruning.target_density = 0.5. Chosen" in plain(text)
    by = {r.number: r for r in rows()}
    none = report_view(view.spec, [by[-1], by[1]])
    assert none.best is None and none.recommendation == (
        "**None qualifies**: no completed search trial is within 1.0 points of the baseline's accuracy (90.0%). "
        "The most accurate is trial 1 at 80.0% with 100 (10.0x fewer) params.")
    assert report_view(view.spec, [by[1]]).recommendation == "None: there is no baseline to compare against."


def test_the_recommendation_says_why_over_its_nearest_rivals(view):
    base = trial_row(-1, role="baseline", accuracy=0.997, params=1_150_000)
    small, chosen = trial_row(12, accuracy=0.989, params=15_200), trial_row(6, accuracy=0.997, params=15_800)
    larger = trial_row(3, accuracy=1.0, params=270_000)
    text = report_view(view.spec, [base, small, chosen, larger]).recommendation
    assert text.startswith("**Trial 6**: within 1.0 points of the baseline, the fewest parameters that no trial at "
                           "most 10% larger beats on accuracy. Accuracy 99.7%, level with the baseline's 99.7%; ")
    counted = [trial_row(r.number, role=r.role, test_samples=360, **{k: r.metrics[k] for k in ("accuracy", "params")})
               for r in (base, small, chosen, larger)]
    text = report_view(view.spec, counted).recommendation  # with the test samples: 95% intervals
    assert "Accuracy 99.7% (98.4-100.0), level with the baseline's 99.7% (98.4-100.0) (95% intervals from the " \
           "test samples); params" in text
    assert text.endswith("Chosen over trial 12, 3.8% smaller but 0.8 points less accurate (a trial at most "
                         "`report.size_tolerance` = 10% larger and more accurate is preferred) and over trial 3, the "
                         "next larger (17.1x the params, 0.3 points more accurate).")
    alone = report_view(view.spec, [base, chosen]).recommendation
    assert alone.endswith("Chosen as no smaller trial is within 1.0 points of the baseline.")


def test_group_names_from_density_records_else_numbered(view):
    assert group_names(view.rows, 2) == ["group 1", "group 2"]
    traced = trial_row(7, history=[{"epoch": 1, "density": {"conv1": 0.5, "conv2": 0.4}}])
    assert group_names(view.rows, 2, traced) == ["conv1", "conv2"] and group_names(view.rows, 3, traced)[2] == "group 3"
    assert group_names(report_view(view.spec, [*rows(), traced]).rows, 2) == ["conv1", "conv2"]


def test_view_of_a_study_read_from_disk():
    record = SimpleNamespace(spec=parse_spec(SPEC), rows=rows(), state="done", directory=Path("reports/hand-made"))
    view = view_of(record)
    assert view.state == "done" and view.directory == Path("reports/hand-made") and view.recommended.number == 0


# --- arms: criterion x width rule, compared at equal parameters -----------------------------------
#
# | trial | arm | accuracy | params | note |
# | baseline | — | 95.0% | 1000 | |
# | 0 | activation_density / density | 94.0% | 400 | |
# | 1 | activation_density / density | 93.0% | 200 | |
# | 2 | activation_density / density | 90.0% | 100 | the smallest |
# | 3 | random / uniform 0.5 | 93.0% | 500 | |
# | 4 | random / uniform 0.5 | 92.8% | 240 | 0.2 points under trial 1: no clear winner at <= 250 |
# | 5 | random / uniform 0.5 | 91.0% | 120 | 1 point over trial 2: random leads at <= 125 |
# | 6 | random / uniform 0.5 | 99.0% | 50 | a repeat of trial 5 (its accuracy made up): counted nowhere |
# | 7 | l1_norm / density | FAIL | | not compared |
#
# Budgets: the sizes cluster within 1.5x of each cluster's largest: {500, 400}, {240, 200}, {120, 100}.

ARM_SPEC = SPEC.replace("pruning.target_density: {values: [0.3, 0.5, 0.7, 0.9]}",
                        "pruning.criterion: {values: [activation_density, l1_norm, random]}\n"
                        "    pruning.widths: {values: [density, uniform]}")
AD, RANDOM = {"pruning.criterion": "activation_density", "pruning.widths": "density"}, \
    {"pruning.criterion": "random", "pruning.widths": "uniform"}


def arm_rows():
    return [trial_row(-1, role="baseline", accuracy=0.95, params=1000, train_macs=10e9),
            trial_row(0, settings=AD, accuracy=0.94, params=400, train_macs=8.5e9),
            trial_row(1, settings=AD, accuracy=0.93, params=200, train_macs=4e9),
            trial_row(2, settings=AD, accuracy=0.90, params=100, train_macs=2e9),
            trial_row(3, settings=RANDOM, accuracy=0.93, params=500),
            trial_row(4, settings=RANDOM, accuracy=0.928, params=240),
            trial_row(5, settings=RANDOM, accuracy=0.91, params=120),
            trial_row(6, settings=RANDOM, accuracy=0.99, params=50, repeat_of=5),
            trial_row(7, state="FAIL", settings={"pruning.criterion": "l1_norm", "pruning.widths": "density"})]


@pytest.fixture
def arms():
    return report_view(parse_spec(ARM_SPEC), arm_rows())


def test_a_trials_arm_is_its_criterion_and_width_rule_searched_or_from_the_base_spec(arms):
    by = {r.number: r for r in arms.rows}
    assert arms.arm(by[0]) == "activation_density / density" and arms.arm(by[3]) == "random / uniform 0.5"
    assert arms.arm(by[7]) == "l1_norm / density" and arms.arm(by[-1]) is None  # the baseline prunes nothing
    assert arms.arms() == ["activation_density / density", "random / uniform 0.5"]  # complete trials only
    assert arms.grouped_by_arm
    assert arms.arm_color("activation_density / density") != arms.arm_color("random / uniform 0.5")
    base = parse_spec(SPEC.replace("report:", "pruning: {criterion: l1_norm, widths: uniform, keep: 0.3}\nreport:"))
    assert arm_of(trial_row(0), base) == "l1_norm / uniform 0.3"  # nothing searched: the base spec's
    assert arm_of(trial_row(0, settings={"pruning.keep": 0.25}), base) == "l1_norm / uniform 0.25"
    assert arm_of(trial_row(0, settings={"pruning.widths": "density"}), base) == "l1_norm / density"  # no keep


def test_arm_table_gives_the_best_accuracy_and_trial_count_under_each_budget(arms):
    assert arms.arm_budgets() == [500, 240, 120]
    assert [budget_text(b) for b in arms.arm_budgets()] == ["<= 500 params", "<= 240 params", "<= 120 params"]
    table = arms.arm_table()
    assert table["activation_density / density"] == [ArmCell(0.94, 3), ArmCell(0.93, 2), ArmCell(0.90, 1)]
    assert table["random / uniform 0.5"] == [ArmCell(0.93, 3), ArmCell(0.928, 2), ArmCell(0.91, 1)]  # not the repeat
    assert [c.text() for c in table["activation_density / density"]] == ["94.0% (3 trials)", "93.0% (2 trials)",
                                                                         "90.0% (1 trial)"]
    assert ArmCell(None, 0).text() == "—"
    wide = report_view(arms.spec, [*arm_rows(), trial_row(8, settings=AD, accuracy=0.5, params=4)])
    assert wide.arm_budgets() == [500, 240, 120, 4]
    assert wide.arm_table()["activation_density / density"][3] == ArmCell(0.5, 1)
    # more clusters than budgets: the clusters widen (here to 2x, then 4x)
    many = [trial_row(n, settings=AD, accuracy=0.9, params=1.6 ** n) for n in range(12)]
    assert report_view(arms.spec, [*arm_rows()[:1], *many]).arm_budgets() == [1.6 ** 11, 1.6 ** 8, 1.6 ** 5, 1.6 ** 2]


def test_arm_verdicts_name_a_clear_winner_and_call_a_small_gap_no_clear_winner(arms):
    verdicts = arms.arm_verdicts()
    assert verdicts[0] == ("<= 500 params: activation_density / density leads by 1.0 points (94.0%, best of 3 "
                           "trials; the next best, random / uniform 0.5, 93.0%, best of 3 trials).")
    assert verdicts[1] == ("<= 240 params: within 0.2 points: no clear winner on 2 and 2 trials "
                           "(activation_density / density 93.0%, random / uniform 0.5 92.8%).")
    assert verdicts[2].startswith("<= 120 params: random / uniform 0.5 leads by 1.0 points (91.0%, best of 1 trial;")
    assert verdicts[3].startswith("One seed, one study:") and len(verdicts) == 4
    tied = report_view(arms.spec, [arm_rows()[0], trial_row(0, settings=AD, accuracy=0.93, params=400),
                                   trial_row(1, settings=RANDOM, accuracy=0.93, params=500)])
    assert tied.arm_verdicts()[0] == ("<= 500 params: activation_density / density and random / uniform 0.5 tie "
                                      "at 93.0% (best of 1 trial and of 1 trial).")


def test_a_study_of_one_arm_is_not_grouped(view):
    assert view.arms() == ["activation_density / density"] and not view.grouped_by_arm
    assert view.arm_verdicts() == [] and view.scratch_rows == []
    assert "Arms" not in markdown(view) and "arms" not in study_text(view) and "id='arms'" not in html_page(view, "")


# --- a trial against its scratch control ----------------------------------------------------------


def test_scratch_verdict_says_which_wins_by_how_much_at_what_training_compute():
    def with_control(accuracy, train_macs, control_accuracy, control_train_macs):
        row = trial_row(0, accuracy=accuracy, train_macs=train_macs)
        row.scratch = {"accuracy": control_accuracy, "train_macs": control_train_macs, "params": 100}
        return row

    assert scratch_verdict(with_control(0.94, 8.5e9, 0.93, 1e9)) == (
        "pruning in training: +1.0 points over training these widths from scratch, at 8.5x its training MACs")
    assert scratch_verdict(with_control(0.93, 4e9, 0.931, 1e9)) == (
        "training these widths from scratch matches it (+0.1 points) at 4.0x less training compute")
    assert scratch_verdict(with_control(0.90, 2e9, 0.91, 1e9)) == (
        "training these widths from scratch: +1.0 points over pruning in training, at 2.0x less training compute")
    assert scratch_verdict(with_control(0.93, 1e9, 0.932, 2e9)) == (
        "pruning in training matches training these widths from scratch (-0.2 points) at 2.0x less training compute")
    assert scratch_verdict(with_control(0.93, None, 0.932, 2e9)) == (
        "training these widths from scratch matches pruning in training (+0.2 points)")  # no compute to compare
    assert scratch_verdict(trial_row(0, accuracy=0.9)) == ""  # no control
    assert scratch_metric(with_control(0.9, 1, float("nan"), 1), "accuracy") is None


def test_scratch_rows_are_the_trials_with_a_control(arms):
    rows = arm_rows()
    rows[1].scratch = {"accuracy": 0.93}
    assert [r.number for r in report_view(arms.spec, rows).scratch_rows] == [0]


def test_scratch_summary_counts_the_trials_above_and_below_their_controls_and_flags_a_front_only_choice(arms):
    rows = arm_rows()
    controls = {0: (0.93, 1e9), 1: (0.931, 2e9), 2: (0.91, 1e9), 3: (0.95, 5e8)}  # gaps +1.0, -0.1, -1.0, -2.0
    for row in rows:
        if row.number in controls:
            row.scratch = {"accuracy": controls[row.number][0], "train_macs": controls[row.number][1]}
            row.metrics["train_macs"] = 4e9
    view = report_view(arms.spec, rows)
    assert view.scratch_summary() == (
        "Over 4 trials with a control, pruning in training is -0.53 points from training the same widths from "
        "scratch on average (1 clearly above their control, 2 clearly below, 1 within 0.5 points), at 4.5x the "
        "control's training MACs on average.")  # 4, 2, 4 and 8x
    front = [r for r in view.scratch_rows if view.on_front(r)]
    for row in rows:
        if row.scratch is not None and row not in front:
            row.scratch = None
    only_front = report_view(arms.spec, rows)
    assert len(only_front.scratch_rows) == len(front) >= 2
    assert only_front.scratch_summary().endswith("so their edge is overstated (`adsearch scratch --trials` controls "
                                                 "others).")
    assert report_view(arms.spec, arm_rows()).scratch_summary() == ""  # no control at all


# --- comparisons paired on the test samples (McNemar) --------------------------------------------

N = 1000


def samples(errors: range) -> dict:
    """The record of a trial on N test samples that got exactly those in `errors` wrong."""
    hits = np.ones(N, dtype=bool)
    hits[list(errors)] = False
    return correctness.record(hits, np.arange(N) % 10)


def test_arm_verdicts_name_a_lead_only_where_the_paired_test_finds_it():
    # <= 500: trial 0 (94.0%) against trial 3 (93.0%): trial 0's 60 errors are among trial 3's 70, so 10
    #   samples tell them apart, all for trial 0: p = 2 * 0.5 ** 10 = 0.002, a lead
    # <= 240: trial 1 (93.0%) against trial 4 (92.0%): no error in common, 70 against 80 discordant: p = 0.26
    rows = arm_rows()
    errors = {0: range(0, 60), 3: range(0, 70), 1: range(0, 70), 4: range(500, 580), 2: range(0, 100),
              5: range(0, 90)}
    for row in rows:
        if row.number in errors:
            row.correct = samples(errors[row.number])
            row.metrics["accuracy"] = 1 - len(errors[row.number]) / N
    verdicts = report_view(parse_spec(ARM_SPEC), rows).arm_verdicts()
    assert verdicts[0] == ("<= 500 params: activation_density / density leads by 1.0 points (94.0%, best of 3 "
                           "trials; the next best, random / uniform 0.5, 93.0%, best of 3 trials; McNemar p = "
                           "0.002, significant at 5%).")
    p = correctness.mcnemar_p(80, 70)
    assert 0.2 < p < 0.5
    assert verdicts[1] == ("<= 240 params: activation_density / density 93.0% and random / uniform 0.5 92.0%, 1.0 "
                           f"points apart, within the noise (McNemar p = {correctness.p_text(p)}, not significant "
                           "at 5%): no winner on 2 and 2 trials.")
    assert "paired test finds the gap significant at 5% (McNemar's on their test samples" in verdicts[-1]


def test_a_trial_against_its_control_and_the_baseline_gives_the_paired_p_value(arms):
    row = trial_row(0, accuracy=0.93, train_macs=4e9)
    row.correct = samples(range(0, 70))
    row.scratch = {"accuracy": 0.94, "train_macs": 1e9, "correct": samples(range(100, 160))}  # 70 against 60
    p = correctness.p_text(correctness.mcnemar_p(60, 70))
    assert scratch_verdict(row) == (f"training these widths from scratch matches it (+1.0 points; McNemar p = {p}, "
                                    "not significant at 5%) at 4.0x less training compute")
    row.scratch["correct"] = samples(range(0, 60))  # its errors a subset of the trial's: 10 to 0
    assert scratch_verdict(row) == ("training these widths from scratch: +1.0 points over pruning in training "
                                    "(McNemar p = 0.002, significant at 5%), at 4.0x less training compute")

    base = trial_row(-1, role="baseline", accuracy=0.997, params=1_150_000, test_samples=N)
    small = trial_row(12, accuracy=0.989, params=15_200, test_samples=N)
    chosen = trial_row(6, accuracy=0.997, params=15_800, test_samples=N)
    base.correct, small.correct, chosen.correct = samples(range(3)), samples(range(3, 14)), samples(range(3))
    text = report_view(arms.spec.model_copy(update={"search": parse_spec(SPEC).search}),
                       [base, small, chosen]).recommendation
    assert "level with the baseline's 99.7% (99.1-99.9) (95% intervals from the test samples; paired on them, " \
           "McNemar p = 1, not significant at 5%)" in text
    p = correctness.p_text(correctness.mcnemar_p(3, 11))
    assert text.endswith(f"Chosen over trial 12, 3.8% smaller but 0.8 points less accurate (McNemar p = {p}, not "
                         "significant at 5%; a trial at most `report.size_tolerance` = 10% larger and more accurate "
                         "is preferred).")


def test_the_recommendation_says_when_its_scratch_control_is_significantly_better(arms):
    spec = arms.spec.model_copy(update={"search": parse_spec(SPEC).search})
    base = trial_row(-1, role="baseline", accuracy=0.997, params=1_150_000, test_samples=N)
    chosen = trial_row(6, accuracy=0.99, params=15_800, test_samples=N, train_macs=4e9)
    base.correct, chosen.correct = samples(range(3)), samples(range(10))
    # at equal epochs: 2 errors fewer, within the noise; at equal compute: 9 fewer, all among the trial's
    chosen.scratch = {"state": "COMPLETE", "accuracy": 0.992, "epoch": 20, "correct": samples(range(8))}
    chosen.scratch_compute = {"state": "COMPLETE", "accuracy": 0.999, "epoch": 170, "train_macs": 4e9,
                              "correct": samples(range(1))}
    text = report_view(spec, [base, chosen]).recommendation
    assert text.endswith("**Its scratch control beats it**: the same widths trained from scratch for as many "
                         "training MACs (170 epochs) reached 99.9% against its 99.0% (McNemar p = 0.0039, "
                         "significant at 5%): pruning in training cost accuracy here; `adsearch export <study> "
                         "--trial 6 --control compute` writes that network.")
    chosen.scratch_compute = None
    assert "scratch control beats it" not in report_view(spec, [base, chosen]).recommendation

    chosen.scratch_compute = {"state": "COMPLETE", "accuracy": 0.999, "epoch": 170, "train_macs": 4e9,
                              "correct": samples(range(1))}
    view = report_view(spec, [base, chosen])
    assert view.scratch_matches == ["epochs", "compute"]
    md = markdown(view)
    assert "**At equal epochs.**" in md and "**At equal training compute.**" in md
    assert ("- Trial 6: training these widths from scratch: +0.9 points over pruning in training (McNemar p = "
            "0.0039, significant at 5%), at about the same training compute.") in md
    assert "| 99.2% | — | 99.9% | 170 |" in md  # the front table: both controls
    text = study_text(view)
    assert "at equal training compute:" in text and "  trial 6: training these widths from scratch: +0.9" in text
