"""Test-session set-up shared by every test: one Ray for the whole session, quiet threads."""

import os

import pytest

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
