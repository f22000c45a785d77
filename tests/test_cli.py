"""The command line, run as a user runs it: real subprocesses, real Ray, real files."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest
from helpers import adsearch, brute_force_front, line_of, tiny_spec


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
                    .replace("dataset: digits", "dataset: mnist").replace("metric: params", "metric: size"))
    proc = adsearch("validate", str(spec), cwd=tmp_path)
    assert proc.returncode == 2
    assert "unknown model 'vgg99'" in proc.stderr and "vgg19" in proc.stderr
    assert "data.dataset" in proc.stderr and "'digits'" in proc.stderr
    assert "search.objectives.1.metric" in proc.stderr and "'train_macs'" in proc.stderr


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
