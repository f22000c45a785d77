"""Exporting a trial of the session's tiny study (`tiny_study` in conftest.py: baseline + trial 0,
left whole, and trial 1, compressed) and loading it back; every way an export can fail says what
was wrong and what to do, exits 1 through the CLI without a traceback, and writes nothing.

Tests that change the study work on `tiny_study_copy`; the others write under the shared study's
models/ or under tmp_path.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
from helpers import adsearch, load_study

from adsearch import load_model
from adsearch.errors import AdsearchError
from adsearch.export import export_trial, held_out_accuracy, verify_export
from adsearch.results.pareto import recommended
from adsearch.results.reading import read_study

OOM = "RuntimeError: CUDA out of memory <tried 2 GiB>"


def files(directory: Path) -> dict[Path, tuple[int, int]]:
    """Every file under `directory` with its size and modification time: equal before and after
    means nothing was written, changed or lost."""
    return {p.relative_to(directory): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def export_fails(study: Path, *args) -> str:
    """`adsearch export STUDY ARGS...` run as a user runs it, expected to fail as a user error
    having written nothing; returns its stderr."""
    before = files(study)
    proc = adsearch("export", study, *args, cwd=study.parent)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert files(study) == before and not (study / "models").exists()
    return proc.stderr


# --- exporting and loading back ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["state_dict", "torchscript"])
def test_exported_network_reproduces_the_reported_accuracy(tiny_study, fmt):
    trials = pd.read_csv(tiny_study / "trials.csv")
    for number in (0, 1) if fmt == "state_dict" else (1,):
        result = export_trial(tiny_study, number=number, fmt=fmt)
        row = trials[trials["number"] == number].iloc[0]
        assert result.path.parent == tiny_study / "models" and result.info["widths"] == json.loads(row["widths"])
        model = load_model(result.path)
        assert held_out_accuracy(model, tiny_study, number) == pytest.approx(row["accuracy"], abs=1e-12)
        assert json.loads(result.info_path.read_text())["metrics"]["accuracy"] == pytest.approx(row["accuracy"])
    assert not [p.name for p in (tiny_study / "models").iterdir() if p.name.startswith(".")], "a temporary file is left"


def test_export_of_the_recommended_trial_and_the_baseline_through_the_cli(tiny_study):
    record = read_study(tiny_study)
    best = recommended(record.rows, record.spec.report.max_accuracy_drop,
                       size_tolerance=record.spec.report.size_tolerance)
    assert best is not None, "the fixture's study (seed 0, CPU) has a trial within 1 point of the baseline"
    proc = adsearch("export", tiny_study, "--pick", "recommended", "--verify", cwd=tiny_study.parent)
    assert proc.returncode == 0, proc.stderr
    number = record.rows[best].number
    assert f"exported trial {number} of tiny (state_dict): {tiny_study / 'models' / f'trial-{number}.pt'}" in proc.stdout
    assert "(as reported)" in proc.stdout
    base = export_trial(tiny_study, number=-1)
    assert base.path.name == "baseline.pt" and base.info["widths"] == [16, 32]
    assert held_out_accuracy(load_model(base.path), tiny_study, -1) == pytest.approx(record.baseline.metrics["accuracy"])


def test_out_writes_there_and_not_in_models(tiny_study_copy, tmp_path):
    out = tmp_path / "exports" / "vgg"
    proc = adsearch("export", tiny_study_copy, "--trial", "baseline", "--out", out, cwd=tiny_study_copy.parent)
    assert proc.returncode == 0, proc.stderr
    assert f"exported baseline of tiny (state_dict): {out / 'baseline.pt'}\n" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["baseline.pt", "baseline.pt.json"]
    assert not (tiny_study_copy / "models").exists()
    info = json.loads((out / "baseline.pt.json").read_text())
    assert (info["trial"], info["file"], info["widths"]) == (-1, "baseline.pt", [16, 32])
    assert load_model(out / "baseline.pt")(torch.zeros(3, 1, 8, 8)).shape == (3, 10)

    not_a_folder = tmp_path / "exports" / "notes.txt"
    not_a_folder.write_text("mine\n")
    err = export_fails(tiny_study_copy, "--trial", "0", "--out", not_a_folder)
    assert err == f"error: cannot write the export into {not_a_folder}: it is a file, not a folder\n"
    assert not_a_folder.read_text() == "mine\n"


# --- what to export: arguments, recommendation, trial state ---------------------------------------


@pytest.mark.parametrize("request_, message", [
    ({"pick": "best"}, "unknown pick 'best'; choose one of recommended (or --trial N)"),
    ({"number": 1, "pick": "recommended"}, "give --trial or --pick, not both (got --trial 1 and --pick recommended)"),
    ({}, "say which trial to export: --trial N, --trial baseline or --pick recommended"),
    ({"number": 1, "fmt": "tflite"}, "unknown export format 'tflite'; choose one of state_dict, torchscript, onnx"),
], ids=["unknown-pick", "trial-and-pick", "neither", "unknown-format"])
def test_the_trial_and_format_are_checked_before_anything_is_written(tiny_study_copy, request_, message):
    before = files(tiny_study_copy)
    with pytest.raises(AdsearchError) as raised:
        export_trial(tiny_study_copy, **request_)
    assert str(raised.value) == message
    assert files(tiny_study_copy) == before and not (tiny_study_copy / "models").exists()


def test_a_bad_request_through_the_cli_is_one_line_and_exit_1(tiny_study_copy):
    assert export_fails(tiny_study_copy, "--trial", "1", "--pick", "recommended") == (
        "error: give --trial or --pick, not both (got --trial 1 and --pick recommended)\n")


def test_no_recommended_trial_lists_the_completed_ones(tiny_study_copy):
    record = read_study(tiny_study_copy)
    baseline_file = tiny_study_copy / "baseline.json"
    baseline = json.loads(baseline_file.read_text())
    # a baseline more accurate than every trial by more than report.max_accuracy_drop (0.01)
    baseline["accuracy"] = max(r.metrics["accuracy"] for r in record.search_rows) + 0.02
    baseline_file.write_text(json.dumps(baseline))
    assert export_fails(tiny_study_copy, "--pick", "recommended") == (
        "error: study 'tiny' has no recommended trade-off (no completed search trial within 1.0 points of the "
        "baseline's accuracy); pick one with --trial N: completed trials 0, 1\n")


def test_an_unfinished_or_failed_trial_is_not_exported(tiny_study_copy):
    study = load_study(tiny_study_copy)
    running = study.ask()  # trial 2, RUNNING
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={"error": OOM}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))  # no reason recorded
    assert running.number == 2

    assert export_fails(tiny_study_copy, "--trial", "2") == (
        "error: trial 2 of study 'tiny' is RUNNING (study done); only a finished trial can be exported\n")
    assert export_fails(tiny_study_copy, "--trial", "3") == (
        f"error: trial 3 of study 'tiny' failed, so it has no network to export: {OOM}\n")
    before = files(tiny_study_copy)
    with pytest.raises(AdsearchError, match=re.escape(
            "trial 4 of study 'tiny' failed, so it has no network to export: (no message recorded)") + "$"):
        export_trial(tiny_study_copy, number=4)
    assert files(tiny_study_copy) == before


# --- checkpoints ----------------------------------------------------------------------------------


def test_a_missing_or_unreadable_checkpoint_is_named(tiny_study_copy):
    shutil.rmtree(tiny_study_copy / "ray")  # export never looks inside Ray's folders
    missing = tiny_study_copy / "trials" / "1.pt"
    missing.unlink()
    assert export_fails(tiny_study_copy, "--trial", "1") == (
        f"error: trial 1 has no final checkpoint ({missing} is missing); studies run before adsearch kept them "
        "there cannot export it: run the study again\n")

    last = tiny_study_copy / "trials" / "0.pt"
    last.write_bytes(last.read_bytes()[:1000])  # cut short, as by a full disk
    err = export_fails(tiny_study_copy, "--trial", "0")
    # then torch's reason, on the same line, without its advice to load with weights_only=False
    assert err.startswith(f"error: cannot read checkpoint {last}: ") and err.count("\n") == 1
    assert "weights_only" not in err


# --- writing: all or nothing ----------------------------------------------------------------------


def test_a_failed_write_leaves_no_partial_file_and_the_earlier_export_intact(tiny_study, tmp_path, monkeypatch):
    def save_half(error: Exception):
        def save(module, f, **kwargs):
            Path(f).write_bytes(b"half a TorchScript archive")
            if isinstance(error, OSError):
                error.filename = str(f)  # as open() sets it: the temporary file's name
            raise error
        return save

    out = tmp_path / "out"
    earlier = export_trial(tiny_study, number=1, fmt="torchscript", out_dir=out)
    before = files(out)
    monkeypatch.setattr(torch.jit, "save", save_half(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    with pytest.raises(AdsearchError, match=re.escape(
            f"cannot write {earlier.path}: No space left on device; nothing was written") + "$"):
        export_trial(tiny_study, number=1, fmt="torchscript", out_dir=out)
    assert files(out) == before  # no temporary file, the earlier export and its .json unchanged

    fresh = tmp_path / "fresh" / "models"
    monkeypatch.setattr(torch.jit, "save", save_half(RuntimeError("exporter bug")))
    with pytest.raises(RuntimeError, match="exporter bug"):
        export_trial(tiny_study, number=1, fmt="torchscript", out_dir=fresh)
    assert not (tmp_path / "fresh").exists(), "the folders the export made are removed again"


# --- loading back ---------------------------------------------------------------------------------


def test_load_model_names_the_models_there_and_refuses_other_files(tiny_study, tmp_path):
    export_trial(tiny_study, number=1, out_dir=tmp_path)
    with pytest.raises(AdsearchError, match=re.escape(
            f"no exported model at {tmp_path / 'trial-2.pt'}; models there: trial-1.pt") + "$"):
        load_model(tmp_path / "trial-2.pt")
    with pytest.raises(AdsearchError, match=re.escape(
            f"no exported model at {tmp_path / 'none' / 'a.pt'}; no models in {tmp_path / 'none'}") + "$"):
        load_model(tmp_path / "none" / "a.pt")

    (tmp_path / "notes.pt").write_text("not a network\n")
    with pytest.raises(AdsearchError, match=re.escape(f"{tmp_path / 'notes.pt'} is not a model written by adsearch export: ")) as exc:
        load_model(tmp_path / "notes.pt")
    assert "\n" not in str(exc.value) and "weights_only" not in str(exc.value)
    with pytest.raises(AdsearchError, match=re.escape(
            f"{tmp_path / 'trial-1.pt.json'} is not a model written by adsearch export "
            f"(it describes one: load {tmp_path / 'trial-1.pt'}): ")):
        load_model(tmp_path / "trial-1.pt.json")


# --- ONNX -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_export(tiny_study, tmp_path_factory):
    """Trial 1 exported as ONNX once for the module (a few seconds: torch.export)."""
    pytest.importorskip("onnx", reason="the onnx extra is not installed")
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    return export_trial(tiny_study, number=1, fmt="onnx", out_dir=tmp_path_factory.mktemp("onnx"))


def test_onnx_without_its_packages_says_what_to_install(tiny_study, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    with pytest.raises(AdsearchError, match=r"ONNX export needs the onnx and onnxscript packages .*adsearch\[onnx\]"):
        export_trial(tiny_study, number=0, fmt="onnx", out_dir=tmp_path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    (tmp_path / "net.onnx").write_bytes(b"")
    with pytest.raises(AdsearchError, match="needs onnxruntime: pip install onnxruntime"):
        load_model(tmp_path / "net.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx"]


def test_onnx_export_is_a_valid_graph_that_reproduces_accuracy(tiny_study, onnx_export):
    import onnx

    proto = onnx.load(str(onnx_export.path))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["widths"]) == onnx_export.info["widths"]
    assert sorted(p.name for p in onnx_export.path.parent.iterdir()) == ["trial-1.onnx", "trial-1.onnx.json"]
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return
    row = read_study(tiny_study).row(1)
    assert held_out_accuracy(load_model(onnx_export.path), tiny_study, 1) == pytest.approx(row.metrics["accuracy"],
                                                                                          abs=1 / 360)


def test_verify_checks_onnx_with_the_checker_when_onnxruntime_is_missing(tiny_study, onnx_export, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    assert verify_export(onnx_export, tiny_study) == (
        "onnx.checker: the graph is valid (install onnxruntime to measure its accuracy)")

    broken = tmp_path / "trial-1.onnx"
    broken.write_bytes(onnx_export.path.read_bytes()[:200])
    with pytest.raises(AdsearchError, match=re.escape(f"{broken} is not a valid ONNX graph (onnx.checker): ")):
        verify_export(type(onnx_export)(path=broken, info_path=onnx_export.info_path, info=onnx_export.info), tiny_study)
