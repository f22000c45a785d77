"""The paper's studies (studies/*.yaml): each is a full GPU recipe that validates as written, and
each runs end to end through the CLI, as a user runs it, on a small generated copy of its dataset
with CI-sized `--set` overrides; a missing dataset stops `adsearch run` before anything is written."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fake_datasets import write_cifar10, write_cifar100, write_tinyimagenet
from helpers import adsearch, adsearch_process

from adsearch.data.registry import TINYIMAGENET_URL
from adsearch.cli import parse_overrides
from adsearch.spec.study_spec import load_spec, spec_warnings

STUDIES_DIR = Path(__file__).resolve().parents[2] / "studies"
STUDIES = {  # file: (study name, arch, dataset)
    "vgg19_cifar10": ("vgg19-cifar10", "vgg19", "cifar10"),
    "resnet18_cifar100": ("resnet18-cifar100", "resnet18", "cifar100"),
    "resnet18_tinyimagenet": ("resnet18-tinyimagenet", "resnet18", "tinyimagenet"),
}


SHIPPED = sorted(STUDIES_DIR.glob("*.yaml"))


def test_the_glob_finds_every_shipped_study():
    assert {p.stem for p in SHIPPED} >= {*STUDIES, "quickstart"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_study_validates_without_warnings(path):
    """Every studies/*.yaml, a new one included: what `adsearch validate` checks, and no warning."""
    spec = load_spec(path)
    assert spec_warnings(spec) == []


@pytest.mark.parametrize("study", STUDIES)
def test_the_study_validates_as_a_full_gpu_recipe(study):
    path = STUDIES_DIR / f"{study}.yaml"
    spec = load_spec(path)  # what `adsearch validate` runs
    name, arch, dataset = STUDIES[study]
    assert (spec.name, spec.model.arch, spec.data.dataset) == (name, arch, dataset)
    assert spec.train.optimizer.name == "sgd" and spec.pruning.method == "activation_density"
    assert len(spec.pruning.compress_at) >= 2 and spec.search.trials >= 16
    assert {"pruning.compress_at", "pruning.target_density", "train.optimizer.lr"} <= set(spec.search.space)
    assert spec.train.amp == "bf16" and spec.train.channels_last and spec.resources.per_trial.gpu > 0
    assert spec.train.compile == "auto"  # compiled on a GPU, eager in the CPU smoke runs below
    header = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    assert "2002.02949" in header and ("H200-hours" in header or "GPU-hours" in header)
    assert ("Measured on one" in header and "benchmarks/bench_gpu.py" in header) or "an estimate" in header  # which


@pytest.mark.parametrize("study", STUDIES)
def test_the_one_epoch_smoke_overrides_validate_with_a_warning(study):
    """`--set train.epochs=1 --set data.limit=64 --set search.trials=2`, as issue 4 writes them."""
    sets = parse_overrides(["train.epochs=1", "data.limit=64", "search.trials=2"])
    spec = load_spec(STUDIES_DIR / f"{study}.yaml", sets)
    assert (spec.train.epochs, spec.data.limit, spec.search.trials) == (1, 64, 2)
    (warning,) = spec_warnings(spec)
    assert warning.startswith("pruning.compress_at: epochs") and warning.endswith("no compression happens")


def smoke_overrides(study: str, root: Path, workers: int) -> list[str]:
    """CI-sized `--set`s: 2 epochs (compress after the first), 2 trials, 24 samples a split, 1/8 of
    the widths, on the CPU; the study's own search space, with compression after epoch 1."""
    space = yaml.safe_load((STUDIES_DIR / f"{study}.yaml").read_text())["search"]["space"]
    space["pruning.compress_at"] = {"values": [[1]]}
    sets = {
        "train.epochs": 2, "pruning.compress_at": [1], "search.trials": 2, "search.space": space,
        "data.root": str(root), "data.limit": 24, "data.workers": workers, "model.width_mult": 0.125,
        "train.batch_size": 8, "train.eval_batch_size": 64, "train.device": "cpu",
        "resources.per_trial.gpu": 0, "resources.per_trial.cpu": 0.5,
    }
    return [arg for path, value in sets.items() for arg in ("--set", f"{path}={json.dumps(value)}")]


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory, ray_session):
    """`adsearch run` of the three studies at once, each its own process on the shared Ray: a run
    mostly waits on Ray, so three together take little longer than one."""
    base = tmp_path_factory.mktemp("paper")
    data = base / "data"
    write_cifar10(data, per_batch=10, n_test=30)
    write_cifar100(data, n_train=30, n_test=30)
    write_tinyimagenet(data)
    address = ray_session.get_runtime_context().gcs_address
    results = {}
    with contextlib.ExitStack() as stack:  # every run's process group is killed on the way out
        running = {}
        for study in STUDIES:
            workers = 1 if study == "resnet18_tinyimagenet" else 0  # one worker process: the JPEG path
            out, err = (stack.enter_context((base / f"{study}.{kind}").open("w")) for kind in ("out", "err"))
            running[study] = stack.enter_context(adsearch_process(
                "run", STUDIES_DIR / f"{study}.yaml", "--reports", base / "reports", "--address", address,
                *smoke_overrides(study, data, workers), cwd=base, stdout=out, stderr=err))
        for study, proc in running.items():
            results[study] = proc.wait(timeout=600)
    for study, code in results.items():
        results[study] = (code, (base / f"{study}.out").read_text(), (base / f"{study}.err").read_text())
    return base / "reports", results


@pytest.mark.parametrize("study", STUDIES)
def test_the_study_runs_end_to_end_through_the_cli(smoke_runs, study):
    reports, results = smoke_runs
    code, out, err = results[study]
    assert code == 0, err[-3000:]
    assert "[2/2]" in out and "report:" in out
    name, arch, dataset = STUDIES[study]
    if dataset == "tinyimagenet":  # decoded once, before the study starts, where the user sees it
        cache = os.environ["ADSEARCH_CACHE"]
        assert f"images (train) once into the image cache {cache}" in err and "images decoded" in err
    trials = pd.read_csv(reports / name / "trials.csv")
    assert sorted(trials["number"]) == [-1, 0, 1] and (trials["state"] == "COMPLETE").all()
    base = trials[trials["role"] == "baseline"].iloc[0]
    assert base["rounds"] == 0 and base["params_ratio"] == 1.0
    assert max(json.loads(base["widths"])) == 64  # 512 channels x 1/8
    search = trials[trials["role"] == "search"]
    assert (search["param:pruning.compress_at"] == "[1]").all() and (search["rounds"] == 1).all()
    assert search["param:train.optimizer.lr"].between(0.02, 0.2).all()
    assert (search["params"] <= base["params"]).all()
    assert (reports / name / "report.md").is_file()


def test_a_missing_dataset_exits_2_with_how_to_get_it_and_writes_nothing(tmp_path):
    proc = adsearch("run", STUDIES_DIR / "resnet18_tinyimagenet.yaml", "--reports", tmp_path / "reports",
                    "--set", f"data.root={tmp_path / 'nowhere'}", cwd=tmp_path, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    looked_at = tmp_path / "nowhere" / "tiny-imagenet-200"
    assert f"dataset tinyimagenet is missing or incomplete at {looked_at}:" in proc.stderr
    assert "wnids.txt" in proc.stderr and TINYIMAGENET_URL in proc.stderr
    assert not (tmp_path / "reports").exists()
