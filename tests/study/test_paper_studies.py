"""The paper's studies (studies/*.yaml): each is a full GPU recipe that validates as written, and a
missing dataset stops `adsearch run` before anything is written. Each runs end to end through the
CLI with the README's smoke-run `--set`s in tests/test_docs.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import adsearch

from adsearch.data.files import TINYIMAGENET_URL
from adsearch.spec.loading import parse_overrides
from adsearch.spec.loading import load_spec, spec_warnings

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


def test_a_missing_dataset_exits_2_with_how_to_get_it_and_writes_nothing(tmp_path):
    proc = adsearch("run", STUDIES_DIR / "resnet18_tinyimagenet.yaml", "--reports", tmp_path / "reports",
                    "--set", f"data.root={tmp_path / 'nowhere'}", cwd=tmp_path, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    looked_at = tmp_path / "nowhere" / "tiny-imagenet-200"
    assert f"dataset tinyimagenet is missing or incomplete at {looked_at}:" in proc.stderr
    assert "wnids.txt" in proc.stderr and TINYIMAGENET_URL in proc.stderr
    assert not (tmp_path / "reports").exists()
