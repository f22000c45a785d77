"""The HTML report from hand-made rows: its figures' JSON (customdata = trial numbers), the trials
table, the failures, the study's state. The page of a real study, drawn in headless Chromium:
test_report_study.py."""

from __future__ import annotations

import json
import re
from dataclasses import replace

from helpers import HAND_MADE_SPEC, hand_made_rows, trial_row

from adsearch.report import write_report
from adsearch.report_html import density_figure, html_page, width_profile_figure
from adsearch.spec import parse_spec
from adsearch.view import report_view

SPEC = HAND_MADE_SPEC



def _figures(html_text: str) -> dict[str, dict]:
    return {name: json.loads(body) for name, body in
            re.findall(r"<script type='application/json' data-plot='([\w-]+)'>(.*?)</script>", html_text, re.S)}


def test_report_html_plots_the_front_marks_the_recommendation_and_lists_failures(written):
    _, study_dir, files = written
    text = files["report.html"].read_text()
    figures = _figures(text)
    assert set(figures) == {"plot-pareto-params", "plot-pareto-macs", "plot-pareto-train_macs", "plot-widths"}
    for name in ("plot-pareto-params", "plot-pareto-macs", "plot-pareto-train_macs"):
        traces = {t["name"]: t for t in figures[name]["data"]}
        assert sorted(c[0] for c in traces["Pareto set"]["customdata"]) == [-1, 0, 1, 3]
        assert traces["trials"]["customdata"] == [[4]]  # dominated; the failed trial 2 is not plotted
        assert traces["recommended: trial 1"]["customdata"] == [[1]]
        assert traces["baseline"]["customdata"] == [[-1]]
    params = {t["name"]: t for t in figures["plot-pareto-params"]["data"]}
    assert params["Pareto set"]["x"] == [23_000, 115_000, 400_000, 1_150_000]  # sorted by the cost
    hover = params["Pareto set"]["hovertext"][0]
    assert "<b>trial 3</b>" in hover and "pruning.target_density = 0.3" in hover and "50.0x fewer" in hover
    widths = {t["name"]: t["y"] for t in figures["plot-widths"]["data"]}
    assert widths == {"baseline": [64, 128, 256], "trial 3": [8, 16, 32], "trial 1 (recommended)": [24, 40, 80],
                      "trial 0": [40, 80, 160]}
    assert re.findall(r"<tr id='trial-(\w+)'", text) == ["baseline", "0", "1", "2", "3", "4"]
    failed = text.split("<table id='failed'>")[1].split("</table>")[0]
    assert "<td>2</td>" in failed and "RuntimeError: CUDA out of memory | step 3" in failed
    assert "<span class='state done'>done</span>" in text and "<script src" not in text


def test_report_html_says_a_study_is_running(tmp_path):
    spec = parse_spec(SPEC)
    rows = [r for r in hand_made_rows() if r.number in (-1, 3)]
    rows.append(trial_row(5, state="RUNNING"))
    files = write_report(tmp_path, spec, rows, state="running")
    text = files["report.html"].read_text()
    assert "<span class='state running'>running</span>" in text and "1 running" in text
    assert "The study is still running" in text


def test_page_renders_the_view_and_the_spec_text_it_is_given():
    view = report_view(parse_spec(SPEC), hand_made_rows(), "interrupted")
    text = html_page(view, "name: hand-made  # <as run>")
    assert "5 of 6 search trials done: 4 complete, 1 failed. Objectives: accuracy (max), params (min)." in text
    assert "The study was interrupted" in text and "<pre class='spec'>name: hand-made  # &lt;as run&gt;</pre>" in text
    assert "<p><b>Trial 1</b>: the fewest parameters" in text and "<code>pruning.target_density</code> = 0.7" in text
    row = re.search(r"<tr id='trial-1' class='front best'>(.*?)</tr>", text).group(1)
    assert "<td data-v='10.0'>10.0x fewer</td>" in row  # sorts by how many times fewer params


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
