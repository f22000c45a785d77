"""Test-session set-up shared by every test: one Ray for the whole session, one torch thread where
results must repeat exactly, and the tiny study (run once) that the read-back tests share.
Plain helpers (the tiny spec, the CLI as a subprocess, the brute-force front) are in tests/helpers.py.
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "tests"))  # `import helpers` from any test module

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# Ray 2.60 turns token authentication on for a new local Ray (writing ~/.ray/auth_token) and for
# `ray start --head` once such a token exists, while `ray status` may still connect without one:
# which of a test's Ray processes use a token would depend on what ran before. One mode for all.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# decoded images go to a cache of the test session's own, never the user's ~/.cache/adsearch
os.environ["ADSEARCH_CACHE"] = tempfile.mkdtemp(prefix="adsearch-test-cache-")
atexit.register(shutil.rmtree, os.environ["ADSEARCH_CACHE"], ignore_errors=True)
# the prefix cache is shared by every study of a machine: each test gets its own (`own_prefix_cache`),
# the session's fixtures (the tiny study) this one, so that what a test trains does not hang on the order
os.environ["ADSEARCH_PREFIX_CACHE"] = os.path.join(os.environ["ADSEARCH_CACHE"], "session-prefixes")


@pytest.fixture(autouse=True)
def own_prefix_cache(tmp_path_factory, monkeypatch):
    """The test's own prefix cache ($ADSEARCH_PREFIX_CACHE, which subprocesses inherit)."""
    monkeypatch.setenv("ADSEARCH_PREFIX_CACHE", str(tmp_path_factory.mktemp("prefix-cache")))


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray with 2 CPUs, started once per test session and shared by the tests that need it."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def written(tmp_path_factory):
    """The hand-made study (helpers.hand_made_rows) written out once by `write_report`: its spec,
    directory and files; for the tests of the CSVs, the Markdown and the HTML page."""
    from helpers import HAND_MADE_SPEC, hand_made_rows

    from adsearch.report.writer import write_report
    from adsearch.spec.loading import parse_spec

    spec = parse_spec(HAND_MADE_SPEC)
    study_dir = tmp_path_factory.mktemp("reports") / spec.name
    return spec, study_dir, write_report(study_dir, spec, hand_made_rows())


@pytest.fixture
def one_thread():
    """One torch thread for the test (helpers.one_torch_thread)."""
    from helpers import one_torch_thread

    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def tiny_study_run(tmp_path_factory, ray_session):
    """`adsearch run` of a tiny study, once for the session, as a user runs it (a real process, on
    the session's Ray): baseline + 2 grid trials of a two-conv VGG on digits, 3 epochs each
    (`pruning.target_density` 0.3 leaves the network whole, 0.95 compresses it at epoch 1).

    Returns the study directory and the finished process (its exit code and output)."""
    from helpers import adsearch, tiny_spec

    base = tmp_path_factory.mktemp("tiny-study")
    (base / "tiny.yaml").write_text(tiny_spec("tiny"))
    proc = adsearch("run", "tiny.yaml", "--reports", base / "reports", "--address",
                    ray_session.get_runtime_context().gcs_address, cwd=base)
    return base / "reports" / "tiny", proc


@pytest.fixture(scope="session")
def tiny_study(tiny_study_run) -> Path:
    """The finished tiny study's directory (see `tiny_study_run`). Tests that read it must not
    change it, but for exports under its models/; one that changes it takes `tiny_study_copy`."""
    directory, proc = tiny_study_run
    assert proc.returncode == 0, f"the tiny study failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return directory


@pytest.fixture
def tiny_study_copy(tiny_study, tmp_path) -> Path:
    """A private copy of the tiny study, `tmp_path/reports/tiny`, for a test that changes it
    (exports and models written by other tests are left out)."""
    directory = tmp_path / "reports" / "tiny"
    shutil.copytree(tiny_study, directory, ignore=shutil.ignore_patterns("models", ".lock"))
    return directory


@pytest.fixture
def small_filesystem(tmp_path):
    """`mount(megabytes)`: a tmpfs of that size at tmp_path/small (again: resized, its files kept);
    CI runs as root, and where mounting is refused the test is skipped, saying why."""
    folder = tmp_path / "small"
    folder.mkdir()

    def mount(megabytes: float) -> Path:
        again = ["-o", f"remount,size={int(megabytes * 1024)}k"] if folder.is_mount() else ["-o", f"size={int(megabytes * 1024)}k"]
        done = subprocess.run(["mount", "-t", "tmpfs", *again, "tmpfs", str(folder)], capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
        return folder

    yield mount
    if folder.is_mount():
        subprocess.run(["umount", "-l", str(folder)], check=False)
