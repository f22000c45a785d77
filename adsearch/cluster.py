"""Where a study runs: the process settings it needs and the Ray it runs on.

Nothing happens at import. `configure_process()` sets, for the process that drives a study, what
Ray Tune and Optuna read while it runs (two Tune environment variables, Optuna's verbosity and
its experimental-feature warnings, a filter on one Ray log); `run_study` calls it before Ray
starts. `start_ray(spec, address)` connects to a cluster or starts a local Ray.

Which process needs what (checked on ray 2.60): Tune reads its two variables when `Tuner.fit`
runs, in Tune's controller, which also runs the Optuna searcher and logs through the filtered
logger. The controller is the driver, this process, except with Ray Client (`ray://`), where it is
an actor on the cluster: the two variables go there in the job's runtime environment (Optuna's
log lines and Ray's checkpoint traceback stay at their defaults there: noise in the cluster's
logs, nothing more). Trial workers need none of it: they run `study._trainable`, which sets what a
trial needs (its torch threads) itself.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from typing import Any

import optuna
import ray

from adsearch.errors import AdsearchError
from adsearch.spec import StudySpec

TUNE_ENV = {
    # Keeping one checkpoint per trial forces an experiment snapshot at each epoch; that is the
    # point (a crash costs at most an epoch), so Ray's warning about it is only noise here.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # Results go to JSON and CSV per trial (added in `study._tuner`); TensorBoard cannot take our lists.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
}

_TUNE_CONTROLLER_LOG = "ray.tune.execution.tune_controller"


class _AlreadyDeletedCheckpoint(logging.Filter):
    """Drops Ray's traceback for deleting an old checkpoint that a crash already deleted.

    A restored experiment can remember a checkpoint that was removed after its last snapshot;
    Ray's retention then fails to delete it again, harmlessly (the trial goes on).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, FileNotFoundError) and "Error handling checkpoint" in record.getMessage())


_CHECKPOINT_FILTER = _AlreadyDeletedCheckpoint()


def configure_process() -> None:
    """Set what this process needs to drive a study; calling it again changes nothing.

    A Tune variable the user has set already is kept.
    """
    for name, value in TUNE_ENV.items():
        os.environ.setdefault(name, value)
    # each is replaced, not added again, when repeated
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger(_TUNE_CONTROLLER_LOG).addFilter(_CHECKPOINT_FILTER)  # a filter already there is not added twice


def start_ray(spec: StudySpec, address: str | None) -> bool:
    """Connect to `address` or start a local Ray sized to `resources`; True if we started it."""
    if ray.is_initialized():
        return False
    address = address or spec.resources.address
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level="WARNING",
                                  configure_logging=True)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if address and address.startswith("ray://"):
        # Ray Client runs Tune's controller on the cluster, not here: it reads these there
        kwargs["runtime_env"] = {"env_vars": {name: os.environ.get(name, value) for name, value in TUNE_ENV.items()}}
    if address and address != "auto":
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:  # "local": always a new Ray of our own, never some cluster that happens to run here
            ray.init(address="local", num_cpus=spec.resources.num_cpus or os.cpu_count(), **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray"
        raise AdsearchError(f"cannot start or reach {where}: {exc}. For a cluster, start it with "
                            "`ray start --head` and pass its address (auto, host:port or ray://host:10001)") from None
    return True


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail at once, naming `address`, when nothing listens there: `ray.init` itself retries an
    unreachable cluster for minutes before it gives up."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise AdsearchError(f"--address must be auto, host:port or ray://host:port, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise AdsearchError(f"cannot reach the Ray cluster at {address!r} ({exc.strerror or exc}); start it with "
                            "`ray start --head` and pass the address it prints (host:port, or ray://host:10001 "
                            "for Ray Client), or leave --address out to run on this machine") from None
