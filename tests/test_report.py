"""The study report from hand-made rows: CSV tables that read back, the front, report.md, plots."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from helpers import brute_force_front

from adsearch.report import against_baseline, count, percent, seconds, write_report
from adsearch.spec import parse_spec

SPEC = """
name: hand-made
search:
  trials: 6
  objectives: [{metric: accuracy, mode: max}, {metric: params, mode: min}]
  space:
    pruning.target_density: {values: [0.3, 0.5, 0.7, 0.9]}
report: {max_accuracy_drop: 0.01}
"""

BASE = {"accuracy": 0.98, "top5": 1.0, "params": 1_150_000, "macs": 9_500_000, "train_macs": 41.0e9,
        "latency_ms": 2.0, "wall_s": 125.0, "epochs": 10, "rounds": 0, "base_widths": [64, 128, 256]}


def trial(number, density, accuracy, params, widths, *, state="COMPLETE", error=""):
    row = {"number": number, "role": "search", "state": state, "error": error, "param:pruning.target_density": density}
    if state != "COMPLETE":
        return {**row, **{k: None for k in BASE if k != "base_widths"}, "widths": None,
                "base_widths": BASE["base_widths"]}
    macs = BASE["macs"] * params / BASE["params"]
    train_macs = BASE["train_macs"] * (0.5 + 0.5 * params / BASE["params"])
    return {**row, "accuracy": accuracy, "top5": 1.0, "params": params, "macs": macs, "train_macs": train_macs,
            "latency_ms": 1.0, "wall_s": 80.0 + number, "epochs": 10, "rounds": 2,
            "params_ratio": params / BASE["params"], "macs_ratio": macs / BASE["macs"],
            "train_macs_ratio": train_macs / BASE["train_macs"], "accuracy_drop": BASE["accuracy"] - accuracy,
            "widths": widths, "base_widths": BASE["base_widths"]}


def hand_made_rows() -> list[dict]:
    baseline = {"number": -1, "role": "baseline", "state": "COMPLETE", "error": "",
                "param:pruning.target_density": None, **BASE, "params_ratio": 1.0, "macs_ratio": 1.0,
                "train_macs_ratio": 1.0, "accuracy_drop": 0.0, "widths": BASE["base_widths"]}
    return [
        trial(3, 0.3, 0.95, 23_000, [8, 16, 32]),  # fewest params, 3 points down: on the front
        trial(0, 0.9, 0.979, 400_000, [40, 80, 160]),  # 0.1 point down
        trial(1, 0.7, 0.975, 115_000, [24, 40, 80]),  # 0.5 points down, 10x fewer: recommended
        trial(4, 0.9, 0.97, 500_000, [44, 88, 170]),  # dominated by trial 0
        trial(2, 0.5, None, None, None, state="FAIL", error="RuntimeError: CUDA out of memory | step 3"),
        baseline,  # out of order on purpose: the tables put it first
    ]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    spec = parse_spec(SPEC)
    study_dir = tmp_path_factory.mktemp("reports") / spec.name
    files = write_report(study_dir, spec, hand_made_rows())
    return spec, study_dir, files


def test_trials_csv_reads_back_with_every_trial_and_column(written):
    _, study_dir, files = written
    assert files["trials.csv"] == study_dir / "trials.csv"
    df = pd.read_csv(study_dir / "trials.csv")
    assert list(df["number"]) == [-1, 0, 1, 2, 3, 4]  # baseline first, then by number
    assert list(df.columns[:5]) == ["number", "role", "state", "error", "param:pruning.target_density"]
    assert {"accuracy", "params", "macs", "train_macs", "params_ratio", "accuracy_drop", "wall_s", "epochs",
            "rounds"} <= set(df.columns)
    assert list(df.columns[-2:]) == ["widths", "base_widths"]
    assert df.loc[df["number"] == 3, "params"].item() == 23_000
    assert json.loads(df.loc[df["number"] == 3, "widths"].item()) == [8, 16, 32]
    failed = df[df["state"] == "FAIL"]
    assert list(failed["number"]) == [2] and failed["accuracy"].isna().all()
    assert failed["error"].item() == "RuntimeError: CUDA out of memory | step 3"
    assert not list(study_dir.glob(".*.tmp")) and not list(study_dir.glob("plots/.*.tmp"))


def test_pareto_csv_is_the_brute_force_front_of_trials_csv(written):
    spec, study_dir, _ = written
    trials = pd.read_csv(study_dir / "trials.csv")
    pareto = pd.read_csv(study_dir / "pareto.csv")
    objectives = [(o.metric, o.mode) for o in spec.search.objectives]
    assert set(pareto["number"]) == brute_force_front(trials, objectives) == {-1, 0, 1, 3}
    assert list(pareto.columns) == list(trials.columns)


def test_report_md_names_the_recommendation_the_failure_and_the_plot(written):
    _, study_dir, _ = written
    text = (study_dir / "report.md").read_text()
    assert text.startswith("# Study `hand-made`: done")
    assert "5 of 6 search trials done: 4 complete, 1 failed" in text
    assert "98.0%" in text and "1.15M" in text and "9.50M" in text and "41.0G" in text  # the baseline
    recommendation = text.split("## Recommended trade-off")[1].split("##")[0]
    assert "**Trial 1**" in recommendation and "10.0x fewer" in recommendation and "0.5 points" in recommendation
    failures = text.split("## Failed trials")[1]
    assert "| 2 |" in failures and "CUDA out of memory \\| step 3" in failures
    assert "](plots/pareto_params.png)" in text
    front = text.split("## Pareto front")[1].split("##")[0]
    assert "| 3 | 0.3 | 95.0% | 3.0 | 23.0k (50.0x fewer) |" in front and "| 4 |" not in front
    assert "| 1 (recommended) | 0.7 | 97.5% | 0.5 |" in front


def test_plots_are_png_files(written):
    _, study_dir, files = written
    for name in ("pareto_params", "pareto_macs", "pareto_train_macs"):
        path = study_dir / "plots" / f"{name}.png"
        assert files[f"plots/{name}.png"] == path
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000


def test_report_says_when_nothing_qualifies_and_while_running(tmp_path):
    spec = parse_spec(SPEC)
    rows = [r for r in hand_made_rows() if r["number"] in (-1, 2, 3)]
    rows.append({"number": 5, "role": "search", "state": "RUNNING", "error": ""})
    write_report(tmp_path, spec, rows, state="running")
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("# Study `hand-made`: running") and "1 running" in text
    assert "**None qualifies**" in text and "within 1.0 points" in text
    assert len(pd.read_csv(tmp_path / "trials.csv")) == 4
    with pytest.raises(ValueError, match="state must be one of done, running, interrupted, got 'finished'"):
        write_report(tmp_path, spec, rows, state="finished")


def test_report_of_no_completed_trials_still_has_a_plot(tmp_path):
    spec = parse_spec(SPEC)
    files = write_report(tmp_path, spec, [])
    assert (tmp_path / "plots" / "pareto_params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plots/pareto_macs.png" not in files
    assert "No baseline" in (tmp_path / "report.md").read_text()
    assert pd.read_csv(tmp_path / "trials.csv").empty


def test_numbers_read_well():
    assert (count(1_150_000), count(9.5e6), count(41.0e9), count(512), count(None)) == \
        ("1.15M", "9.50M", "41.0G", "512", "—")
    assert (percent(0.9861), seconds(12.34), seconds(185), seconds(3725)) == ("98.6%", "12.3 s", "3m 05s", "1h 02m")
    assert [against_baseline(d) for d in (0.0028, -0.0028, 0.0004)] == ["0.3 points below", "0.3 points above",
                                                                         "level with"]


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
    rows = [r for r in hand_made_rows() if r["number"] in (-1, 3)]
    rows.append({"number": 5, "role": "search", "state": "RUNNING", "error": ""})
    files = write_report(tmp_path, spec, rows, state="running")
    text = files["report.html"].read_text()
    assert "<span class='state running'>running</span>" in text and "1 running" in text
    assert "The study is still running" in text
