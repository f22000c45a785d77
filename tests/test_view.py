"""The report's view, checked by hand on a handful of trials: the front, the recommended trial,
the state counts, the comparisons with the baseline, what can be plotted.

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

import pytest
from helpers import HAND_MADE_SPEC, trial_row

from adsearch.report_html import html_page
from adsearch.report_md import markdown
from adsearch.report_text import study_text
from adsearch.spec import parse_spec
from adsearch.view import StateCounts, plain, report_view, view_of

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
    assert numbers(view, view.plottable("params")) == [-1, 0, 1, 2, 6]
    assert numbers(view, view.plottable("macs")) == [-1, 0, 2, 6]  # trial 1 has no MACs
    assert numbers(view, view.pair_front("params")) == [1, 0, -1]  # by params
    assert numbers(view, view.pair_front("macs")) == [0, -1]


def test_recommendation_text(view):
    text = view.recommendation
    assert text.startswith("**Trial 0**: the fewest parameters with accuracy within 1.0 points of the baseline. "
                           "Accuracy 89.5% (0.5 points below the baseline's 90.0%); params 300 (3.3x fewer); "
                           "MACs 30 (3.3x fewer);")
    assert text.endswith("Searched: `pruning.target_density` = 0.5.")
    assert plain(text).startswith("Trial 0: ") and plain(text).endswith("Searched: pruning.target_density = 0.5.")
    by = {r.number: r for r in rows()}
    none = report_view(view.spec, [by[-1], by[1]])
    assert none.best is None and none.recommendation == (
        "**None qualifies**: no completed search trial is within 1.0 points of the baseline's accuracy (90.0%). "
        "The most accurate is trial 1 at 80.0% with 100 (10.0x fewer) params.")
    assert report_view(view.spec, [by[1]]).recommendation == "None: there is no baseline to compare against."


def test_group_names_from_density_records_else_numbered(view):
    assert view.group_names(2) == ["group 1", "group 2"]
    traced = trial_row(7, history=[{"epoch": 1, "density": {"conv1": 0.5, "conv2": 0.4}}])
    assert view.group_names(2, traced) == ["conv1", "conv2"] and view.group_names(3, traced)[2] == "group 3"
    assert report_view(view.spec, [*rows(), traced]).group_names(2) == ["conv1", "conv2"]


def test_view_of_a_study_read_from_disk():
    record = SimpleNamespace(spec=parse_spec(SPEC), rows=rows(), state="done", directory=Path("reports/hand-made"))
    view = view_of(record)
    assert view.state == "done" and view.directory == Path("reports/hand-made") and view.recommended.number == 0
