"""The HTML report from hand-made rows: its figures' JSON (customdata = trial numbers), the trials
table, the failures, the study's state; a study of several arms (colours, the arm table, drawn in
headless Chromium) with scratch controls. The page of a real study, drawn in headless Chromium:
test_report_study.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from helpers import ARM_SPEC, ARMS, HAND_MADE_SPEC, arm_rows, hand_made_rows, trial_row

from adsearch.report.writer import write_report
from adsearch.report.html import html_page
from adsearch.spec.loading import parse_spec
from adsearch.results.view import report_view

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


# --- a study of several arms (criterion x width rule), two trials with a scratch control -----------
#
# | trial | arm | accuracy | params | scratch control |
# | baseline | — | 95.0% | 1000 | |
# | 0 | activation_density / density | 94.0% | 400 | 93.0%, 1.00G training MACs (the trial: 8.50G) |
# | 1 | activation_density / density | 93.0% | 200 | |
# | 2 | random / uniform 0.5 | 93.0% | 500 | |
# | 3 | random / uniform 0.5 | 92.8% | 240 | |
#
# The front: baseline, 0, 1 (trial 2 is beaten by 0, trial 3 by 1); recommended: trial 0 (1 point down).


def test_page_compares_the_arms_and_shows_the_scratch_controls():
    text = html_page(report_view(parse_spec(ARM_SPEC), arm_rows()), "")
    arms = text.split("<table id='arms'>")[1].split("</table>")[0]
    assert re.findall(r"<th>(.*?)</th>", arms) == ["arm", "&lt;= 500 params", "&lt;= 240 params"]
    assert re.findall(r"<td>([^<]*)</td>", arms) == ["94.0% (2 trials)", "93.0% (1 trial)",
                                                     "93.0% (2 trials)", "92.8% (1 trial)"]
    verdicts = re.findall(r"<li>(.*?)</li>", text.split("<ul id='arm-verdicts'>")[1].split("</ul>")[0])
    assert verdicts[0].startswith("&lt;= 500 params: activation_density / density leads by 1.0 points")
    assert verdicts[1].startswith("&lt;= 240 params: within 0.2 points: no clear winner on 1 and 1 trials")
    header = re.findall(r"<th title='sort'>(.*?)</th>", text)
    assert header[2] == "arm" and header.index("scratch accuracy") + 1 == header.index("scratch train MACs")
    row = re.search(r"<tr id='trial-0' class='front best'>(.*?)</tr>", text).group(1)
    assert "<td>activation_density / density</td>" in row
    assert "<td data-v='0.93'>93.0%</td><td data-v='1000000000.0'>1.00G</td>" in row  # the control's
    assert ("<li>trial 0: pruning in training: +1.0 points over training these widths from scratch, at 8.5x its "
            "training MACs</li>") in text


def test_page_of_one_arm_without_scratch_controls_adds_nothing():
    page = html_page(report_view(parse_spec(SPEC), hand_made_rows()), "")
    text = re.sub(r"<script.*?</script>", "", page, flags=re.S)  # plotly.js has words of its own
    assert "<h2>All trials</h2>" in text and "id='arms'" not in text and "scratch" not in text and "<th title='sort'>arm</th>" not in text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium is not installed (.ci/run installs it)")
def test_headless_chromium_draws_the_arms_in_the_legend_and_the_arm_table(tmp_path):
    files = write_report(tmp_path / "arms", parse_spec(ARM_SPEC), arm_rows())
    flags = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=5000", "--dump-dom"]
    dom = subprocess.run([*flags, files["report.html"].resolve().as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    starts = [(m.start(), m.group(1)) for m in re.finditer(r'<div[^>]*\bid="(plot-pareto-[\w-]+)"', dom)]
    assert [name for _, name in starts] == ["plot-pareto-params", "plot-pareto-macs", "plot-pareto-train_macs"]
    view = report_view(parse_spec(ARM_SPEC), arm_rows())
    colors = [tuple(int(view.arm_color(arm)[k:k + 2], 16) for k in (1, 3, 5)) for arm in ARMS]  # '#1f77b4'
    for (start, name), (end, _) in zip(starts, starts[1:] + [(len(dom), "")]):
        drawn = dom[start:end]
        legend = re.findall(r'class="legendtext"[^>]*>([^<]*)<', drawn)
        assert legend[:3] == [*ARMS, "front (this pair)"], name
        for rgb in colors:  # each arm's points drawn in its colour
            assert f"fill: rgb({rgb[0]}, {rgb[1]}, {rgb[2]})" in drawn, (name, rgb)
    table = dom.split('<table id="arms">')[1].split("</table>")[0]
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", table)]
    assert cells == ["arm", "&lt;= 500 params", "&lt;= 240 params", ARMS[0], "94.0% (2 trials)", "93.0% (1 trial)",
                     ARMS[1], "93.0% (2 trials)", "92.8% (1 trial)"]
    assert "no clear winner on 1 and 1 trials" in dom