"""Studies that crash, resume, fail, lock and run on a real Ray cluster: real processes, files, Ray."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch

from adsearch.errors import AdsearchError
from adsearch.spec import parse_spec
from adsearch.study import CHECKPOINT_FILE, LOCK_FILE, StudyInterrupted, load_checkpoint, run_study, study_lock

SPEC = """
name: {name}
seed: 0
model: {{arch: vgg, layers: [{width}, M, {width2}]}}
data: {{dataset: digits}}
train: {{epochs: {epochs}, batch_size: 32, optimizer: {{name: sgd, lr: 0.05}}}}
pruning: {{compress_at: [1], target_density: 0.95, min_channels: 2}}
search:
  trials: {trials}
  sampler: grid
  space:
    {space}
resources: {{per_trial: {{cpu: 1, gpu: {gpu}}}, max_concurrent: {concurrent}}}
"""


def spec_text(name, *, epochs=3, trials=2, width=16, space="pruning.target_density: {values: [0.3, 0.95]}",
              gpu=0, concurrent=2, extra=""):
    return SPEC.format(name=name, epochs=epochs, trials=trials, width=width, width2=2 * width, space=space,
                       gpu=gpu, concurrent=concurrent) + extra


def adsearch(*args, cwd, **kwargs):
    return subprocess.run([sys.executable, "-m", "adsearch.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, **kwargs)


def load(study_dir: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{study_dir / 'study.db'}")


def result_lines(study_dir: Path, ray_id: str) -> list[dict]:
    dirs = [d for d in (study_dir / "ray" / "search").glob(f"*{ray_id}*") if d.is_dir()]
    path = dirs[0] / "result.json" if dirs else None
    return [json.loads(line) for line in path.read_text().splitlines()] if path and path.exists() else []


def test_kill_9_mid_trial_then_resume_completes_the_budget_exactly(tmp_path, ray_session):
    epochs, trials = 8, 4
    spec = tmp_path / "kill.yaml"
    spec.write_text(spec_text("kill", epochs=epochs, trials=trials, width=48, concurrent=1,
                              space="pruning.target_density: {values: [0.3, 0.95, 0.9, 0.35]}"))
    address = ray_session.get_runtime_context().gcs_address
    reports = tmp_path / "reports"
    study_dir = reports / "kill"
    proc = subprocess.Popen([sys.executable, "-m", "adsearch.cli", "run", str(spec), "--reports", str(reports),
                             "--address", address], cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # wait until one trial has finished and another has reported at least two epochs
    in_flight, deadline = None, time.time() + 300
    while time.time() < deadline and in_flight is None:
        time.sleep(0.2)
        if not (study_dir / "study.db").exists():
            continue
        try:
            ts = load(study_dir, "kill").trials
        except Exception:  # the storage may be mid-creation
            continue
        if any(t.state.name == "COMPLETE" for t in ts):
            for t in ts:
                rid = t.user_attrs.get("ray_trial_id")
                if t.state.name == "RUNNING" and rid and 2 <= len(result_lines(study_dir, rid)) < epochs - 1:
                    in_flight = t
    assert in_flight is not None, "never saw a finished trial and one mid-way"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    epochs_before_kill = len(result_lines(study_dir, in_flight.user_attrs["ray_trial_id"]))
    finished_before = {t.number: (t.values, t.user_attrs["history"]) for t in load(study_dir, "kill").trials
                       if t.state.name == "COMPLETE"}
    assert (study_dir / LOCK_FILE).exists()  # left behind by the killed process: stale

    res = adsearch("resume", str(study_dir), "--address", address, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "Traceback" not in res.stderr

    study = load(study_dir, "kill")
    assert sorted(t.number for t in study.trials) == list(range(trials))
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    for number, (values, history) in finished_before.items():
        assert study.trials[number].values == values and study.trials[number].user_attrs["history"] == history
    lines = result_lines(study_dir, in_flight.user_attrs["ray_trial_id"])
    redone = len(lines) - epochs
    assert 0 <= redone <= 1, f"{epochs_before_kill} epochs before the kill, {len(lines)} reported in all"
    assert [h["epoch"] for h in study.trials[in_flight.number].user_attrs["history"]] == list(range(1, epochs + 1))
    table = pd.read_csv(study_dir / "trials.csv")
    assert sorted(table["number"]) == [-1, *range(trials)] and (table["state"] == "COMPLETE").all()
    assert (study_dir / "report.md").exists() and not (study_dir / LOCK_FILE).exists()


def test_a_diverging_trial_is_failed_with_its_reason_and_the_study_goes_on(tmp_path, ray_session):
    spec = parse_spec(spec_text("diverge", epochs=2, space="train.optimizer.lr: {values: [0.05, 1.0e+9]}"))
    result = run_study(spec, reports_dir=tmp_path, say=lambda _: None)
    rows = {r["param:train.optimizer.lr"]: r for r in result.rows if r["role"] == "search"}
    assert rows[0.05]["state"] == "COMPLETE"
    assert rows[1e9]["state"] == "FAIL" and "TrialDiverged" in rows[1e9]["error"] and "nan" in rows[1e9]["error"]
    table = pd.read_csv(result.directory / "trials.csv")
    assert "TrialDiverged" in table[table["state"] == "FAIL"]["error"].iloc[0]
    study = load(result.directory, "diverge")
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(failed) == 1 and "TrialDiverged" in failed[0].user_attrs["error"]
    assert "TrialDiverged" in (result.directory / "report.md").read_text()


def test_max_failures_ends_the_study_with_a_clear_message(tmp_path, ray_session):
    text = spec_text("failing", epochs=2, trials=3, concurrent=1,
                     space="train.optimizer.lr: {values: [1.0e+9, 2.0e+9, 3.0e+9]}", extra="")
    spec = parse_spec(text.replace("  sampler: grid", "  sampler: grid\n  max_failures: 1"))
    with pytest.raises(StudyInterrupted, match=r"search.max_failures \(1\) reached"):
        run_study(spec, reports_dir=tmp_path, say=lambda _: None)
    study = load(tmp_path / "failing", "failing")
    assert [t.state.name for t in study.trials].count("FAIL") >= 1
    assert len([t for t in study.trials if t.state.is_finished()]) < 3
    assert "interrupted" in (tmp_path / "failing" / "report.md").read_text().splitlines()[0]


def test_a_running_study_is_locked_and_a_stale_lock_is_taken_over(tmp_path):
    directory = tmp_path / "s"
    directory.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (directory / LOCK_FILE).write_text(f"{sleeper.pid}\n")
        with pytest.raises(AdsearchError, match=f"already running \\(pid {sleeper.pid}\\)"):
            with study_lock(directory):
                pass
    finally:
        sleeper.kill()
        sleeper.wait()
    with study_lock(directory):  # the process is gone: its lock is stale
        assert (directory / LOCK_FILE).read_text().strip() == str(os.getpid())
    assert not (directory / LOCK_FILE).exists()


def test_a_changed_spec_refuses_to_resume_and_shows_the_difference(tmp_path, ray_session):
    spec = tmp_path / "c.yaml"
    spec.write_text(spec_text("changed", epochs=2, trials=1, space="pruning.target_density: {values: [0.95]}"))
    address = ray_session.get_runtime_context().gcs_address
    first = adsearch("run", str(spec), "--reports", str(tmp_path / "r"), "--address", address, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    before = (tmp_path / "r" / "changed" / "trials.csv").read_text()
    again = adsearch("run", str(spec), "--reports", str(tmp_path / "r"), "--address", address, cwd=tmp_path)
    assert again.returncode == 0 and "resuming" in again.stdout
    assert (tmp_path / "r" / "changed" / "trials.csv").read_text() == before  # nothing re-run
    changed = adsearch("run", str(spec), "--set", "train.epochs=3", "--reports", str(tmp_path / "r"), cwd=tmp_path)
    assert changed.returncode == 1 and "the spec changed" in changed.stderr
    assert "-  epochs: 2" in changed.stderr and "+  epochs: 3" in changed.stderr and "--fresh" in changed.stderr
    assert (tmp_path / "r" / "changed" / "trials.csv").read_text() == before


def test_a_torn_last_checkpoint_falls_back_to_the_one_before_with_a_warning(tmp_path):
    good, torn = tmp_path / "checkpoint_000003", tmp_path / "checkpoint_000004"
    for directory in (good, torn):
        directory.mkdir()
    torch.save({"epoch": 3, "weights": torch.arange(4.0)}, good / CHECKPOINT_FILE)
    torch.save({"epoch": 4, "weights": torch.arange(4.0)}, torn / CHECKPOINT_FILE)
    data = (torn / CHECKPOINT_FILE).read_bytes()
    (torn / CHECKPOINT_FILE).write_bytes(data[: len(data) // 2])  # a write cut short
    with pytest.warns(UserWarning, match=r"checkpoint_000004/trial.pt is unreadable .*falling back"):
        ckpt = load_checkpoint(torn)
    assert ckpt["epoch"] == 3 and torch.equal(ckpt["weights"], torch.arange(4.0))
    assert (torn / CHECKPOINT_FILE).read_bytes() == data[: len(data) // 2]  # left as it was
    (good / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unreadable"):
        assert load_checkpoint(torn) is None  # nothing readable: the trial starts again


def test_resume_of_something_that_is_not_a_study(tmp_path):
    (tmp_path / "r" / "real").mkdir(parents=True)
    (tmp_path / "r" / "real" / "spec.yaml").write_text("name: real\n")
    (tmp_path / "r" / "junk").mkdir()
    res = adsearch("resume", str(tmp_path / "r" / "junk"), cwd=tmp_path)
    assert res.returncode == 1 and "not an adsearch study" in res.stderr and "real" in res.stderr
    res = adsearch("resume", str(tmp_path / "r" / "missing"), cwd=tmp_path)
    assert res.returncode == 1 and "no study at" in res.stderr and "Traceback" not in res.stderr


def test_a_corrupt_study_db_gives_a_clear_message_and_touches_nothing(tmp_path, ray_session):
    spec = parse_spec(spec_text("corrupt", epochs=2, trials=1, space="pruning.target_density: {values: [0.95]}"))
    run_study(spec, reports_dir=tmp_path, say=lambda _: None)
    db = tmp_path / "corrupt" / "study.db"
    db.write_bytes(b"this is not sqlite" * 100)
    trials_csv = (tmp_path / "corrupt" / "trials.csv").read_text()
    res = adsearch("resume", str(tmp_path / "corrupt"), "--address", ray_session.get_runtime_context().gcs_address,
                   cwd=tmp_path)
    assert res.returncode == 1 and "study.db" in res.stderr and "Traceback" not in res.stderr
    assert db.read_bytes() == b"this is not sqlite" * 100
    assert (tmp_path / "corrupt" / "trials.csv").read_text() == trials_csv


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
    study = load(tmp_path / "r" / "cluster", "cluster")
    ids = [t.user_attrs["gpu_ids"] for t in study.trials]
    assert all(len(i) == 1 for i in ids)
    assert _overlap(tmp_path / "r" / "cluster", study)  # two trials at once (2 CPUs, 2 GPUs) ...
    assert ids[0] != ids[1]  # ... one whole GPU each: different devices
    search = table[table["number"] >= 0].sort_values("number")
    assert [json.loads(g) for g in search["gpu_ids"]] == ids  # and trials.csv says which


def test_half_a_gpu_per_trial_lets_two_trials_share_one(tmp_path, cluster):
    spec = tmp_path / "half.yaml"
    spec.write_text(spec_text("half", epochs=2, gpu=0.5))
    res = adsearch("run", str(spec), "--reports", str(tmp_path / "r"), "--address", cluster, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    study = load(tmp_path / "r" / "half", "half")
    ids = [t.user_attrs["gpu_ids"] for t in study.trials]
    assert all(len(i) == 1 for i in ids) and ids[0] == ids[1]


def _overlap(study_dir: Path, study: optuna.Study) -> bool:
    """Whether the two search trials ran at the same time (from their Ray result timestamps)."""
    spans = []
    for t in study.trials:
        lines = result_lines(study_dir, t.user_attrs["ray_trial_id"])
        spans.append((lines[0]["timestamp"] - lines[0]["time_this_iter_s"], lines[-1]["timestamp"]))
    (a0, a1), (b0, b1) = spans
    return a0 < b1 and b0 < a1


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path, ray_session):
    spec = tmp_path / "int.yaml"
    spec.write_text(spec_text("int", epochs=6, trials=2, width=32, concurrent=1,
                              space="pruning.target_density: {values: [0.3, 0.95]}"))
    proc = subprocess.Popen([sys.executable, "-m", "adsearch.cli", "run", str(spec), "--reports", str(tmp_path / "r"),
                             "--address", ray_session.get_runtime_context().gcs_address],
                            cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    study_dir = tmp_path / "r" / "int"
    deadline = time.time() + 300
    while time.time() < deadline:  # wait for a search trial to report an epoch
        time.sleep(0.2)
        search = study_dir / "ray" / "search"
        if search.exists() and any(p.stat().st_size > 0 for p in search.glob("*/result.json")):
            break
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole foreground group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert f"adsearch resume {study_dir}" in err and "Traceback" not in err
    study = load(study_dir, "int")
    assert all(t.state.name in ("COMPLETE", "RUNNING") for t in study.trials)  # nothing failed by the stop
    assert not (study_dir / LOCK_FILE).exists()
    assert "interrupted" in (study_dir / "report.md").read_text().splitlines()[0]
