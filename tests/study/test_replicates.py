"""Replicates (adsearch.study.replicates, run by adsearch.study.finished and the runner): which trials
are trained again with which seeds, and replicates run for real on the tiny study, killed and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from helpers import HAND_MADE_SPEC, adsearch, adsearch_process, hand_made_rows, one_torch_thread

from adsearch.errors import AdsearchError
from adsearch.results.reading import read_study
from adsearch.results.rows import BASELINE
from adsearch.spec.loading import parse_spec
from adsearch.study.replicates import (chosen_replicates, front_replicates, other_seeds, replicate_line,
                                       replicate_spec, to_run)

HAND_MADE = parse_spec(HAND_MADE_SPEC)


def numbers(rows) -> list[int]:
    return [r.number for r in rows]


def test_the_baseline_and_the_front_are_replicated_with_the_seeds_after_the_studys():
    assert other_seeds(HAND_MADE, 3) == [1, 2] and other_seeds(HAND_MADE.model_copy(update={"seed": 7}), 2) == [8]
    rows = hand_made_rows()  # front: baseline, 3, 0, 1; 4 dominated, 2 failed
    assert numbers(front_replicates(HAND_MADE, rows)) == [BASELINE, 0, 1, 3]
    assert numbers(chosen_replicates(rows, [4, -1, 4])) == [BASELINE, 4]
    with pytest.raises(AdsearchError) as err:
        chosen_replicates(rows, [9, 2])
    assert str(err.value) == ("--trials: there is no trial 9; trial 2 is FAIL: only a completed trial is replicated. "
                              "Completed trials: 3, 0, 1, 4, baseline")


def test_a_replicate_is_its_trial_with_another_seed_and_is_not_run_twice():
    rows = {r.number: r for r in hand_made_rows()}
    spec = replicate_spec(HAND_MADE, rows[1], 2)
    assert spec.seed == 2 and spec.pruning.target_density == 0.7 and spec.pruning.method != "none"
    assert replicate_spec(HAND_MADE, rows[BASELINE], 1).pruning.method == "none"
    rows[1].replicates = {1: {"state": "COMPLETE", "accuracy": 0.97}, 2: {"state": "FAIL", "error": "boom"}}
    # recorded: not again; failed (seed 2): again only when its trial is named
    assert [(r.number, s) for r, s in to_run([rows[1], rows[0]], [1, 2])] == [(0, 1), (0, 2)]
    assert [(r.number, s) for r, s in to_run([rows[1]], [1, 2, 3], retry=[1])] == [(1, 2), (1, 3)]
    assert replicate_line(rows[1], 1, {"state": "COMPLETE", "accuracy": 0.972}) == (
        "trial 1 with seed 1: accuracy 97.2% (its first seed: 97.5%)")
    assert replicate_line(rows[BASELINE], 2, {"state": "FAIL", "error": "RuntimeError: boom"}) == (
        "the baseline with seed 2 failed: RuntimeError: boom")


# --- run for real on the tiny study ----------------------------------------------------------


def _a_replicate_has_trained_an_epoch(study_dir) -> bool:
    for path in (study_dir / "live").glob("replicate-*.json"):
        try:
            if json.loads(path.read_text()).get("epoch", 0) >= 1:
                return True
        except (OSError, ValueError):  # ended (removed) between the listing and the read
            pass
    return False


def test_replicates_killed_then_resumed_are_what_a_straight_run_gives_and_move_the_report(tiny_study_copy,
                                                                                         ray_session):
    # killed in `adsearch replicate`, finished by `adsearch run` of the study's spec with search.replicates
    # (no changed spec: the study resumes, its search done, and replicates its baseline and front)
    from helpers import tiny_spec

    from adsearch.train.trainer import run_trial

    study_dir, address = tiny_study_copy, ray_session.get_runtime_context().gcs_address
    command = ["replicate", study_dir, "--seeds", "2", "--address", address]
    with adsearch_process(*command, cwd=study_dir.parent, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL) as proc:
        deadline = time.time() + 180
        while not _a_replicate_has_trained_an_epoch(study_dir):
            assert proc.poll() is None, f"the command ended (exit code {proc.returncode}) before a replicate trained"
            assert time.time() < deadline, "no replicate trained an epoch in 180 s"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # a lost node, an OOM kill: nothing of ours runs on the way out
        proc.wait()

    spec_file = study_dir.parent / "tiny.yaml"
    spec_file.write_text(tiny_spec("tiny"))
    stored = (study_dir / "spec.yaml").read_bytes()
    res = adsearch("run", spec_file, "--reports", study_dir.parent, "--set", "search.replicates=2", "--address",
                   address, cwd=study_dir.parent)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert "resuming study 'tiny'" in res.stdout and "replicates: " in res.stdout, res.stdout[-2000:]
    assert (study_dir / "spec.yaml").read_bytes() == stored  # the study's spec is as it began
    record = read_study(study_dir)
    front = numbers(front_replicates(record.spec, record.rows))
    recorded = {int(n): v for n, v in json.loads((study_dir / "replicates.json").read_text()).items()}
    assert BASELINE in recorded and set(front) <= set(recorded)
    rows = {r.number: r for r in record.rows}
    for number, by_seed in recorded.items():
        assert list(by_seed) == ["1"] and by_seed["1"]["state"] == "COMPLETE", (number, by_seed)
        with one_torch_thread():  # a Ray trial of 1 CPU trains on one thread: the same numbers here
            alone = run_trial(replicate_spec(record.spec, rows[number], 1))
        assert by_seed["1"]["accuracy"] == alone["accuracy"] and by_seed["1"]["correct"] == alone["correct"], number
        assert rows[number].replicates[1] == by_seed["1"]
    report = (study_dir / "report.md").read_text()
    assert "(2 seeds)" in report.split("## Baseline")[1].split("## Pareto front")[0]  # the baseline: a mean
    table = record.rows  # trials.csv: the means, with their seeds and spread
    import pandas as pd

    csv = pd.read_csv(study_dir / "trials.csv").set_index("number")
    assert csv.loc[BASELINE, "seeds"] == 2 and csv.loc[BASELINE, "accuracy"] == pytest.approx(
        (rows[BASELINE].metrics["accuracy"] + recorded[BASELINE]["1"]["accuracy"]) / 2)
    assert len(table) == len(csv)

    again = adsearch(*command, cwd=study_dir.parent)  # all recorded: nothing trained, no Ray
    assert again.returncode == 0 and "already trained with 2 seeds" in again.stdout, again.stdout[-2000:]
    bad = adsearch("replicate", study_dir, "--seeds", "1", cwd=study_dir.parent)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "--seeds must be a whole number from 2 to 20 (the study's own seed counted), got 1" in bad.stderr
