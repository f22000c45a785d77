"""The command line, run as a user runs it: real subprocesses, real Ray, real files."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
import time

import optuna
import pandas as pd
import pytest
from helpers import adsearch, adsearch_process, brute_force_front, line_of, tiny_spec


def test_study_end_to_end_through_the_cli(tiny_study_run):
    study_dir, proc = tiny_study_run  # `adsearch run` of the tiny spec (conftest.py), once for the session
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "report:" in proc.stdout and "[1/2]" in proc.stdout and "[2/2]" in proc.stdout
    assert f"report: {study_dir / 'report.md'}" in proc.stdout.splitlines()[-1]

    trials = pd.read_csv(study_dir / "trials.csv")
    assert sorted(trials["number"]) == [-1, 0, 1]
    assert (trials["state"] == "COMPLETE").all()
    base = trials[trials["role"] == "baseline"].iloc[0]
    assert base["params_ratio"] == 1.0 and base["accuracy"] > 0.5
    # target_density 0.95 compresses (digits densities sit near 0.5); 0.3 leaves the net alone
    by_density = {row["param:pruning.target_density"]: row for _, row in trials[trials["role"] == "search"].iterrows()}
    assert set(by_density) == {0.3, 0.95}  # the grid sampler visits each value once
    for density, row in by_density.items():
        expected_ratio = row["params"] / base["params"]
        assert row["params_ratio"] == pytest.approx(expected_ratio)
        assert row["accuracy_drop"] == pytest.approx(base["accuracy"] - row["accuracy"])
        if density == 0.95:
            assert row["params"] < base["params"]
        else:
            assert row["params"] == base["params"]

    pareto = pd.read_csv(study_dir / "pareto.csv")
    assert set(pareto["number"]) == brute_force_front(trials, [("accuracy", "max"), ("params", "min")])

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{study_dir / 'study.db'}")
    assert study.metric_names == ["accuracy", "params"]
    assert len(study.trials) == 2 and all(t.state.name == "COMPLETE" for t in study.trials)
    for t in study.trials:
        row = trials[trials["number"] == t.number].iloc[0]
        assert t.values[0] == pytest.approx(row["accuracy"]) and t.values[1] == row["params"]
        assert json.loads(row["widths"]) == t.user_attrs["widths"]
        assert [h["epoch"] for h in t.user_attrs["history"]] == [1, 2, 3]
        assert len(t.user_attrs["compressions"]) == t.user_attrs["rounds"] <= 1

    report = (study_dir / "report.md").read_text()
    assert "tiny" in report and "baseline" in report.lower()
    assert (study_dir / "plots" / "pareto_params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "digest" in (study_dir / "spec.yaml").read_text()


def test_invalid_spec_exits_2_lists_every_error_and_writes_nothing(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(tiny_spec("bad").replace("lr: 0.05", "lr: -1").replace("sampler: grid", "sampler: bayes")
                    .replace("pruning.target_density:", "pruning.target_densty:"))
    proc = adsearch("run", str(spec), "--reports", str(tmp_path / "reports"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    text = spec.read_text()
    assert f"train.optimizer.lr (line {line_of(text, 'lr: -1')})" in proc.stderr
    assert f"search.sampler (line {line_of(text, 'sampler: bayes')})" in proc.stderr and "'nsga2'" in proc.stderr
    assert "search.space.pruning.target_densty" in proc.stderr and "target_density" in proc.stderr
    assert not (tmp_path / "reports").exists()


def test_validate_and_schema(tmp_path):
    spec = tmp_path / "ok.yaml"
    spec.write_text(tiny_spec("ok"))
    proc = adsearch("validate", str(spec), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("OK")
    proc = adsearch("validate", str(spec), "--set", "pruning.target_density=2", cwd=tmp_path)
    assert proc.returncode == 2 and "pruning.target_density" in proc.stderr
    proc = adsearch("validate", str(spec), "--set", "train.epochs=1", cwd=tmp_path)  # a smoke run
    assert proc.returncode == 0 and proc.stdout.startswith("OK")
    assert "warning: pruning.compress_at: epochs [1] are not before train.epochs (1)" in proc.stderr
    proc = adsearch("schema", cwd=tmp_path)
    schema = json.loads(proc.stdout)
    assert {"model", "data", "train", "pruning", "search", "resources", "report"} <= set(schema["properties"])


def test_unknown_names_list_the_available_ones(tmp_path):
    spec = tmp_path / "names.yaml"
    spec.write_text(tiny_spec("names").replace("arch: vgg,", "arch: vgg99,")
                    .replace("dataset: digits", "dataset: svhn").replace("metric: params", "metric: size"))
    proc = adsearch("validate", str(spec), cwd=tmp_path)
    assert proc.returncode == 2
    assert "unknown model 'vgg99'" in proc.stderr and "vgg19" in proc.stderr
    assert "data.dataset" in proc.stderr and "'digits'" in proc.stderr
    assert "search.objectives.1.metric" in proc.stderr and "'train_macs'" in proc.stderr


def test_a_network_too_deep_for_the_image_size_is_a_spec_error_before_anything_runs(tmp_path):
    spec = tmp_path / "small.yaml"
    # squeezenet1_1 fails on 8 px as densenet121 does (tests/models/test_models.py), and costs less to build
    spec.write_text(tiny_spec("small").replace("{arch: vgg, layers: [16, M, 32]}",
                                               "{arch: 'torchvision:squeezenet1_1'}"))
    proc = adsearch("run", str(spec), "--reports", tmp_path / "reports", cwd=tmp_path)  # as `validate` says
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (f"data.image_size (line {line_of(spec.read_text(), 'dataset: digits')}): not set: digits gives its "
            "native 8 px; torchvision:squeezenet1_1 cannot take 8x8 inputs") in proc.stderr
    assert "the smallest size it takes is 17: set data.image_size: 17" in proc.stderr
    assert not (tmp_path / "reports").exists()


def test_a_directory_that_is_not_a_study_is_not_touched(tmp_path):
    spec = tmp_path / "again.yaml"
    spec.write_text(tiny_spec("again"))
    existing = tmp_path / "reports" / "again"
    existing.mkdir(parents=True)
    (existing / "keep.txt").write_text("precious")
    proc = adsearch("run", str(spec), "--reports", str(tmp_path / "reports"), cwd=tmp_path)
    assert proc.returncode == 2 and "is not an adsearch study" in proc.stderr and "Traceback" not in proc.stderr
    assert (existing / "keep.txt").read_text() == "precious"
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_train_command_shows_each_epoch(tmp_path):
    spec = tmp_path / "train.yaml"
    spec.write_text(tiny_spec("train"))
    proc = adsearch("train", str(spec), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [l for l in proc.stdout.splitlines() if l.startswith("epoch")]
    assert len(lines) == 3 and "widths" in lines[0] and "density" in lines[0]
    assert "done: accuracy" in proc.stdout


@pytest.mark.parametrize("sets, field, numbers", [
    (["resources.per_trial.cpu=64"], "resources.per_trial.cpu is 64", "this machine has"),
    (["resources.per_trial.gpu=1"], "resources.per_trial.gpu is 1", "and no GPU, and the local Ray"),
    (["train.device=cuda"], "train.device is 'cuda'", "no CUDA device"),
])
def test_what_a_local_ray_can_never_give_stops_the_run_before_anything_is_written(tmp_path, sets, field, numbers):
    (tmp_path / "res.yaml").write_text(tiny_spec("res"))
    overrides = [arg for s in sets for arg in ("--set", s)]
    proc = adsearch("run", "res.yaml", *overrides, "--reports", tmp_path / "reports", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith(f"error: {field}") and numbers in proc.stderr, proc.stderr
    if "cpu" in field:
        assert f"this machine has {os.cpu_count()} CPUs" in proc.stderr
    assert "Traceback" not in proc.stderr and "baseline" not in proc.stdout
    assert not (tmp_path / "reports").exists()


def test_every_problem_found_before_a_run_starts_is_said_at_once(tmp_path):
    """A batch too large for its data and resources this machine never has: both, one exit, nothing
    written; the user fixes both at once."""
    (tmp_path / "two.yaml").write_text(tiny_spec("two"))
    proc = adsearch("run", "two.yaml", "--set", "train.batch_size=5000", "--set", "resources.per_trial.cpu=64",
                    "--reports", tmp_path / "reports", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert lines[0] == "error: the study cannot start, 2 problems:"
    assert lines[1].startswith("  - train.batch_size 5000 is larger than the training split (")
    assert lines[2].startswith("  - resources.per_trial.cpu is 64, but this machine has")
    assert "baseline" not in proc.stdout and not (tmp_path / "reports").exists()


def _read_all(fd: int, into: bytearray) -> None:
    """Everything written to the pseudo-terminal `fd` until its writer closes it."""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed its end
            return
        if not data:
            return
        into.extend(data)


def test_running_trials_show_live_on_a_terminal_in_bounded_lines_off_one_and_in_ls_from_another_process(
        tmp_path, ray_session):
    """Two studies at once on the session's Ray (one CPU each): `live` (a baseline of 100 short epochs)
    on a pseudo-terminal, whose running baseline `adsearch ls` reads from another process, and
    `plain` with its output in a pipe, as in a log, at most a block a second."""
    address = ray_session.get_runtime_context().gcs_address
    (tmp_path / "live.yaml").write_text(tiny_spec("live", epochs=100, trials=1,
                                                  space="pruning.target_density: {values: [0.3]}"))
    (tmp_path / "plain.yaml").write_text(tiny_spec("plain", epochs=30, trials=1))
    study_dir = tmp_path / "reports" / "live"
    pid, fd = pty.fork()
    if pid == 0:  # the child: `adsearch run` on a terminal 160 columns wide
        os.chdir(tmp_path)
        os.environ["COLUMNS"] = "160"
        os.execv(sys.executable, [sys.executable, "-m", "adsearch.cli", "run", "live.yaml", "--reports", "reports",
                                  "--address", address])
    screen = bytearray()
    reader = threading.Thread(target=_read_all, args=(fd, screen), daemon=True)
    reader.start()
    try:
        started = time.monotonic()
        with adsearch_process("run", "plain.yaml", "--reports", tmp_path / "plain", "--progress-every", "1",
                              "--address", address, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) as plain:
            entry = study_dir / "live" / "baseline.json"
            deadline = time.time() + 120
            while not (entry.exists() and json.loads(entry.read_text() or "{}").get("epoch", 0) >= 1):
                assert time.time() < deadline, f"no epoch reported: {screen.decode(errors='replace')[-2000:]}"
                time.sleep(0.1)
            listing = adsearch("ls", tmp_path / "reports", cwd=tmp_path)
            out, err = plain.communicate(timeout=300)
            took = time.monotonic() - started
    finally:
        _, status = os.waitpid(pid, 0)
        reader.join(timeout=10)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, screen.decode(errors="replace")[-3000:]
    row = next(line for line in listing.stdout.splitlines() if line.startswith("live "))
    epoch = int(re.search(r"running: baseline epoch (\d+)/100", row).group(1))
    assert 1 <= epoch < 100, row

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))  # without the terminal's codes
    before_done = text[:text.index("baseline: accuracy")]
    shown = [int(k) for k in re.findall(r"baseline\s+(\d+)/100", before_done)]
    assert shown and min(shown) < 100 and shown == sorted(shown), before_done[-2000:]  # epochs as they ran
    assert "study: baseline running" in before_done
    assert "[1/1] trial 0" in text and "Traceback" not in text

    assert plain.returncode == 0, err[-3000:]
    lines = out.splitlines()
    blocks = [i for i, line in enumerate(lines) if line.startswith("  study: ")]
    epochs = [int(m.group(1)) for line in lines if (m := re.match(r"  running (?:baseline|trial 0 \(.*\)): epoch "
                                                                  r"(\d+)/30, accuracy", line))]
    assert len(epochs) >= 2 and max(epochs) < 30, out  # epochs shown while the trials ran
    assert 2 <= len(blocks) <= took / 1 + 1, out  # a block a second at most
    assert all(lines[i - 1].startswith("  running ") for i in blocks)  # each block: its trials, then the study
