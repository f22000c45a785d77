"""What a study writes, estimated before it starts (adsearch.study.disk): against the tiny study's
real files, the warning against a real small filesystem (a tmpfs), and a study that fills one."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import time

import pytest
from helpers import adsearch, adsearch_process, load_study, tiny_spec

from adsearch.data.registry import load_data
from adsearch.results.study_dir import StudyDir
from adsearch.errors import DiskError
from adsearch.study.disk import (KEPT_CHECKPOINTS, DiskEstimate, check_space, checkpoint_bytes, folder_bytes, size,
                                   write_errors)
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


def test_a_study_that_will_or_may_not_fit_is_a_warning_naming_the_free_space(small_filesystem):
    small_filesystem = small_filesystem(16)
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


def test_a_disk_that_fills_during_a_run_is_one_error_with_its_own_exit_code_and_the_study_resumes(
        small_filesystem, tmp_path, ray_session):
    """After the baseline's first epoch, all of a 20 MB filesystem but 512 kB is taken (as another
    job would): the baseline cannot write its next 1.4 MB checkpoint (a network 6x wider than the
    tiny study's). One error, exit 74, no Ray traceback; and once there is room the study goes on,
    the baseline from its last checkpoint, to its end."""
    folder = small_filesystem(20)
    (tmp_path / "wide.yaml").write_text(tiny_spec("wide", width=96, concurrent=1))
    address = ray_session.get_runtime_context().gcs_address
    study, filler = folder / "r" / "wide", folder / "filler"
    with adsearch_process("run", "wide.yaml", "--reports", folder / "r", "--address", address, cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        deadline = time.time() + 120
        while not any(p.stat().st_size for p in (study / "ray" / "baseline").glob("*/result.json")):
            assert proc.poll() is None and time.time() < deadline, "the run ended before its baseline reported"
            time.sleep(0.02)
        with open(filler, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, shutil.disk_usage(folder).free - 512 * 1024)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 74, out[-2000:] + err[-3000:]
    assert "Traceback" not in err and "***" not in err and "ERROR" not in err, err[-3000:]
    (error,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert error.startswith(f"error: cannot write in {study}: a trial failed to write its files (") and \
        "No space left on device" in error and error.endswith(f"then go on with: adsearch resume {study}")
    assert not (study / "baseline.json").exists()

    filler.unlink()
    resumed = adsearch("resume", study, "--address", address, cwd=tmp_path)
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr[-3000:]
    assert "done" in (study / "report.md").read_text().splitlines()[0]
    assert [t.state.name for t in load_study(study).trials] == ["COMPLETE", "COMPLETE"]
    baseline = json.loads((study / "baseline.json").read_text())
    assert [h["epoch"] for h in baseline["history"]] == [1, 2, 3]  # nothing lost, nothing twice


def test_a_write_that_fails_on_the_drivers_side_is_the_same_error(tmp_path):
    estimate = DiskEstimate(checkpoint=1_000, runs=1, branches=0)
    with pytest.raises(DiskError, match=rf"^cannot write {tmp_path / 'x.json'}: No space left on device \(.* free "
                                        rf"on the filesystem of {tmp_path}; the study holds 0 B and writes at least "):
        with write_errors(tmp_path / "study", estimate, "adsearch resume here"):
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.json"))
    with pytest.raises(ConnectionError), write_errors(tmp_path, estimate, "again"):  # not a write: as it was
        raise ConnectionError(errno.ECONNREFUSED, "refused")
