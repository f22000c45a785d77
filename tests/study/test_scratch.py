"""Scratch controls (adsearch.study.scratch, run by adsearch.study.runner): which trials get one, what a control
trains, and controls run for real on the tiny study (Ray, files, the command line)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from helpers import HAND_MADE_SPEC, adsearch, adsearch_process, hand_made_rows, one_torch_thread, tiny_spec, trial_row

from adsearch.errors import AdsearchError
from adsearch.results.reading import read_study
from adsearch.results.study_dir import StudyDir
from adsearch.results.rows import BASELINE
from adsearch.spec.loading import SpecError
from adsearch.study.scratch import (chosen_controls, compute_epochs, control_line, control_spec, controls_for,
                                    front_controls, sharing_plan, to_run)
from adsearch.spec.loading import parse_spec

HAND_MADE = parse_spec(HAND_MADE_SPEC)



def numbers(rows) -> list[int]:
    return [r.number for r in rows]


# --- which trials, what they train ---------------------------------------------------------------


def test_the_pruned_search_trials_on_the_front_get_a_control():
    rows = hand_made_rows()  # front: baseline, 3, 0, 1 (helpers.hand_made_rows); 4 dominated, 2 failed
    assert numbers(front_controls(HAND_MADE, rows)) == [0, 1, 3]
    base = rows[-1]
    unpruned = trial_row(5, accuracy=0.99, params=base.metrics["params"], widths=base.base_widths,
                         base_widths=base.base_widths)  # on the front (above the baseline), at the base widths
    repeat = trial_row(6, accuracy=0.975, params=115_000, widths=[24, 40, 80], base_widths=base.base_widths,
                       repeat_of=1)
    assert numbers(front_controls(HAND_MADE, rows + [unpruned, repeat])) == [0, 1, 3]


def test_no_pruned_trial_on_the_front_is_an_error_that_names_the_front():
    base = [r for r in hand_made_rows() if r.number == BASELINE][0]
    unpruned = trial_row(0, accuracy=0.99, params=base.metrics["params"], widths=base.base_widths,
                         base_widths=base.base_widths)
    with pytest.raises(AdsearchError, match=r"no pruned trial is on the Pareto front of study 'hand-made' \(the front: "
                                            r"trial 0 \(kept its base widths\)\).*--trials 3,5"):
        controls_for(HAND_MADE, [base, unpruned])


def test_named_trials_are_checked_each_with_its_reason():
    rows = hand_made_rows() + [trial_row(5, accuracy=0.975, params=115_000, widths=[24, 40, 80],
                                         base_widths=[64, 128, 256], repeat_of=1)]
    assert numbers(chosen_controls(rows, [4, 1, 4])) == [1, 4]  # off the front too; each once
    with pytest.raises(AdsearchError) as err:
        chosen_controls(rows, [9, -1, 5, 2, 0])
    message = str(err.value)
    assert message.startswith("--trials: there is no trial 9; the baseline is not pruned")
    assert "trial 5 repeats trial 1: name that one" in message
    assert "trial 2 is FAIL (RuntimeError: CUDA out of memory | step 3)" in message
    assert "trial 0" not in message.split("Pruned")[0]  # trial 0 is fine
    assert message.endswith("Pruned completed trials: 0, 1, 3, 4")


def test_a_control_keeps_the_trials_searched_values_with_pruning_off():
    spec = parse_spec(tiny_spec("lr", space="train.optimizer.lr: {values: [0.01, 0.05]}\n"
                                            "    pruning.compress_at: {values: [[1], [1, 2]]}"))
    row = trial_row(0, settings={"train.optimizer.lr": 0.01, "pruning.compress_at": [1, 2]}, accuracy=0.9)
    control = control_spec(spec, row)
    assert control.train.optimizer.lr == 0.01 and control.pruning.method == "none"
    assert control.train.epochs == spec.train.epochs and control.seed == spec.seed
    assert control.model == spec.model and control.data == spec.data


def test_the_equal_compute_control_trains_the_epochs_whose_macs_come_nearest_the_trials():
    # the final network: 1,000 MACs a sample; its last epoch trained on 96 samples, so an epoch of it
    # costs 3 x 1,000 x 96 = 288k training MACs. The trial cost 4.3M: 14.9 epochs' worth, so 15.
    spec = parse_spec(tiny_spec("compute", space="train.optimizer.lr: {values: [0.01, 0.05]}"))
    row = trial_row(0, settings={"train.optimizer.lr": 0.01}, accuracy=0.9, macs=1000, train_macs=4.3e6,
                    history=[{"epoch": 1, "samples": 96}, {"epoch": 3, "samples": 96}])
    assert compute_epochs(spec, row) == 15
    control = control_spec(spec, row, "compute")
    assert control.train.epochs == 15 and control.pruning.method == "none" and control.train.optimizer.lr == 0.01
    assert control_spec(spec, row, "epochs").train.epochs == spec.train.epochs == 3
    # never fewer epochs than the trial's, and without the figures (an older study) as many
    assert compute_epochs(spec, trial_row(0, accuracy=0.9, macs=1000, train_macs=1e5,
                                          history=[{"samples": 96}])) == 3
    assert compute_epochs(spec, trial_row(0, accuracy=0.9, macs=1000, train_macs=4.3e6)) == 3
    assert parse_spec(tiny_spec("t"), overrides={"search.scratch_controls": True}).search.scratch_matches == ("epochs",)
    assert parse_spec(tiny_spec("t"), overrides={"search.scratch_controls": "both"}).search.scratch_matches == \
        ("epochs", "compute")
    with pytest.raises(SpecError, match=r"search.scratch_controls.*'off', 'epochs', 'compute' or 'both', got 'flops'"):
        parse_spec(tiny_spec("t"), overrides={"search.scratch_controls": "flops"})


def test_controls_that_train_alike_are_trained_once_and_a_recorded_one_is_taken():
    """Alike: the same final widths and a recipe that differs only in pruning (here its target
    density); another learning rate or other widths train a control of their own."""
    def row(number, widths, **settings):
        return trial_row(number, accuracy=0.9, params=100, widths=widths, base_widths=[8, 16],
                         settings={"pruning.target_density": 0.5, **settings})

    rows = [row(1, [4, 8], **{"pruning.target_density": 0.3}), row(2, [4, 8]), row(3, [6, 8]),
            row(4, [6, 8], **{"pruning.target_density": 0.7}), row(5, [6, 8], **{"train.optimizer.lr": 0.2}),
            row(6, [6, 9])]
    specs = {r.number: control_spec(HAND_MADE, r) for r in rows}
    taken, trained = sharing_plan({n: specs[n] for n in (2, 3, 4, 5, 6)}, {1: specs[1]}, rows)
    assert taken == {1: [2]}  # trial 1's recorded control serves trial 2
    assert trained == {3: [3, 4], 5: [5], 6: [6]}
    assert sharing_plan({n: specs[n] for n in (2, 3)}, {}, rows) == ({}, {2: [2], 3: [3]})
    assert sharing_plan({}, {1: specs[1]}, rows) == ({}, {})


def test_recorded_controls_are_not_run_again_and_a_failed_one_only_when_named():
    done = trial_row(1, accuracy=0.9)
    done.scratch = {"state": "COMPLETE", "accuracy": 0.8}
    failed = trial_row(2, accuracy=0.9)
    failed.scratch = {"state": "FAIL", "error": "RuntimeError: boom"}
    new = trial_row(3, accuracy=0.9)
    rows = [done, failed, new]
    assert numbers(to_run(rows)) == [3]
    assert numbers(to_run(rows, [1, 2, 3])) == [2, 3]
    done.scratch_compute = {"state": "COMPLETE", "accuracy": 0.85, "epoch": 7}  # each match on its own
    assert numbers(to_run(rows, match="compute")) == [2, 3] and numbers(to_run(rows)) == [3]


def test_a_controls_line_sets_it_beside_its_trial():
    row = trial_row(4, accuracy=0.975, train_macs=117e9)
    assert control_line(row, {"state": "COMPLETE", "accuracy": 0.972, "train_macs": 13.8e9}) == (
        "scratch control of trial 4: accuracy 97.2% (trial 97.5%), train MACs 13.8G (trial 117G)")
    assert control_line(row, {"state": "FAIL", "error": "RuntimeError: boom"}) == (
        "scratch control of trial 4 failed: RuntimeError: boom")
    assert control_line(row, {"state": "COMPLETE", "accuracy": 0.98, "train_macs": 116e9, "epoch": 170},
                        "compute") == ("equal-compute scratch control of trial 4 (170 epochs): accuracy 98.0% "
                                       "(trial 97.5%), train MACs 116G (trial 117G)")


# --- run for real on the tiny study ----------------------------------------------------------


def _pruned_trial(study_dir) -> int:
    """The tiny study's trial that compressed (target_density 0.95; 0.3 kept its base widths)."""
    (row,) = [r for r in read_study(study_dir).search_rows if r.widths != r.base_widths]
    return row.number


def _set_widths(study_dir, number: int, widths: list[int]) -> None:
    """Change trial `number`'s recorded widths in study.db (a finished trial's attributes are read-only
    through Optuna)."""
    with sqlite3.connect(study_dir / "study.db") as db:
        db.execute("UPDATE trial_user_attributes SET value_json = ? WHERE key = 'widths' AND trial_id = "
                   "(SELECT trial_id FROM trials WHERE number = ?)", (json.dumps(widths), number))


def test_search_scratch_controls_on_a_finished_study_runs_them_and_records_a_failed_one(tiny_study_copy,
                                                                                     ray_session):
    from adsearch.study.finished import scratch_study
    from adsearch.study.runner import run_study

    number = _pruned_trial(tiny_study_copy)
    widths = read_study(tiny_study_copy).row(number).widths
    _set_widths(tiny_study_copy, number, [0, widths[1]])  # a network no control can train
    spec_file = (tiny_study_copy / "spec.yaml").read_bytes()
    spec = parse_spec(tiny_spec("tiny"), overrides={"search.scratch_controls": True})
    said = []
    result = run_study(spec, reports_dir=tiny_study_copy.parent, say=said.append)  # not a changed spec: resumed
    assert f"resuming study 'tiny' in {tiny_study_copy}" in said
    assert f"scratch controls: trial {number}, each one's final widths trained from scratch for 3 epochs " \
           "without pruning" in said  # the pruned trial on the front; the other kept its base widths
    assert any(line.startswith(f"scratch control of trial {number} failed: RuntimeError: ") for line in said), said
    (failed,) = [r.scratch for r in result.rows if r.scratch]
    assert failed["state"] == "FAIL" and failed["error"].startswith("RuntimeError: ") and "accuracy" not in failed
    assert read_study(tiny_study_copy).row(number).scratch == failed
    assert (tiny_study_copy / "spec.yaml").read_bytes() == spec_file  # the study's spec is as it began

    said.clear()
    scratch_study(tiny_study_copy, say=said.append)  # a failed control is tried again only when named
    assert said == [f"scratch controls: trial {number} already recorded"]


def test_the_command_trains_a_trials_widths_from_scratch_and_not_twice(tiny_study_copy, ray_session):
    from adsearch.study.finished import scratch_study
    from adsearch.train.trainer import run_trial

    number = _pruned_trial(tiny_study_copy)
    StudyDir(tiny_study_copy).save_scratch({number: {"state": "FAIL", "error": "RuntimeError: out of memory"}})
    report_before = (tiny_study_copy / "report.md").stat().st_mtime_ns
    address = ray_session.get_runtime_context().gcs_address
    command = ["scratch", tiny_study_copy, "--trials", number, "--address", address]
    recorded = (tiny_study_copy / "scratch.json").read_bytes()
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths have a length limit
    with adsearch_process(*command[:-2], cwd=tiny_study_copy.parent, env={**os.environ, "RAY_TMPDIR": str(ray_tmp)},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as run:  # on a local Ray of its own
        deadline = time.time() + 120
        while not list(ray_tmp.glob("ray/session_*")):  # the driver is in ray.init
            assert run.poll() is None and time.time() < deadline, "the command ended or Ray did not start"
            time.sleep(0.02)
        os.killpg(run.pid, signal.SIGTERM)  # as a batch scheduler stops it
        _, err = run.communicate(timeout=120)
    assert run.returncode == 143 and "Traceback" not in err and "***" not in err, err[-3000:]
    assert "stopped by SIGTERM: interrupted while starting, before anything was written; run the same command " \
           "again" in err
    assert (tiny_study_copy / "scratch.json").read_bytes() == recorded
    proc = adsearch(*command, cwd=tiny_study_copy.parent)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert f"scratch controls: trial {number}, each one's final widths trained from scratch" in proc.stdout
    assert f"scratch control of trial {number}: accuracy " in proc.stdout
    assert proc.stdout.splitlines()[-1] == f"report: {tiny_study_copy / 'report.md'}"
    assert (tiny_study_copy / "report.md").stat().st_mtime_ns > report_before

    record = read_study(tiny_study_copy)
    trial = record.row(number)
    control = json.loads((tiny_study_copy / "scratch.json").read_text())[str(number)]["epochs"]
    assert trial.scratch == control and control["state"] == "COMPLETE"
    assert [r.number for r in record.rows if r.scratch] == [number]  # the unpruned trial has none
    # the trial's final network from epoch 1: the same widths, size and inference cost, no rounds,
    # nothing shared; training the small network throughout costs less than shrinking into it
    assert control["widths"] == trial.widths and control["params"] == trial.metric("params")
    assert control["macs"] == trial.metric("macs") and control["rounds"] == 0 and control["epoch"] == 3
    assert control["shared_epochs"] == 0 and control["spent_train_macs"] == control["train_macs"]
    assert control["train_macs"] < trial.metric("train_macs")
    with one_torch_thread():  # a Ray trial of 1 CPU trains on one thread: the same numbers here
        alone = run_trial(control_spec(record.spec, trial), widths=trial.widths)
    assert control["accuracy"] == alone["accuracy"] and control["train_macs"] == alone["train_macs"]

    said, recorded = [], (tiny_study_copy / "scratch.json").read_bytes()
    experiments = sorted(p.name for p in (tiny_study_copy / "ray" / "scratch").iterdir())
    result = scratch_study(tiny_study_copy, say=said.append)
    assert said == [f"scratch controls: trial {number} already recorded"]
    assert (tiny_study_copy / "scratch.json").read_bytes() == recorded
    assert sorted(p.name for p in (tiny_study_copy / "ray" / "scratch").iterdir()) == experiments
    assert result.files["report.md"].is_file() and result.rows == read_study(tiny_study_copy).rows


def test_a_study_that_is_interrupted_or_running_is_refused(tiny_study_copy):
    from adsearch.study.finished import scratch_study

    proc = adsearch("scratch", tiny_study_copy, "--trials", "1,x", cwd=tiny_study_copy.parent)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "error: --trials must be trial numbers separated by commas, e.g. --trials 3,5; got '1,x'" in proc.stderr

    (tiny_study_copy / "baseline.json").rename(tiny_study_copy / "baseline.keep")  # as if stopped in the baseline
    with pytest.raises(AdsearchError, match=rf"study {tiny_study_copy} is interrupted \(2 of 2 search trials done\)"
                                            rf".*`adsearch resume {tiny_study_copy}`, then `adsearch scratch"):
        scratch_study(tiny_study_copy)
    (tiny_study_copy / "baseline.keep").rename(tiny_study_copy / "baseline.json")
    (tiny_study_copy / ".lock").write_text(f"{os.getppid()}\n")  # a live process runs it
    with pytest.raises(AdsearchError, match=rf"study {tiny_study_copy} is running \(pid {os.getppid()}\)"):
        scratch_study(tiny_study_copy)
    (tiny_study_copy / ".lock").unlink()
    with pytest.raises(AdsearchError, match="--trials: there is no trial 7"):
        scratch_study(tiny_study_copy, trials=[7])
    assert not (tiny_study_copy / "scratch.json").exists() and not (tiny_study_copy / "ray" / "scratch").exists()


def test_equal_compute_controls_train_longer_keep_their_network_and_are_reported(tiny_study_copy, ray_session):
    from adsearch import correctness, load_model, load_study
    from adsearch.export import export_trial, held_out_accuracy
    from adsearch.study.finished import scratch_study

    number = _pruned_trial(tiny_study_copy)
    record = read_study(tiny_study_copy)
    trial = record.row(number)
    epochs = compute_epochs(record.spec, trial)
    per_epoch = 3 * trial.metric("macs") * trial.history[-1]["samples"]
    assert epochs > record.spec.train.epochs  # the trial's first epoch trained the whole network
    said = []
    scratch_study(tiny_study_copy, trials=[number], match="compute", say=said.append)
    assert f"equal-compute scratch controls: trial {number}, each one's final widths trained from scratch without " \
           f"pruning for as many training MACs as the trial cost: trial {number} {epochs} epochs" in said
    assert any(line.startswith(f"equal-compute scratch control of trial {number} ({epochs} epochs): accuracy ")
               for line in said), said

    row = read_study(tiny_study_copy).row(number)
    control = row.scratch_compute
    assert row.scratch is None  # only the equal-compute control was asked for
    assert control["state"] == "COMPLETE" and control["epoch"] == epochs and control["widths"] == trial.widths
    assert abs(control["train_macs"] - trial.metric("train_macs")) <= per_epoch / 2  # the nearest whole epoch
    assert correctness.samples(control["correct"]) == trial.metric("test_samples")
    report = (tiny_study_copy / "report.md").read_text()
    assert "**At equal training compute.**" in report and f"- Trial {number}: " in report
    assert "| scratch accuracy (equal compute) | its epochs |" in report.split("## Pareto front")[1]

    # its network is kept and exported like any trial's
    assert (tiny_study_copy / "trials" / f"{number}.scratch-compute.pt").is_file()
    model = load_study(tiny_study_copy).model(number, control="compute")
    assert held_out_accuracy(model, tiny_study_copy, number) == pytest.approx(control["accuracy"])
    exported = export_trial(tiny_study_copy, number=number, control="compute")
    assert exported.path.name == f"trial-{number}-scratch-compute.pt" and exported.info["control"] == "compute"
    assert exported.info["metrics"]["accuracy"] == control["accuracy"] and exported.info["widths"] == trial.widths
    assert held_out_accuracy(load_model(exported.path), tiny_study_copy, number) == pytest.approx(control["accuracy"])
    with pytest.raises(AdsearchError, match=f"the scratch control of trial {number} was not run: nothing to export"):
        export_trial(tiny_study_copy, number=number, control="epochs")
    with pytest.raises(AdsearchError, match="unknown control 'flops'; choose one of epochs, compute"):
        export_trial(tiny_study_copy, number=number, control="flops")

    said.clear()  # recorded: not run again
    scratch_study(tiny_study_copy, trials=[number], match="compute", say=said.append)
    assert said == [f"equal-compute scratch controls: trial {number} already recorded"]


def test_controls_that_train_alike_run_once_and_are_recorded_for_each_trial(tiny_study_copy, ray_session):
    """Two trials that end at the same widths with recipes that differ only in pruning (as criteria cut
    from a shared state do) have the same control: it trains once, and both trials get its result and
    its network."""
    from adsearch import load_study
    from adsearch.study.finished import scratch_study

    number = _pruned_trial(tiny_study_copy)
    (other,) = [r.number for r in read_study(tiny_study_copy).search_rows if r.number != number]
    _set_widths(tiny_study_copy, other, read_study(tiny_study_copy).row(number).widths)
    first, second = sorted((number, other))
    said = []
    scratch_study(tiny_study_copy, trials=[number, other], say=said.append)
    assert f"scratch controls: trial {second} trains what trial {first}'s does (the same final widths and " \
           "recipe): trained once" in said
    ran = [line for line in said if line.startswith("scratch control of trial ")]
    assert len(ran) == 1 and ran[0].startswith(f"scratch control of trial {first}: accuracy "), said  # one run
    record = read_study(tiny_study_copy)
    assert record.row(first).scratch == record.row(second).scratch and record.row(second).scratch["state"] == "COMPLETE"
    assert (tiny_study_copy / "ray" / "scratch" / f"trials-{first}").is_dir()
    assert not (tiny_study_copy / "ray" / "scratch" / f"trials-{first}-{second}").exists()
    nets = [load_study(tiny_study_copy).model(n, control="epochs") for n in (first, second)]
    assert all(a.equal(b) for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values()))

    # a control recorded already serves a trial named later that trains alike
    scratch = json.loads((tiny_study_copy / "scratch.json").read_text())
    del scratch[str(second)]
    (tiny_study_copy / "scratch.json").write_text(json.dumps(scratch))
    (tiny_study_copy / "trials" / f"{second}.scratch-epochs.pt").unlink()
    said.clear()
    scratch_study(tiny_study_copy, trials=[second], say=said.append)
    assert f"scratch controls: trial {second} trains what trial {first}'s recorded control did (the same final " \
           "widths and recipe): its result and network are taken" in said
    assert not [line for line in said if line.startswith("scratch control of trial ")], said  # nothing trained
    assert read_study(tiny_study_copy).row(second).scratch == read_study(tiny_study_copy).row(first).scratch
    nets = [load_study(tiny_study_copy).model(n, control="epochs") for n in (first, second)]
    assert all(a.equal(b) for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values()))
