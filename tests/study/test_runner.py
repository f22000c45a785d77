"""Studies that crash, resume, fail, lock and run on a real Ray cluster: real processes, files, Ray."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
from helpers import adsearch, adsearch_process, load_study, stop_once_reported, tiny_spec

from adsearch.errors import AdsearchError, StudyDirError
from adsearch.errors import StudyInterrupted
from adsearch.results.lock import lock
from adsearch.results.ownership import start
from adsearch.results.reading import optuna_trials
from adsearch.results.study_dir import LOCK_FILE, StudyDir
from adsearch.spec.loading import parse_spec
from adsearch.study.runner import resume_study, run_study
from adsearch.study.trials import CHECKPOINT_FILE


def spec_text(name, *, epochs=3, trials=2, width=16, space="pruning.target_density: {values: [0.3, 0.95]}",
              gpu=0, concurrent=2, extra=""):
    return tiny_spec(name, epochs=epochs, trials=trials, width=width, space=space, gpu=gpu, concurrent=concurrent,
                     extra=extra)


def _trials_so_far(study_dir: Path, name: str) -> list:
    """The study's Optuna trials as a running study has them: none before its storage is complete
    (read as `adsearch show` reads it, which never races the study making it); any error fails."""
    return optuna_trials(study_dir, name)


RECORDED = ("epoch", "accuracy", "top5", "loss", "train_loss", "params", "macs", "train_macs", "widths", "density")
"""What a result line says about the training (not when or where it ran)."""


def _complete_lines(path: Path) -> list[dict]:
    """The lines of a result.json that are whole (one being written is left out)."""
    lines = []
    for line in path.read_text().splitlines() if path.exists() else []:
        with contextlib.suppress(ValueError):
            lines.append(json.loads(line))
    return lines


def _epoch_tune_has_not_seen(search: Path, epochs: int, since: float) -> tuple[str, int] | None:
    """A running search trial's folder and epoch where the trial has saved that epoch's checkpoint
    (after `since`) but its result.json does not have the epoch yet: Ray Tune has not taken the
    report in, so no snapshot of its experiment can name that checkpoint; else None."""
    for folder in search.glob("_trainable_*"):
        lines = _complete_lines(folder / "result.json")
        newest = max(folder.glob("checkpoint_*"), default=None)
        if not lines or lines[-1]["epoch"] >= epochs or newest is None or newest.stat().st_mtime < since:
            continue
        try:
            saved = torch.load(newest / CHECKPOINT_FILE, weights_only=True)["epoch"]
        except Exception:  # noqa: BLE001 - being written: look again
            continue
        if saved > lines[-1]["epoch"]:
            return folder.name, saved
    return None


def _killed_with_an_epoch_unseen(args: list, study_dir: Path, epochs: int, cwd: Path, *,
                                 after_a_finished_trial: bool) -> tuple[str, int]:
    """`adsearch ARGS`, its process group SIGKILLed during the search at a moment a running trial
    has saved a checkpoint Ray Tune has not taken in (`_epoch_tune_has_not_seen`): the trial folder
    and the epoch, which the resumed trial will train again."""
    started, found = time.time(), None
    with adsearch_process(*args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        while found is None and time.time() < started + 300 and proc.poll() is None:
            time.sleep(0.02)
            if not after_a_finished_trial or any(t.state.name == "COMPLETE" for t in _trials_so_far(study_dir, "kill")):
                found = _epoch_tune_has_not_seen(study_dir / "ray" / "search", epochs, started)
        assert found is not None, f"never saw a checkpoint ahead of its result line (exit code {proc.poll()})"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return found


def test_a_study_killed_twice_in_its_search_ends_as_the_same_study_run_once(tmp_path, ray_session):
    # Why a resumed trial trains some epochs again (the trials module says it at length): Ray Tune
    # restores a trial from the checkpoint its last experiment snapshot names, and a kill between
    # snapshots leaves newer ones. Each kill here lands when a running trial has saved a checkpoint
    # Tune has not taken in, so at least that epoch is trained twice; the epochs trained again must
    # give the very numbers the straight run has
    epochs, trials = 8, 4
    text = spec_text("kill", epochs=epochs, trials=trials, width=48, concurrent=1,
                     space="pruning.compress_at: {values: [[1], [2], [3], [4]]}")
    with pytest.MonkeyPatch.context() as patch:  # a prefix cache of its own: the killed run trains its epochs
        patch.setenv("ADSEARCH_PREFIX_CACHE", str(tmp_path / "straight-cache"))
        straight = run_study(parse_spec(text), reports_dir=tmp_path / "straight", say=lambda _: None).directory
    spec = tmp_path / "kill.yaml"
    spec.write_text(text)
    address = ray_session.get_runtime_context().gcs_address
    study_dir = tmp_path / "reports" / "kill"
    run = ["run", spec, "--reports", tmp_path / "reports", "--address", address]
    first = _killed_with_an_epoch_unseen(run, study_dir, epochs, tmp_path, after_a_finished_trial=True)
    finished_before = {t.number: (t.values, t.user_attrs["history"]) for t in load_study(study_dir, "kill").trials
                       if t.state.name == "COMPLETE"}
    assert finished_before and (study_dir / LOCK_FILE).exists()  # left behind by the killed process: stale
    second = _killed_with_an_epoch_unseen(["resume", study_dir, "--address", address], study_dir, epochs, tmp_path,
                                          after_a_finished_trial=False)

    res = adsearch("resume", str(study_dir), "--address", address, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]

    study = load_study(study_dir, "kill")
    assert sorted(t.number for t in study.trials) == list(range(trials))
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    for number, (values, history) in finished_before.items():  # no finished trial lost or run again
        assert study.trials[number].values == values and study.trials[number].user_attrs["history"] == history
    once = {json.dumps(t.params): t for t in load_study(straight, "kill").trials}
    for t in study.trials:  # parameter set by parameter set, what the straight run found
        assert t.values == once[json.dumps(t.params)].values, t.params
        assert t.user_attrs["history"] == once[json.dumps(t.params)].user_attrs["history"], t.params
    straight_lines = {}  # parameter set -> epoch -> the straight run's result line
    for path in (straight / "ray" / "search").glob("*/result.json"):
        lines = _complete_lines(path)
        straight_lines[json.dumps(lines[0]["config"]["pruning.compress_at"])] = {line["epoch"]: line for line in lines}
    for folder, epoch in (first, second):
        lines = _complete_lines(study_dir / "ray" / "search" / folder / "result.json")
        reported = [line["epoch"] for line in lines]
        assert sorted(set(reported)) == list(range(1, epochs + 1)) and reported[-1] == epochs, reported
        assert epoch in reported  # trained again after the kill, and reported then
        reference = straight_lines[json.dumps(lines[0]["config"]["pruning.compress_at"])]
        for line in lines:  # every epoch as often as it was trained (again): the straight run's numbers
            assert {k: line[k] for k in RECORDED} == {k: reference[line["epoch"]][k] for k in RECORDED}, reported
    assert not (study_dir / "prefixes").exists()  # the prefix cache is shared, outside the study
    table = pd.read_csv(study_dir / "trials.csv")
    assert sorted(table["number"]) == [-1, *range(trials)] and (table["state"] == "COMPLETE").all()
    assert (study_dir / "report.md").exists() and not (study_dir / LOCK_FILE).exists()


def test_a_diverging_trial_is_failed_with_its_reason_and_the_study_goes_on(tmp_path, ray_session):
    spec = parse_spec(spec_text("diverge", epochs=2, space="train.optimizer.lr: {values: [0.05, 1.0e+9]}"))
    result = run_study(spec, reports_dir=tmp_path, say=lambda _: None)
    rows = {r.settings["train.optimizer.lr"]: r for r in result.rows if not r.is_baseline}
    assert rows[0.05].state == "COMPLETE"
    assert rows[1e9].state == "FAIL" and "TrialDiverged" in rows[1e9].error and "nan" in rows[1e9].error
    table = pd.read_csv(result.directory / "trials.csv")
    assert "TrialDiverged" in table[table["state"] == "FAIL"]["error"].iloc[0]
    study = load_study(result.directory, "diverge")
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(failed) == 1 and "TrialDiverged" in failed[0].user_attrs["error"]
    assert "TrialDiverged" in (result.directory / "report.md").read_text()


def test_max_failures_ends_the_study_and_counts_the_failures_before_a_resume(tmp_path, ray_session):
    text = spec_text("failing", epochs=2, trials=3, concurrent=1,
                     space="train.optimizer.lr: {values: [1.0e+9, 2.0e+9, 3.0e+9]}", extra="")
    spec = parse_spec(text.replace("  sampler: grid", "  sampler: grid\n  max_failures: 1"))
    with pytest.raises(StudyInterrupted, match=r"search.max_failures \(1\) reached: 1 trials failed"):
        run_study(spec, reports_dir=tmp_path, say=lambda _: None)
    states = [t.state.name for t in load_study(tmp_path / "failing").trials]
    assert states == ["FAIL"]  # one at a time: the stop follows the first failure, whatever the timing
    assert "interrupted" in (tmp_path / "failing" / "report.md").read_text().splitlines()[0]

    said = []
    with pytest.raises(StudyInterrupted, match="counts the failures of earlier runs too"):
        run_study(spec, reports_dir=tmp_path, say=said.append)  # a resume: the same failure still counts
    assert [t.state.name for t in load_study(tmp_path / "failing").trials] == ["FAIL"]  # no trial started
    assert said[0] == f"resuming study 'failing' in {tmp_path / 'failing'}"


def test_a_running_study_is_locked_and_a_stale_lock_is_taken_over(tmp_path):
    directory = tmp_path / "s"
    directory.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (directory / LOCK_FILE).write_text(f"{sleeper.pid}\n")
        with pytest.raises(AdsearchError, match=f"already running \\(pid {sleeper.pid}\\)"):
            with lock(StudyDir(directory)):
                pass
    finally:
        sleeper.kill()
        sleeper.wait()
    with lock(StudyDir(directory)):  # the process is gone: its lock is stale
        assert (directory / LOCK_FILE).read_text().strip() == str(os.getpid())
    assert not (directory / LOCK_FILE).exists()


def test_a_changed_spec_refuses_to_resume_and_shows_the_difference(tmp_path, ray_session):
    spec = tmp_path / "c.yaml"
    spec.write_text(spec_text("changed", epochs=2, trials=1, space="pruning.target_density: {values: [0.95]}")
                    .replace("  sampler: grid", "  sampler: grid\n  baseline: false"))  # one trial a run
    # on a local Ray of its own, with Ray's default token authentication (its token in a home of the
    # test's own), whose start-up notice adsearch does not pass on at the default --log-level
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"} | {"HOME": str(tmp_path / "home")}
    first = adsearch("run", spec, "--reports", tmp_path / "r", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert (tmp_path / "home" / ".ray" / "auth_token").exists()  # token authentication was on
    assert "Token authentication" not in first.stderr and "WARNING" not in first.stderr, first.stderr
    before = (tmp_path / "r" / "changed" / "trials.csv").read_text()
    address = ray_session.get_runtime_context().gcs_address  # the session's Ray from here on: quicker
    again = adsearch("run", spec, "--reports", tmp_path / "r", "--address", address, cwd=tmp_path)
    assert again.returncode == 0 and "resuming" in again.stdout
    assert (tmp_path / "r" / "changed" / "trials.csv").read_text() == before  # nothing re-run
    changed = adsearch("run", spec, "--set", "train.epochs=3", "--reports", tmp_path / "r", cwd=tmp_path)
    assert changed.returncode == 1 and "the spec changed" in changed.stderr
    assert "-  epochs: 2" in changed.stderr and "+  epochs: 3" in changed.stderr and "--fresh" in changed.stderr
    assert (tmp_path / "r" / "changed" / "trials.csv").read_text() == before

    fresh = adsearch("run", spec, "--set", "train.epochs=3", "--reports", tmp_path / "r", "--fresh", "--address",
                     address, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-2000:]  # the study adsearch made is deleted and run again
    assert f"deleted the earlier study in {tmp_path / 'r' / 'changed'} (--fresh)" in fresh.stdout
    assert "resuming" not in fresh.stdout
    study = load_study(tmp_path / "r" / "changed")
    assert [len(t.user_attrs["history"]) for t in study.trials] == [3]  # the new recipe, from scratch


def test_an_unreachable_cluster_is_named_at_once_and_nothing_is_written(tmp_path):
    spec = tmp_path / "far.yaml"
    spec.write_text(spec_text("far", epochs=1, trials=1))
    with socket.socket() as s:  # a port on loopback where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    res = adsearch("run", spec, "--reports", tmp_path / "r", "--address", f"127.0.0.1:{port}", cwd=tmp_path,
                   timeout=120)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert f"cannot reach the Ray cluster at '127.0.0.1:{port}'" in res.stderr and "ray start --head" in res.stderr
    assert time.monotonic() - started < 60  # not Ray's minutes of retrying
    assert not (tmp_path / "r").exists()


def test_resume_of_something_that_is_not_a_study(tmp_path):
    (tmp_path / "r" / "real").mkdir(parents=True)
    (tmp_path / "r" / "real" / "spec.yaml").write_text("name: real\n")
    (tmp_path / "r" / "junk").mkdir()
    res = adsearch("resume", tmp_path / "r" / "junk", cwd=tmp_path)
    assert res.returncode == 2 and "no study at" in res.stderr and "studies in" in res.stderr and "real" in res.stderr
    with pytest.raises(StudyDirError, match="no study at .*missing"):
        resume_study(tmp_path / "r" / "missing")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["junk", "real"]


def test_a_failing_baseline_stops_the_study_before_the_search_and_says_why(tmp_path, ray_session):
    spec = parse_spec(spec_text("badbase", epochs=2, trials=1, space="pruning.target_density: {values: [0.95]}")
                      .replace("lr: 0.05", "lr: 1.0e+9"))
    with pytest.raises(AdsearchError, match=r"the baseline trial failed: TrialDiverged: .*nan.* every trial would "
                                            r"fail the same way: fix the recipe and start again with --fresh"):
        run_study(spec, reports_dir=tmp_path, say=lambda _: None)
    study_dir = tmp_path / "badbase"
    assert not (study_dir / "baseline.json").exists() and not (study_dir / "study.db").exists()  # no search ran
    assert not (study_dir / LOCK_FILE).exists()


def test_trials_a_crash_left_running_are_run_and_a_study_may_skip_its_baseline(tmp_path, ray_session):
    """A crash between Optuna handing out a trial and Ray recording it leaves an Optuna trial
    RUNNING that no Ray trial will finish: the next run gives it to a Ray trial, so it neither
    stays RUNNING forever nor costs the budget a trial."""
    space = "train.optimizer.lr: {distribution: uniform, low: 0.01, high: 0.05, step: 0.01}"
    text = spec_text("orphans", epochs=2, trials=2, space=space).replace("  sampler: grid", "  sampler: random\n"
                                                                         "  baseline: false")
    spec = parse_spec(text)
    study_dir = tmp_path / "orphans"
    start(StudyDir(study_dir), spec)  # the study as a crash left it: begun, one trial handed out
    study = optuna.create_study(storage=f"sqlite:///{study_dir / 'study.db'}", study_name="orphans",
                                directions=["maximize", "minimize"])
    study.enqueue_trial({"train.optimizer.lr": 0.03})
    orphan = study.ask({"train.optimizer.lr": optuna.distributions.FloatDistribution(0.01, 0.05, step=0.01)})
    orphan.set_user_attr("ray_trial_id", "lost_00000")

    said = []
    result = run_study(spec, reports_dir=tmp_path, say=said.append)
    assert said[0] == f"resuming study 'orphans' in {study_dir}" and not any("baseline" in s for s in said)
    trials = [t for t in load_study(study_dir).trials if "repeat_of" not in t.user_attrs]  # a repeat is free
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"] and trials[0].number == 0
    assert trials[0].params == {"train.optimizer.lr": 0.03} and trials[0].user_attrs["ray_trial_id"] != "lost_00000"
    assert [h["epoch"] for h in trials[0].user_attrs["history"]] == [1, 2]
    lr = trials[1].params["train.optimizer.lr"]
    assert 0.01 <= lr <= 0.05 and lr == pytest.approx(round(lr / 0.01) * 0.01, abs=1e-12)  # on the step grid
    assert lr != pytest.approx(0.03)  # 0.03 again would have been a repeat, not a trial of the budget
    assert not (study_dir / "baseline.json").exists()
    assert [r.number for r in result.rows if not r.is_repeat] == [0, trials[1].number]
    assert (study_dir / "report.md").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real Ray cluster: `ray start --head` on loopback with 2 CPUs and 2 declared (fake) GPUs."""
    port = _free_port()
    head = subprocess.Popen(
        ["ray", "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
         "--num-gpus=2", "--include-dashboard=false", "--disable-usage-stats"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        probe = subprocess.run(["ray", "status", f"--address={address}"], capture_output=True, text=True)
        if probe.returncode == 0 and "GPU" in probe.stdout:
            break
        time.sleep(1)
    else:
        os.killpg(head.pid, signal.SIGKILL)
        pytest.fail(f"the Ray head did not start: {probe.stderr[-1500:]}\n{head.communicate()[0][-1500:]}")
    yield address
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=5)  # `ray start --block` may linger on SIGTERM; its group is killed then
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)


def test_a_study_on_a_real_cluster_with_one_gpu_per_trial(tmp_path, cluster):
    spec = tmp_path / "cl.yaml"
    spec.write_text(spec_text("cluster", epochs=2, gpu=1))
    res = adsearch("run", str(spec), "--reports", str(tmp_path / "r"), "--address", cluster, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    table = pd.read_csv(tmp_path / "r" / "cluster" / "trials.csv")
    assert len(table) == 3 and (table["state"] == "COMPLETE").all()
    study = load_study(tmp_path / "r" / "cluster", "cluster")
    ids = [t.user_attrs["gpu_ids"] for t in study.trials]
    assert all(len(i) == 1 for i in ids)
    assert _both_running_at_once(study)  # two trials at once (2 CPUs, 2 GPUs) ...
    assert ids[0] != ids[1]  # ... one whole GPU each: different devices
    search = table[table["number"] >= 0].sort_values("number")
    assert [json.loads(g) for g in search["gpu_ids"]] == ids  # and trials.csv says which
    baseline = json.loads((tmp_path / "r" / "cluster" / "baseline.json").read_text())
    assert len(baseline["gpu_ids"]) == 1  # the baseline asks what a trial asks


def test_a_trial_no_node_can_take_waits_then_stops_resumable_and_goes_on_once_a_node_joins(tmp_path, cluster):
    spec = tmp_path / "big.yaml"
    spec.write_text(spec_text("big", epochs=1, trials=1, gpu=3)
                    .replace("max_concurrent: 2}", "max_concurrent: 2, placement_timeout_s: 3}"))
    study_dir = tmp_path / "r" / "big"
    res = adsearch("run", spec, "--reports", tmp_path / "r", "--address", cluster, cwd=tmp_path)
    assert res.returncode == 130, res.stderr[-3000:]
    assert (f"warning: resources.per_trial asks 1 CPU and 3 GPUs per trial, but no node of the cluster at "
            f"'{cluster}' has that now (1 node of 2 CPUs, 2 GPUs): waiting up to 3.0 s "
            "(resources.placement_timeout_s) for an autoscaler to add one") in res.stderr
    assert ("stopped: no trial was placed within resources.placement_timeout_s (3.0 s): each asks 1 CPU(s) and 3 "
            "GPU(s) (resources.per_trial), and no node has them (1 node of 2 CPUs, 2 GPUs): add one, then go on with: "
            f"adsearch resume {study_dir}") in res.stderr
    assert "Traceback" not in res.stderr and "No trial is running" not in res.stderr  # Ray's own warning, not shown
    assert "interrupted" in adsearch("show", study_dir, cwd=tmp_path).stdout.splitlines()[0]

    node = subprocess.Popen(["ray", "start", f"--address={cluster}", "--block", "--node-ip-address=127.0.0.1",
                             "--num-cpus=1", "--num-gpus=3", "--disable-usage-stats"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while "5.0 GPU" not in (status := subprocess.run(["ray", "status", f"--address={cluster}"],
                                                         capture_output=True, text=True).stdout):
            assert node.poll() is None and time.time() < deadline, f"the node did not join: {status[-1500:]}"
            time.sleep(1)
        # the same spec with a longer wait (a new node's first worker takes a while to start) resumes it
        res = adsearch("run", spec, "--set", "resources.placement_timeout_s=120", "--reports", tmp_path / "r",
                       "--address", cluster, cwd=tmp_path)
    finally:
        os.killpg(node.pid, signal.SIGKILL)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming study 'big'" in res.stdout and "[1/1]" in res.stdout
    assert len(json.loads((study_dir / "baseline.json").read_text())["gpu_ids"]) == 3


def test_half_a_gpu_per_trial_lets_two_trials_share_one(tmp_path, cluster):
    spec = tmp_path / "half.yaml"
    spec.write_text(spec_text("half", epochs=2, gpu=0.5))
    res = adsearch("run", str(spec), "--reports", str(tmp_path / "r"), "--address", cluster, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    study = load_study(tmp_path / "r" / "half", "half")
    ids = [t.user_attrs["gpu_ids"] for t in study.trials]
    assert all(len(i) == 1 for i in ids) and ids[0] == ids[1]


def _both_running_at_once(study: optuna.Study) -> bool:
    """Whether the study's records have each of its two trials begun before the other finished
    (the order of the study's own events, not a comparison of measured durations)."""
    a, b = study.trials
    return a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete


def test_ctrl_c_and_sigterm_in_the_baseline_and_the_search_stop_cleanly_and_the_study_resumes(tmp_path, ray_session):
    """SIGTERM goes to the process group with a local Ray that the run started in it (as a batch
    scheduler sends it): Ray's processes must outlive it and the driver stop as Ctrl-C stops it."""
    spec = tmp_path / "int.yaml"
    # three trials, so that the third run still has one to train when its SIGTERM comes
    spec.write_text(spec_text("int", epochs=5, trials=3, width=32, concurrent=1,
                              space="pruning.target_density: {values: [0.3, 0.6, 0.95]}"))
    address = ray_session.get_runtime_context().gcs_address
    study_dir = tmp_path / "r" / "int"

    def stopped_cleanly(code, err, expected):
        assert code == expected, err[-2000:]
        assert f"adsearch resume {study_dir}" in err and "Traceback" not in err
        assert "***" not in err and "PC: @" not in err  # no stack dump from Ray's signal handler
        assert not (study_dir / LOCK_FILE).exists()
        assert "interrupted" in (study_dir / "report.md").read_text().splitlines()[0]

    code, out, err = stop_once_reported(["run", spec, "--reports", tmp_path / "r"], study_dir, "baseline", signal.SIGTERM, tmp_path)
    stopped_cleanly(code, err, 143)
    assert "stopped by SIGTERM: interrupted during the baseline" in err and not (study_dir / "baseline.json").exists()

    code, out, err = stop_once_reported(["resume", study_dir, "--address", address], study_dir, "search", signal.SIGINT, tmp_path)
    stopped_cleanly(code, err, 130)
    assert "resuming study 'int'" in out and "stopped: interrupted after" in err
    baseline = json.loads((study_dir / "baseline.json").read_text())
    assert [h["epoch"] for h in baseline["history"]] == list(range(1, 6))  # the baseline went on to its end

    done_before = [t.number for t in load_study(study_dir, "int").trials if t.state.name == "COMPLETE"]
    code, out, err = stop_once_reported(["resume", study_dir], study_dir, "search", signal.SIGTERM, tmp_path)
    stopped_cleanly(code, err, 143)
    assert "stopped by SIGTERM: interrupted after" in err
    study = load_study(study_dir, "int")
    assert all(t.state.name in ("COMPLETE", "RUNNING") for t in study.trials)  # nothing failed by the stops
    finished = {t.number: t.values for t in study.trials if t.state.name == "COMPLETE"}
    assert set(done_before) <= set(finished)

    res = adsearch("resume", study_dir, "--address", address, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    study = load_study(study_dir, "int")
    assert sorted(t.number for t in study.trials) == [0, 1, 2] and all(t.state.name == "COMPLETE" for t in study.trials)
    assert all(study.trials[n].values == values for n, values in finished.items())  # no finished trial lost
    assert "done" in (study_dir / "report.md").read_text().splitlines()[0]


def test_sigterm_while_ray_starts_stops_at_once_with_nothing_written_and_no_ray_left(tmp_path):
    """Ray's own handlers (in `ray.init`: exit at once, then a stack dump and an abort) never see it,
    also from a script's background job, which starts with Ctrl-C ignored."""
    spec = tmp_path / "early.yaml"
    spec.write_text(spec_text("early", epochs=2, trials=1))
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}
    with adsearch_process("run", spec, "--reports", tmp_path / "r", cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) as proc:
        deadline = time.time() + 120
        while not list(ray_tmp.glob("ray/session_*")):  # the driver is in ray.init
            assert proc.poll() is None and time.time() < deadline, "the run ended or Ray did not start"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-3000:]
    assert "stopped by SIGTERM: interrupted while starting, before anything was written; run the same command " \
           "again" in err
    assert "***" not in err and "PC: @" not in err and "Traceback" not in err and not (tmp_path / "r").exists()
    assert not _processes_naming(ray_tmp), "Ray processes left running"


def _processes_naming(path: Path) -> list[int]:
    """The processes whose command line holds `path`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if str(path).encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
    return found


def test_sharing_off_trains_the_same_trials_and_an_exhausted_space_ends_the_study(tmp_path, ray_session, tiny_study):
    """The session's tiny study shared prefixes: its trial at target_density 0.3 never compresses
    (densities sit near 0.5), so it is the baseline's network and trains nothing; the one at 0.95
    starts from the baseline's epoch 1. The same study with sharing off (and a random sampler with
    a budget of 4 over its 2 points) trains everything, gives the same trials, and ends after 2."""
    shared = pd.read_csv(tiny_study / "trials.csv").set_index("param:pruning.target_density", drop=False)
    assert not (tiny_study / "prefixes").exists()  # the prefix cache is shared, outside the study
    assert shared.loc[0.3, "shared_epochs"] == 3 and shared.loc[0.3, "spent_train_macs"] == 0
    assert shared.loc[0.3, "shared_from"] == -1 and shared.loc[0.95, "shared_epochs"] == 1
    assert "Shared training: 1 trial started from a state another trial trained and 1 reused a network already " \
           "trained (no training)" in (tiny_study / "report.md").read_text()

    (tmp_path / "off.yaml").write_text(spec_text("tiny", trials=4).replace("sampler: grid", "sampler: random"))
    res = adsearch("run", "off.yaml", "--set", "search.share_prefixes=false", "--reports", tmp_path / "reports",
                   "--address", ray_session.get_runtime_context().gcs_address, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "search: ended after 2 of 4 trials: all 2 parameter sets of search.space have been tried" in res.stdout
    assert "prefix cache" not in res.stdout and not (tmp_path / "reports" / "tiny" / "prefixes").exists()
    alone = pd.read_csv(tmp_path / "reports" / "tiny" / "trials.csv")
    assert "done" in adsearch("show", tmp_path / "reports" / "tiny", cwd=tmp_path).stdout.splitlines()[0]
    trained = alone[alone["repeat_of"].isna()].set_index("param:pruning.target_density", drop=False)
    assert sorted(trained.index.dropna()) == [0.3, 0.95] and (trained["shared_epochs"] == 0).all()
    assert (trained["spent_train_macs"] == trained["train_macs"]).all()
    same = ["accuracy", "top5", "loss", "params", "macs", "train_macs", "params_ratio", "train_macs_ratio", "widths"]
    for value in (0.3, 0.95):
        assert trained.loc[value, same].tolist() == shared.loc[value, same].tolist(), value
    baseline = [t[t["role"] == "baseline"][same].values.tolist() for t in (alone, shared)]
    assert baseline[0] == baseline[1]


def test_a_study_of_the_same_recipe_starts_from_every_state_another_study_trained(tmp_path, ray_session, tiny_study,
                                                                                  monkeypatch):
    """The session's tiny study left its states in the session's prefix cache. Another study of the same
    recipe (another name, a larger space) trains nothing: its baseline and its trials (target density 0.6
    cuts to the widths 0.95 does) start from those states, each to its last epoch."""
    monkeypatch.setenv("ADSEARCH_PREFIX_CACHE", os.path.join(os.environ["ADSEARCH_CACHE"], "session-prefixes"))
    (tmp_path / "again.yaml").write_text(spec_text("again", trials=3,
                                                   space="pruning.target_density: {values: [0.3, 0.95, 0.6]}"))
    res = adsearch("run", "again.yaml", "--reports", tmp_path / "reports", "--address",
                   ray_session.get_runtime_context().gcs_address, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    table = pd.read_csv(tmp_path / "reports" / "again" / "trials.csv")
    assert len(table) == 4 and (table["spent_train_macs"] == 0).all() and (table["shared_epochs"] == 3).all()
    first = pd.read_csv(tiny_study / "trials.csv").set_index("param:pruning.target_density", drop=False)
    again = table.set_index("param:pruning.target_density", drop=False)
    for value in (0.3, 0.95):
        assert again.loc[value, "accuracy"] == first.loc[value, "accuracy"]
    assert "kept for later studies" in res.stdout
    listed = adsearch("cache", cwd=tmp_path).stdout
    assert "tiny" in listed and "digits" in listed  # the recipe, named after the study that first trained it
