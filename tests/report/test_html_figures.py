"""The HTML report's Plotly figures (adsearch/report/html_figures.py) from hand-made rows: the
density curves and the group names from a trial's history; the Pareto figure of a study of
several arms (`helpers.arm_rows`: trials 0 and 1 of one arm, 2 and 3 of the other; the front is
the baseline, 0 and 1; recommended: trial 0) against that of one arm."""

from __future__ import annotations

from dataclasses import replace

from helpers import ARM_SPEC, ARMS, HAND_MADE_SPEC, arm_rows, hand_made_rows

from adsearch.report.html_figures import density_figure, pareto_figure, width_profile_figure
from adsearch.results.view import report_view
from adsearch.spec.loading import parse_spec

SPEC = HAND_MADE_SPEC


def test_density_curves_and_group_names_come_from_the_trials_history():
    history = [{"epoch": 1, "density": {"conv1": 0.5, "conv2": 0.4, "conv3": 0.3}},
               {"epoch": 2, "density": {"conv1": 0.5, "conv2": 0.6, "conv3": 0.3}}]
    compressions = [{"round": 1, "epoch": 1, "widths_before": [64, 128, 256], "widths_after": [24, 40, 80],
                     "density": {"conv1": 0.5, "conv2": 0.4, "conv3": 0.3}, "params": 115_000}]
    rows = [replace(r, history=history, compressions=compressions) if r.number == 1 else r
            for r in hand_made_rows()]
    view = report_view(parse_spec(SPEC), rows)
    assert width_profile_figure(view).data[0].x == ("conv1", "conv2", "conv3")  # the baseline's widths
    figure = density_figure(view)
    assert [t.name for t in figure.data] == ["conv1", "conv2", "conv3", "compression"]
    assert figure.data[1].y == (0.4, 0.6) and figure.data[3].x == (1, 1, 1)
    assert all(t.customdata[0][0] == 1 for t in figure.data)  # every trace is trial 1's
    assert figure.layout.title.text == "trial 1: 1 compression round"
    assert density_figure(report_view(parse_spec(SPEC), hand_made_rows())) is None  # no history anywhere


def test_pareto_figure_colours_each_arm_and_rings_the_front_only_for_several_arms():
    view = report_view(parse_spec(ARM_SPEC), arm_rows())
    figure = pareto_figure(view, "params")
    traces = {t.name: t for t in figure.data}
    assert list(traces) == [*ARMS, "front (this pair)", "Pareto set", "baseline", "recommended: trial 0"]
    assert [c[0] for c in traces[ARMS[0]].customdata] == [0, 1] and [c[0] for c in traces[ARMS[1]].customdata] == [2, 3]
    assert traces[ARMS[0]].marker.color == view.arm_color(ARMS[0]) != traces[ARMS[1]].marker.color
    assert sorted(c[0] for c in traces["Pareto set"].customdata) == [-1, 0, 1]
    assert traces["Pareto set"].marker.symbol == "circle-open"  # a ring around the arm's colour
    assert "arm: random / uniform 0.5" in traces[ARMS[1]].hovertext[0]
    one = report_view(parse_spec(SPEC), hand_made_rows())
    assert [t.name for t in pareto_figure(one, "params").data] == ["trials", "front (this pair)", "Pareto set",
                                                                   "baseline", "recommended: trial 1"]
    assert pareto_figure(one, "params").data[2].marker.symbol is None  # filled orange, as always
