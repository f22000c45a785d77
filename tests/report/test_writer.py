"""The study report from hand-made rows: CSV tables that read back, the front, report.md, plots,
and the terminal text (`show`, `ls`, the progress lines); a study of several arms with scratch
controls in each of them. The HTML page: test_report_html.py."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace

import pandas as pd
import pytest
from helpers import ARM_SPEC, HAND_MADE_SPEC, arm_rows, brute_force_front, hand_made_rows, trial_row
from matplotlib.colors import to_hex

from adsearch.results.live import live_entry
from adsearch.metrics import METRICS
from adsearch.report.plots import front_figure
from adsearch.report.writer import write_report
from adsearch.report.markdown import markdown
from adsearch.report.text import STUDY_HEADER, progress_line, study_line, study_text, trial_text
from adsearch.spec.loading import parse_spec
from adsearch.results.view import best_so_far, report_view

SPEC = HAND_MADE_SPEC



def test_trials_csv_reads_back_with_every_trial_and_column(written):
    _, study_dir, files = written
    assert files["trials.csv"] == study_dir / "trials.csv"
    df = pd.read_csv(study_dir / "trials.csv")
    assert list(df["number"]) == [-1, 0, 1, 2, 3, 4]  # baseline first, then by number
    assert list(df.columns[:5]) == ["number", "role", "state", "error", "param:pruning.target_density"]
    assert {"accuracy", "params", "macs", "train_macs", "params_ratio", "accuracy_drop", "wall_s",
            "rounds"} <= set(df.columns)
    assert list(df.columns[-2:]) == ["widths", "base_widths"]
    metrics = list(METRICS)
    metrics[1:1] = ["accuracy_low", "accuracy_high", "seeds", "accuracy_std"]  # its 95% interval; over seeds, their spread
    assert list(df.columns) == ["number", "role", "state", "error", "param:pruning.target_density", *metrics, "stopped_at",
                                "gpu_ids", "widths", "base_widths"]  # no ray_trial_id, no unused epochs
    assert df["accuracy_low"].isna().all() and df["test_samples"].isna().all()  # rows made by hand have no count
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
    rows = [r for r in hand_made_rows() if r.number in (-1, 2, 3)]
    rows.append(trial_row(5, state="RUNNING"))
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






# --- the terminal: adsearch ls, adsearch show, the study's progress lines -------------------------


@pytest.fixture
def view():
    return report_view(parse_spec(SPEC), hand_made_rows(), "done", "reports/hand-made")


def test_ls_line_names_the_recommended_trial(view):
    assert STUDY_HEADER == ("study", "state", "trials", "baseline", "recommended", "shared")
    assert study_line(view) == ["hand-made", "done", "5/6", "98.0%", "trial 1: 97.5%, 115k (10.0x fewer) params", "—"]
    worse = [r for r in hand_made_rows() if r.number in (-1, 3)]  # 3 points down: nothing qualifies
    assert study_line(report_view(view.spec, worse))[4] == "none within 1.0 pts"
    no_baseline = [r for r in worse if not r.is_baseline]
    assert study_line(report_view(view.spec, no_baseline))[2:] == ["1/6", "—", "—", "—"]


def test_show_lists_every_trial_marks_the_front_and_the_recommendation(view):
    lines = study_text(view).splitlines()
    assert lines[0] == "study hand-made: done (reports/hand-made)"
    assert lines[1].startswith("search: 5 of 6 trials done (4 complete, 1 failed); sampler ")
    assert lines[3].startswith("recommended: Trial 1: the fewest parameters") and "`" not in lines[3]
    marks = {line.split()[1]: line.split()[0] for line in lines if line.startswith(("*", ">"))}
    assert marks == {"baseline": "*", "0": "*", "1": "*>", "3": "*"}
    assert "  trial 2: RuntimeError: CUDA out of memory | step 3" in lines


def test_show_trial_gives_settings_ratios_and_widths(view):
    text = trial_text(view, next(r for r in view.rows if r.number == 1))
    assert text.splitlines()[:2] == ["trial 1 of study hand-made: COMPLETE (on the Pareto front)",
                                     "settings: pruning.target_density = 0.7"]
    assert "accuracy 97.5% (0.5 pts below the baseline)" in text
    assert "params 115k (10.0x fewer), MACs 950k (10.0x fewer), train MACs 22.6G (1.8x fewer)" in text
    assert "group 1  24     64        37.5%" in text  # 24 of 64 channels kept
    failed = trial_text(view, next(r for r in view.rows if r.number == 2))
    assert failed.splitlines()[-1] == "error: RuntimeError: CUDA out of memory | step 3"


def running(number: int, epoch: int, *, ago: float = 0.0) -> dict:
    """The live entry of search trial `number` at `epoch` of 20, 20 s an epoch, written `ago` seconds ago."""
    now = time.time() - ago
    return live_entry(kind="search", number=number, settings={"pruning.target_density": 0.5}, epochs=20,
                      metrics={"epoch": epoch, "accuracy": 0.912, "loss": 0.3123, "params": 115_000, "rounds": 1},
                      started=now - 20 * epoch, now=now)


def test_show_and_ls_give_the_running_trials_epochs():
    rows = [r for r in hand_made_rows() if r.number != 4] + [trial_row(n, state="RUNNING") for n in (4, 5)]
    view = report_view(parse_spec(SPEC), rows, "running", "reports/hand-made", live=[running(5, 2), running(4, 7)])
    assert study_line(view)[:3] == ["hand-made", "running: 2 trials, trial 4 epoch 7/20", "4/6"]
    lines = study_text(view).splitlines()
    at = lines.index("running:")
    assert lines[at + 1:at + 3] == [
        "  trial 4 (target_density=0.5): epoch 7/20, accuracy 91.2%, loss 0.312, params 115k, rounds 1; "
        "2m 20s so far, about 4m 20s left",
        "  trial 5 (target_density=0.5): epoch 2/20, accuracy 91.2%, loss 0.312, params 115k, rounds 1; "
        "40.0 s so far, about 6m 00s left"]
    assert lines.index("running:") < next(i for i, line in enumerate(lines) if line.startswith("trials ("))
    assert trial_text(view, view.rows[-2]).splitlines()[2:] == [
        "running: trial 4 (target_density=0.5): epoch 7/20, accuracy 91.2%, loss 0.312, params 115k, rounds 1; "
        "2m 20s so far, about 4m 20s left", "no results yet"]
    one = report_view(view.spec, rows, "running", live=[running(5, 2, ago=3600)])
    assert study_line(one)[1] == "running: trial 5 epoch 2/20"
    assert study_text(one).splitlines()[study_text(one).splitlines().index("running:") + 1].endswith(
        "about 0.0 s left (no update for 1h 00m)")  # its process may be gone


def test_show_and_ls_of_a_stopped_run_say_where_its_trials_stopped():
    rows = [r for r in hand_made_rows() if r.number != 4] + [trial_row(4, state="RUNNING")]
    view = report_view(parse_spec(SPEC), rows, "interrupted", live=[running(4, 7, ago=7200)])
    assert study_line(view)[1] == "interrupted: trial 4 stopped at epoch 7/20"
    text = study_text(view)
    assert ("left unfinished by the last run (the study is interrupted):\n  trial 4 (target_density=0.5): stopped "
            "at epoch 7 of 20, accuracy 91.2%, loss 0.312, params 115k, rounds 1; last update 2h 00m ago") in text
    two = report_view(view.spec, rows, "interrupted", live=[running(4, 7, ago=7200), running(5, 2, ago=7200)])
    assert study_line(two)[1] == "interrupted: 2 trials stopped, trial 4 at epoch 7/20"
    assert "running" not in study_text(report_view(view.spec, rows, "done"))  # no entries: nothing added


def test_progress_lines_show_each_trial_and_the_best_so_far():
    rows = {r.number: r for r in hand_made_rows()}
    baseline = rows[-1]
    best = best_so_far(baseline, [rows[3], rows[1]], 0.01, size_tolerance=0.1)
    assert best == "97.5% at 10.0x fewer params"  # trial 1: 0.5 points down with 115k of 1.15M params
    assert progress_line(rows[1], done=3, total=6, best=best) == (
        "[3/6] trial 1: target_density=0.7: accuracy 97.5%, params 115k (10.0x fewer), train MACs 1.8x fewer"
        " | best so far: 97.5% at 10.0x fewer params")
    assert progress_line(rows[2], done=4, total=6) == "[4/6] trial 2: target_density=0.5: failed: RuntimeError: CUDA out " \
                                                      "of memory | step 3"
    assert best_so_far(baseline, [rows[3]], 0.01, size_tolerance=0.1) == "none within 1.0 pts of the baseline yet"
    assert best_so_far(None, [rows[1]], 0.01, size_tolerance=0.1) == ""  # no baseline: no comparison
    more = replace(rows[0], settings={"pruning.compress_at": [5, 10]},
                   metrics={**rows[0].metrics, "params_ratio": 1.5})
    assert progress_line(more, done=1, total=6).startswith("[1/6] trial 0: compress_at=[5, 10]: accuracy 97.9%, "
                                                            "params 400k (1.50x more)")


# --- a study of several arms (criterion x width rule), two trials with a scratch control -----------
#
# | trial | arm | accuracy | params | train MACs | scratch control |
# | baseline | — | 95.0% | 1000 | 10.0G | |
# | 0 | activation_density / density | 94.0% | 400 | 8.50G | 93.0%, 1.00G: pruning in training +1.0 point; recommended |
# | 1 | activation_density / density | 93.0% | 200 | 4.00G | 93.1%, 1.00G: a match, at 4x less compute |
# | 2 | random / uniform 0.5 | 93.0% | 500 | 5.00G | |
# | 3 | random / uniform 0.5 | 92.8% | 240 | 3.00G | |
#
# Budgets 500 and 240 (sizes within 1.5x of each other share one); at 500 activation density leads
# by 1.0 point, at 240 the two are 0.2 points apart.


@pytest.fixture
def arms():
    return report_view(parse_spec(ARM_SPEC), arm_rows(controls=2), "done", "reports/hand-made")


def test_report_md_groups_the_arms_and_sets_trials_against_their_scratch_controls(arms):
    text = markdown(arms)
    section = text.split("## Arms at equal parameters")[1].split("\n## ")[0]
    assert "| arm | <= 500 params | <= 240 params |" in section
    assert "| activation_density / density | 94.0% (2 trials) | 93.0% (1 trial) |" in section
    assert "| random / uniform 0.5 | 93.0% (2 trials) | 92.8% (1 trial) |" in section
    assert "- <= 500 params: activation_density / density leads by 1.0 points" in section
    assert "- <= 240 params: within 0.2 points: no clear winner on 1 and 1 trials" in section
    assert "One seed, one study" in section
    front = text.split("## Pareto front")[1].split("\n## ")[0]
    assert "| trial | arm | pruning.criterion | pruning.widths | accuracy |" in front
    assert "| scratch accuracy | scratch train MACs |" in front
    assert ("| 0 (recommended) | activation_density / density | activation_density | density | 94.0% | 1.0 "
            "| 400 (2.5x fewer) | 40.0k (2.5x fewer) | 8.50G (1.2x fewer) | 93.0% | 1.00G |") in front
    scratch = text.split("## Against training from scratch")[1].split("\n## ")[0]
    assert ("- Trial 0: pruning in training: +1.0 points over training these widths from scratch, at 8.5x its "
            "training MACs.") in scratch
    assert "- Trial 1: training these widths from scratch matches it (+0.1 points) at 4.0x less training compute." \
           in scratch


def test_report_md_of_one_arm_without_scratch_controls_shows_neither(written):
    _, study_dir, _ = written
    text = (study_dir / "report.md").read_text()
    assert "## Arms" not in text and "scratch" not in text and "| trial | pruning.target_density |" in text


def test_show_groups_the_arms_and_gives_the_scratch_controls(arms):
    text = study_text(arms)
    lines = text.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("trial "))
    assert header.split()[:6] == ["trial", "state", "arm", "criterion", "pruning.widths", "accuracy"]
    assert "scratch acc" in header  # `pruning.widths` in full: the trials' own widths column is `widths`
    row0 = next(line for line in lines if line.startswith("*>  0 "))
    assert re.search(r"94\.0% .* 8\.50G +93\.0% +1\.00G", row0)
    assert "  trial 0: pruning in training: +1.0 points over training these widths from scratch, at 8.5x its " \
           "training MACs" in lines
    table = text.split("arms at equal parameters:")[1].splitlines()
    assert table[1].split("  ")[0] == "arm" and "<= 500 params" in table[1] and "<= 240 params" in table[1]
    assert re.match(r"activation_density / density +94\.0% \(2 trials\) +93\.0% \(1 trial\)$", table[2])
    assert "  <= 240 params: within 0.2 points: no clear winner on 1 and 1 trials" in text
    one = trial_text(arms, arms.rows[1])
    assert "arm: activation_density / density" in one
    assert ("scratch control (these widths trained from scratch, same recipe and epochs): accuracy 93.0% "
            "(this trial 94.0%), train MACs 1.00G (this trial 8.50G)") in one
    assert "against scratch: pruning in training: +1.0 points over" in one
    assert "scratch" not in trial_text(arms, arms.rows[3])  # trial 2 has no control


def test_show_of_one_arm_without_scratch_controls_adds_nothing(view):
    text = study_text(view)
    assert "arm" not in text and "scratch" not in text
    assert "scratch" not in trial_text(view, view.rows[1]) and "arm:" not in trial_text(view, view.rows[1])


def test_png_plots_colour_the_arms_only_when_there_are_several(arms, view):
    def legend(v):
        return [t.get_text() for t in front_figure(v, "params").axes[0].get_legend().get_texts()]

    assert legend(arms) == ["activation_density / density", "random / uniform 0.5", "Pareto front", "baseline",
                            "baseline − 1.0 pts", "recommended (trial 0)"]
    assert legend(view) == ["trials", "Pareto front", "baseline", "baseline − 1.0 pts", "recommended (trial 1)"]
    scatter = front_figure(arms, "params").axes[0].collections[0]  # the first arm's trials, in its colour
    assert [list(p) for p in scatter.get_offsets()] == [[400, 94.0], [200, 93.0]]
    assert to_hex(scatter.get_facecolor()[0]) == arms.arm_color("activation_density / density")
