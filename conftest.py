"""Test-session set-up shared by every test: one Ray for the whole session, one torch thread where
results must repeat exactly, and the tiny study (run once) that the read-back tests share.
Plain helpers (the tiny spec, the CLI as a subprocess, the brute-force front) are in tests/helpers.py.
"""

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "tests"))  # `import helpers` from any test module

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# Ray 2.60 turns token authentication on for a new local Ray (writing ~/.ray/auth_token) and for
# `ray start --head` once such a token exists, while `ray status` may still connect without one:
# which of a test's Ray processes use a token would depend on what ran before. One mode for all.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray with 2 CPUs, started once per test session and shared by the tests that need it."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture
def one_thread():
    """One torch thread for the test (helpers.one_torch_thread)."""
    from helpers import one_torch_thread

    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory, ray_session) -> Path:
    """A finished study run once for the session: baseline + 2 grid trials of a tiny VGG on digits
    (`pruning.target_density` 0.3 leaves the network whole, 0.95 compresses it at epoch 1).

    Tests that read it must not change it; one that needs to change it copies it first
    (`tiny_study_copy`)."""
    from helpers import tiny_spec

    from adsearch.spec import parse_spec
    from adsearch.study import run_study

    reports = tmp_path_factory.mktemp("tiny-study")
    spec = parse_spec(tiny_spec("tiny", concurrent=1))
    return run_study(spec, reports_dir=reports, say=lambda _: None).directory


@pytest.fixture
def tiny_study_copy(tiny_study, tmp_path) -> Path:
    """A private copy of the tiny study, `tmp_path/reports/tiny`, for a test that changes it
    (exports and models written by other tests are left out)."""
    directory = tmp_path / "reports" / "tiny"
    shutil.copytree(tiny_study, directory, ignore=shutil.ignore_patterns("models", ".lock"))
    return directory
