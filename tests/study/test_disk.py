"""What a study writes, estimated before it starts (adsearch.study.disk): against the tiny study's
real files, and the warning against a real small filesystem (a tmpfs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from adsearch.data.registry import load_data
from adsearch.results.study_dir import StudyDir
from adsearch.study.disk import KEPT_CHECKPOINTS, DiskEstimate, check_space, checkpoint_bytes, folder_bytes, size
from adsearch.study.trials import CHECKPOINT_FILE
from adsearch.train.trainer import build_model


def test_the_estimate_bounds_what_the_tiny_study_wrote(tiny_study):
    spec = StudyDir(tiny_study).read_spec()
    estimate = DiskEstimate.of(spec, checkpoint_bytes(spec, build_model(spec, load_data(spec.data, spec.seed))))
    assert (estimate.runs, estimate.branches) == (3, 2)  # the baseline and 2 trials; epochs 1 and 3
    baseline = sorted((tiny_study / "ray" / "baseline").glob(f"*/checkpoint_*/{CHECKPOINT_FILE}"))
    assert len(baseline) == KEPT_CHECKPOINTS
    assert all(0.8 * estimate.checkpoint <= f.stat().st_size <= estimate.checkpoint for f in baseline)
    trials = list((tiny_study / "ray" / "search").glob(f"*/checkpoint_*/{CHECKPOINT_FILE}"))
    assert trials and all(f.stat().st_size <= estimate.checkpoint for f in trials)  # no larger than the baseline's
    assert estimate.at_least <= folder_bytes(tiny_study) <= estimate.up_to  # its prefix cache deleted at the end


@pytest.fixture
def small_filesystem(tmp_path):
    """A 16 MB tmpfs at tmp_path/small (CI runs as root); skipped where mounting is refused."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True,
                             text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_study_that_will_or_may_not_fit_is_a_warning_naming_the_free_space(small_filesystem):
    said: list[str] = []
    folder = small_filesystem / "reports" / "big"  # not made yet: the filesystem of the nearest folder
    check_space(folder, DiskEstimate(checkpoint=6_000_000, runs=1, branches=0), said.append)
    assert len(said) == 1 and said[0].startswith(f"the study will not fit on the filesystem of {small_filesystem}: ")
    assert "16.8 MB free there, and the study writes at least 17.1 MB and up to 17.1 MB (2 Ray checkpoints of up " \
           "to 6 MB each" in said[0] and said[0].endswith("choose another --reports folder")
    said.clear()
    (small_filesystem / "reports").mkdir()
    (small_filesystem / "reports" / "big").mkdir()
    (small_filesystem / "reports" / "big" / "old.bin").write_bytes(b"0" * 3_000_000)  # a study begun: 3 MB held
    check_space(folder, DiskEstimate(checkpoint=1_000_000, runs=20, branches=3), said.append)
    assert said[0].startswith("the study may not fit") and "it holds 3 MB already" in said[0]
    said.clear()
    check_space(folder, DiskEstimate(checkpoint=1_000, runs=1, branches=0), said.append)  # within what it holds
    assert said == []


def test_sizes_read_as_a_person_reads_them():
    assert [size(n) for n in (812, 41_824, 22_100_000, 147e6, 1.3e9)] == [
        "812 B", "41.8 kB", "22.1 MB", "147 MB", "1.3 GB"]
