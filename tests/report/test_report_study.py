"""A small real study read back: records, the HTML report, the Pareto set everywhere, report/ls/show.

The session's tiny study (baseline + 2 grid trials of a tiny VGG on digits, `tiny_study` in
conftest.py) is read; a copy of it with a failed trial added and a larger budget stands for an
interrupted study.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import wsgiref.util
from html.parser import HTMLParser
from pathlib import Path

import optuna
import pandas as pd
import pytest
from helpers import adsearch, brute_force_front, load_study

from adsearch.errors import AdsearchError
from adsearch.export import export_trial
from adsearch.results.pareto import recommended
from adsearch.results.reading import read_study, study_state
from adsearch.report.writer import build_report

OBJECTIVES = [("accuracy", "max"), ("params", "min")]
OOM = "RuntimeError: CUDA out of memory <tried 2 GiB>"


@pytest.fixture
def study_dir(tiny_study) -> Path:
    """The session's tiny study (conftest.py): baseline + 2 grid trials."""
    return tiny_study


@pytest.fixture
def interrupted_dir(tiny_study_copy) -> Path:
    """A copy of the study with a failed third trial and a budget of 4: 3 of 4 done."""
    directory = tiny_study_copy
    spec_file = directory / "spec.yaml"
    spec_file.write_text(spec_file.read_text().replace("trials: 2", "trials: 4"))
    study = load_study(directory)
    dist = optuna.distributions.CategoricalDistribution([0.3, 0.95])
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params={"pruning.target_density": 0.3},
                                              distributions={"pruning.target_density": dist}, user_attrs={"error": OOM}))
    return directory


def front_of(trials: pd.DataFrame) -> set[int]:
    return brute_force_front(trials, OBJECTIVES)


class Page(HTMLParser):
    """What a test needs of report.html: the figures' JSON, the trials table's row ids, script srcs, pre text."""

    def __init__(self, text: str):
        super().__init__()
        self.figures: dict[str, dict] = {}
        self.row_ids: list[str] = []
        self.script_srcs: list[str] = []
        self.pre = ""
        self._figure: str | None = None
        self._buffer: list[str] = []
        self._in_pre = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            if "src" in attrs:
                self.script_srcs.append(attrs["src"])
            self._figure = attrs.get("data-plot")
        elif tag == "tr" and (attrs.get("id") or "").startswith("trial-"):
            self.row_ids.append(attrs["id"])
        elif tag == "pre":
            self._in_pre = True

    def handle_endtag(self, tag):
        if tag == "pre":
            self._in_pre = False
        if tag == "script" and self._figure:
            self.figures[self._figure] = json.loads("".join(self._buffer))
            self._figure, self._buffer = None, []

    def handle_data(self, data):
        if self._figure:
            self._buffer.append(data)
        if self._in_pre:
            self.pre += data


def trace(figure: dict, name: str) -> dict:
    return next(t for t in figure["data"] if t.get("name", "").startswith(name))


def numbers(t: dict) -> list[int]:
    return [c[0] for c in t["customdata"]]


# --- records and the study database -----------------------------------------------------------


def test_records_read_back_the_study_and_its_state(study_dir, interrupted_dir):
    record = read_study(study_dir)
    trials = pd.read_csv(study_dir / "trials.csv")
    assert [r.number for r in record.rows] == [-1, 0, 1] == list(trials["number"])
    assert record.state == "done" and (record.trials_done, record.trials_total) == (2, 2)
    assert record.baseline.metrics["accuracy"] == pytest.approx(trials.loc[trials["number"] == -1, "accuracy"].item())
    from adsearch.data.registry import load_data
    from adsearch.metrics import accuracy_interval, percent_interval

    n_test = load_data(record.spec.data, record.spec.seed).n_test
    assert (trials["test_samples"] == n_test).all()  # each accuracy's interval rests on the whole test split
    for _, row in trials.iterrows():
        low, high = accuracy_interval(row["accuracy"], n_test)
        assert (row["accuracy_low"], row["accuracy_high"]) == pytest.approx((low, high))
        assert row["accuracy_low"] < row["accuracy"] < row["accuracy_high"] or row["accuracy"] == 1.0
    front = (study_dir / "report.md").read_text().split("## Pareto front")[1]
    assert f"| {percent_interval(record.baseline.metrics['accuracy'], n_test)} |" in front
    # every trial keeps which test samples it got right (through Ray's results, Optuna and baseline.json)
    from adsearch import correctness

    for row in record.rows:
        assert correctness.samples(row.correct) == n_test, row.label
        assert correctness.accuracy(row.correct) == pytest.approx(row.metrics["accuracy"])
    tested = [paired for paired in
              (correctness.paired_test(r.correct, record.baseline.correct) for r in record.rows[1:])]
    assert all(t is not None and 0 <= t.p_value <= 1 for t in tested)
    assert "drop p: McNemar's exact test of the trial against the baseline" in front
    assert "correct" not in trials.columns  # the bits stay in the study's records, not the CSVs

    other = read_study(interrupted_dir)
    assert other.state == "interrupted" and (other.trials_done, other.trials_total) == (3, 4)
    assert other.rows[-1].state == "FAIL" and other.rows[-1].error == OOM


def test_a_study_is_running_while_the_pid_in_its_lock_is_alive(tiny_study_copy):
    directory = tiny_study_copy
    (directory / ".lock").write_text(f"{os.getpid()}\n")  # a live process holds the lock
    assert study_state(directory) == "running"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (directory / ".lock").write_text(dead.stdout)  # a lock left by a process that is gone
    assert study_state(directory) == "done"


def test_study_db_opens_in_optuna_dashboard_with_names_ratios_and_widths(study_dir):
    study = load_study(study_dir)
    assert study.metric_names == ["accuracy", "params"]
    baseline = json.loads((study_dir / "baseline.json").read_text())
    for t in study.trials:
        attrs = t.user_attrs
        assert {"params_ratio", "macs_ratio", "train_macs_ratio", "accuracy_drop", "widths", "base_widths",
                "history", "compressions", "ray_trial_id"} <= set(attrs)
        assert t.values == [attrs["accuracy"], attrs["params"]]
        assert attrs["params_ratio"] == pytest.approx(attrs["params"] / baseline["params"])
        assert attrs["base_widths"] == baseline["widths"] == [16, 32]
        assert all(isinstance(w, int) for w in attrs["widths"]) and len(attrs["widths"]) == 2
    dashboard = pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed (test extra)")
    app = dashboard.wsgi(f"sqlite:///{study_dir / 'study.db'}")  # the dashboard's own server, without a socket

    def get(path: str) -> dict:
        environ, status = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}, []
        wsgiref.util.setup_testing_defaults(environ)
        body = b"".join(app(environ, lambda code, headers, *_: status.append(code)))
        assert status == ["200 OK"], (path, status, body[:300])
        return json.loads(body)

    (summary,) = get("/api/studies")["study_summaries"]
    assert summary["study_name"] == "tiny" and summary["directions"] == ["maximize", "minimize"]
    shown = get(f"/api/studies/{summary['study_id']}")
    assert shown["objective_names"] == ["accuracy", "params"]
    assert len(shown["trials"]) == len(study.trials)
    for t in shown["trials"]:
        attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
        assert {"params_ratio", "train_macs_ratio", "accuracy_drop", "widths"} <= set(attrs)


# --- the HTML report ---------------------------------------------------------------------------


def test_html_report_is_self_contained_names_every_trial_and_plots_every_pareto_point(study_dir):
    text = (study_dir / "report.html").read_text()
    page = Page(text)
    trials = pd.read_csv(study_dir / "trials.csv")
    front = front_of(trials)

    assert page.script_srcs == [] and "Plotly.newPlot" in text and len(text) > 3_000_000  # plotly.js inline
    assert page.row_ids == ["trial-baseline", "trial-0", "trial-1"]
    assert set(page.figures) == {"plot-pareto-params", "plot-pareto-macs", "plot-pareto-train_macs", "plot-widths",
                                 "plot-density"}
    for name in ("plot-pareto-params", "plot-pareto-macs", "plot-pareto-train_macs"):
        fig = page.figures[name]
        metric = name.removeprefix("plot-pareto-")
        pareto_set = trace(fig, "Pareto set")
        assert set(numbers(pareto_set)) == front
        for number, x, y in zip(numbers(pareto_set), pareto_set["x"], pareto_set["y"]):
            row = trials[trials["number"] == number].iloc[0]
            assert x == row[metric] and y == pytest.approx(100 * row["accuracy"])
        assert numbers(trace(fig, "baseline")) == [-1] and "trial baseline" in trace(fig, "baseline")["hovertext"][0]
        shown = {n for t in fig["data"] if t.get("customdata") for n in numbers(t)}
        assert shown == {-1, 0, 1}  # every completed trial is on the plot
        hovers = [h for t in fig["data"] for h in t.get("hovertext") or []]
        assert any("pruning.target_density = 0.95" in h for h in hovers)
        assert fig["layout"]["xaxis"]["type"] == "log"
        for number, y, up, down in zip(numbers(pareto_set), pareto_set["y"], pareto_set["error_y"]["array"],
                                       pareto_set["error_y"]["arrayminus"]):  # each point's 95% interval
            row = trials[trials["number"] == number].iloc[0]
            assert (y - down, y + up) == pytest.approx((100 * row["accuracy_low"], 100 * row["accuracy_high"]))
    record = read_study(study_dir)
    best = recommended(record.rows, record.spec.report.max_accuracy_drop,
                       size_tolerance=record.spec.report.size_tolerance)
    if best is not None:
        ring = trace(page.figures["plot-pareto-params"], "recommended")
        assert numbers(ring) == [record.rows[best].number]

    widths = page.figures["plot-widths"]
    assert trace(widths, "baseline")["y"] == [16, 32]
    for number in front - {-1}:
        row = trials[trials["number"] == number].iloc[0]
        assert trace(widths, f"trial {number}")["y"] == json.loads(row["widths"])

    density = page.figures["plot-density"]
    menu = density["layout"]["updatemenus"][0]["buttons"]
    assert [b["label"].split(" (")[0] for b in menu] == ["trial baseline", "trial 0", "trial 1"]
    compressed = trials[(trials["role"] == "search") & (trials["rounds"] > 0)]
    for number in compressed["number"]:
        marks = [t for t in density["data"] if t["name"] == "compression" and numbers(t)[0] == number]
        assert marks and set(marks[0]["x"]) == {1}  # compress_at: [1]
    assert "pruning:" in page.pre and "name: tiny" in page.pre


def test_pareto_set_is_the_same_in_every_output(study_dir):
    trials = pd.read_csv(study_dir / "trials.csv")
    front = front_of(trials)
    assert set(pd.read_csv(study_dir / "pareto.csv")["number"]) == front
    page = Page((study_dir / "report.html").read_text())
    assert set(numbers(trace(page.figures["plot-pareto-params"], "Pareto set"))) == front
    table = (study_dir / "report.md").read_text().split("## Pareto front")[1].split("## ")[0]
    md = {cells[1].split()[0] for cells in (l.split("|") for l in table.splitlines() if l.startswith("| "))}
    assert md - {"trial"} == {"baseline" if n == -1 else str(n) for n in front}
    shown = adsearch("show", study_dir, cwd=study_dir.parent)
    assert shown.returncode == 0, shown.stderr
    starred = {line.split()[1] for line in shown.stdout.splitlines() if line.startswith("*")}
    assert starred == {"baseline" if n == -1 else str(n) for n in front}


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium is not installed (.ci/run installs it)")
def test_html_report_draws_its_plots_in_headless_chromium(study_dir, tmp_path):
    url = (study_dir / "report.html").resolve().as_uri()
    flags = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    starts = [(m.start(), m.group(1)) for m in re.finditer(r'<div[^>]*\bid="(plot-[\w-]+)"', dom)]
    assert [name for _, name in starts] == ["plot-pareto-params", "plot-pareto-macs", "plot-pareto-train_macs",
                                            "plot-widths", "plot-density"]
    for (start, name), (end, _) in zip(starts, starts[1:] + [(len(dom), "")]):
        assert 'class="main-svg"' in dom[start:end], f"{name} was not drawn"
    assert 'class="scatterlayer' in dom  # points, not only axes
    assert 'class="yerror"' in dom  # each accuracy's interval, drawn as an error bar
    shot = tmp_path / "report.png"
    subprocess.run([*flags, "--window-size=1280,2400", f"--screenshot={shot}", url], capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # kept in tmp for a human look


# --- the command line: report, ls, show ---------------------------------------------------------


def test_report_ls_and_show_through_the_cli(study_dir, interrupted_dir):
    trials = pd.read_csv(study_dir / "trials.csv")
    proc = adsearch("report", interrupted_dir, cwd=study_dir.parent)
    assert proc.returncode == 0, proc.stderr
    assert "study tiny: interrupted, 3/4 search trials done" in proc.stdout
    md = (interrupted_dir / "report.md").read_text()
    assert md.startswith("# Study `tiny`: interrupted") and "CUDA out of memory" in md.split("## Failed trials")[1]
    html_text = (interrupted_dir / "report.html").read_text()
    assert "The study was interrupted" in html_text and "CUDA out of memory &lt;tried 2 GiB&gt;" in html_text
    assert Page(html_text).row_ids == ["trial-baseline", "trial-0", "trial-1", "trial-2"]

    proc = adsearch("ls", study_dir.parent, cwd=study_dir.parent)
    assert proc.returncode == 0, proc.stderr
    header, line = proc.stdout.splitlines()
    assert header.split() == ["study", "state", "trials", "baseline", "recommended", "shared"]
    base = trials[trials["number"] == -1].iloc[0]
    assert line.split()[:4] == ["tiny", "done", "2/2", f"{100 * base['accuracy']:.1f}%"]
    record = read_study(study_dir)
    best = recommended(record.rows, record.spec.report.max_accuracy_drop,
                       size_tolerance=record.spec.report.size_tolerance)
    expected = f"trial {record.rows[best].number}:" if best is not None else "none within 1.0 pts"
    assert expected in line

    row = trials[(trials["role"] == "search") & (trials["rounds"] > 0)].iloc[0]
    number = int(row["number"])
    proc = adsearch("show", study_dir, "--trial", number, cwd=study_dir.parent)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith(f"trial {number} of study tiny: COMPLETE")
    assert f"pruning.target_density = {row['param:pruning.target_density']}" in out
    assert f"accuracy {100 * row['accuracy']:.1f}%" in out
    widths = json.loads(row["widths"])
    assert re.search(rf"conv1\s+{widths[0]}\s+16\s", out) and re.search(rf"conv2\s+{widths[1]}\s+32\s", out)
    assert re.search(rf"^1\s+1\s+16/32\s+{widths[0]}/{widths[1]}\s", out, re.M)  # round 1 at epoch 1
    epochs = [l.split()[0] for l in out.split("history")[1].splitlines()[2:] if l and l[0].isdigit()]
    assert epochs == ["1*", "2", "3"]


def test_missing_studies_and_trials_are_named_with_what_exists(study_dir, interrupted_dir):
    with pytest.raises(AdsearchError, match=r"no study at .*tiyn \(no spec.yaml\); studies in .*: tiny$"):
        read_study(study_dir.parent / "tiyn")
    with pytest.raises(AdsearchError, match=r"has no trial 7; its trials: baseline \(-1\), 0, 1$"):
        export_trial(study_dir, number=7)
    with pytest.raises(AdsearchError, match="no study at .*nothing"):
        build_report(study_dir.parent / "nothing")
    with pytest.raises(AdsearchError, match="unknown export format 'tflite'; choose one of state_dict, torchscript, onnx"):
        export_trial(study_dir, number=0, fmt="tflite")
    before = sorted(p.relative_to(interrupted_dir) for p in interrupted_dir.rglob("*"))
    proc = adsearch("export", interrupted_dir, "--trial", 2, cwd=study_dir.parent)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "trial 2 of study 'tiny' failed" in proc.stderr and OOM in proc.stderr
    assert sorted(p.relative_to(interrupted_dir) for p in interrupted_dir.rglob("*")) == before
