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
logs, nothing more). Trial workers need none of it: they run `trials._trainable`, which sets what a
trial needs (its torch threads) itself.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import socket
import subprocess
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import optuna
import ray
import torch

from adsearch.errors import AdsearchError, Problems, ResourceError
from adsearch.metrics import seconds
from adsearch.spec.study_spec import StudySpec
from adsearch.study import stopping
from adsearch.study.disk import is_write_failure

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


class _WriteFailures(logging.Filter):
    """Drops Ray's tracebacks for a file that could not be written (a trial's checkpoint, the
    experiment's state): a full disk ends the study with one error that says so (`disk.DiskError`);
    for a run state file that the full disk left torn (Ray starts that run afresh, from the trials'
    checkpoints); and its list of the trials that did not complete, which the study's lines name."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        torn = text.startswith("Failed to restore the run state") and isinstance(
            record.exc_info and record.exc_info[1], ValueError)  # its state file torn: Ray starts the run afresh
        return not (is_write_failure(text) or torn or text.startswith("Trials did not complete"))  # ours say which


_WRITE_FILTER = _WriteFailures()
_WRITE_LOGS = (_TUNE_CONTROLLER_LOG, "ray.tune.execution.experiment_state", "ray.tune.tune")


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
    for name in _WRITE_LOGS:
        logging.getLogger(name).addFilter(_WRITE_FILTER)


LOG_LEVELS = ("error", "warning", "info", "debug")
"""Ray's own log lines reach the user at this level and above (`--log-level`); error by default, so
its start-up notices (token authentication, ...) do not, and its errors still do."""


def prepare_ray(spec: StudySpec, address: str | None, *, warn: Callable[[str], None],
                log_level: str = "error", problems: Problems | None = None) -> bool:
    """`start_ray` with the checks of what the spec's trials ask (`check_resources`): for a local Ray
    before it starts, for a cluster (or a Ray already running here) once connected, against its
    nodes. Nothing starts while `problems` holds any (the earlier pre-flight checks'): they are
    raised with these. True if we started Ray.

    Raises:
        ResourceError: the trials can never run there (nothing was started then).
        PreflightError: that and the earlier problems (nothing started then either).
    """
    problems = problems or Problems()
    address = address or spec.resources.address
    local = not address and not ray.is_initialized()
    if local:
        check_resources(spec, local_capacity(spec, ask_bf16=spec.train.amp == "bf16"), warn, problems)
        problems.raise_found()
        return start_ray(spec, address, log_level=log_level)
    started = problems.check(start_ray, spec, address, log_level=log_level)  # a cluster it cannot reach: one more
    if started is not None:
        check_resources(spec, cluster_capacity(address), warn, problems)
    if problems.found and started:
        ray.shutdown()
    problems.raise_found()
    return bool(started)


def start_ray(spec: StudySpec, address: str | None, *, log_level: str = "error") -> bool:
    """Connect to `address` or start a local Ray sized to `local_capacity(spec)`; True if we started it."""
    if ray.is_initialized():
        return False
    address = address or spec.resources.address
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=log_level.upper(),
                                  configure_logging=True)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if address and address.startswith("ray://"):
        # Ray Client runs Tune's controller on the cluster, not here: it reads these there
        kwargs["runtime_env"] = {"env_vars": {name: os.environ.get(name, value) for name, value in TUNE_ENV.items()}}
    if address and address != "auto":
        _check_reachable(address)
    try:
        with stopping.held():  # a SIGTERM meanwhile stops the study once Ray has started
            if address:
                ray.init(address=address, **kwargs)
            else:  # "local": always a new Ray of our own, never some cluster that happens to run here
                machine = local_capacity(spec)
                ray.init(address="local", num_cpus=machine.cpus, num_gpus=machine.gpus, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray"
        raise AdsearchError(f"cannot start or reach {where}: {exc}. For a cluster, start it with "
                            "`ray start --head` and pass its address (auto, host:port or ray://host:10001)") from None
    except KeyboardInterrupt:  # Ctrl-C during the start, or a SIGTERM held through it
        if ray.is_initialized():
            ray.shutdown()
        raise
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


# --- what the trials can be given ------------------------------------------------------------


@dataclass(frozen=True)
class Capacity:
    """The CPUs and GPUs of the nodes trials can run on: this machine for a local Ray (which cannot
    grow), or a cluster's nodes as they are now (an autoscaler may add more)."""

    nodes: tuple[tuple[float, float], ...]
    """(CPUs, GPUs) of each node."""
    where: str
    """'this machine', "the cluster at '10.0.0.1:6379'"."""
    local: bool
    bf16: bool | None = None
    """Whether this machine's GPU computes in bfloat16 (None: not asked, or no GPU)."""
    gpu_name: str = ""

    @property
    def cpus(self) -> float:
        return sum(c for c, _ in self.nodes)

    @property
    def gpus(self) -> float:
        return sum(g for _, g in self.nodes)

    def shapes(self, most: int = 4) -> str:
        """The nodes by kind, most common first: '2 nodes of 4 CPUs, no GPU; 1 of 8 CPUs, 1 GPU'."""
        kinds = collections.Counter(self.nodes).most_common()
        text = "; ".join(f"{n} {'node' + 's' * (n > 1) if i == 0 else ''}{' ' * (i == 0)}of {_cpus(c)}, {_gpus(g)}"
                         for i, ((c, g), n) in enumerate(kinds[:most]))
        return (text + f"; {len(kinds) - most} other kinds" * (len(kinds) > most)) or "no node"

    def fits(self, cpu: float, gpu: float) -> int:
        """How many trials asking `cpu` CPUs and `gpu` GPUs each run at once on these nodes."""
        def on(node_cpus: float, node_gpus: float) -> int:
            n = math.floor(node_cpus / cpu + 1e-9)
            return min(n, math.floor(node_gpus / gpu + 1e-9)) if gpu else n
        return sum(on(c, g) for c, g in self.nodes)


def local_capacity(spec: StudySpec, *, ask_bf16: bool = False) -> Capacity:
    """This machine as a local Ray sees it: `resources.num_cpus` (default: every CPU) and the CUDA
    devices visible here. With `ask_bf16` (and a GPU), whether it has bfloat16: asked in a child
    process, so that this process, the study's driver, holds no CUDA context while trials run."""
    gpus = torch.cuda.device_count()
    bf16, name = _gpu_bf16() if ask_bf16 and gpus else (None, "")
    return Capacity(nodes=((float(spec.resources.num_cpus or os.cpu_count() or 1), float(gpus)),),
                    where="this machine", local=True, bf16=bf16, gpu_name=name)


def _gpu_bf16() -> tuple[bool | None, str]:
    """(whether cuda:0 computes in bfloat16 natively, its name), from a child process; (None, '') if it cannot say."""
    code = ("import torch; print(torch.cuda.is_bf16_supported(including_emulation=False)); "
            "print(torch.cuda.get_device_name(0))")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
        answer, name = out.stdout.strip().splitlines()[-2:]
    except (OSError, ValueError, subprocess.SubprocessError):
        return None, ""
    return answer == "True", name


def cluster_capacity(address: str | None) -> Capacity:
    """The alive nodes of the Ray this process is connected to, as they are now."""
    nodes = tuple((float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("GPU", 0)))
                  for n in ray.nodes() if n.get("Alive"))
    return Capacity(nodes=nodes, where=f"the cluster at {address!r}" if address else "the running Ray", local=False)


def check_resources(spec: StudySpec, capacity: Capacity, warn: Callable[[str], None], problems: Problems) -> None:
    """Say what `capacity` cannot give the spec's trials: a `ResourceError` in `problems` where that
    can never change (a local Ray cannot grow; no CUDA), a warning where a cluster's autoscaler may
    still add nodes."""
    errors, warnings_ = resource_problems(spec, capacity)
    for warning in warnings_:
        warn(warning)
    problems.found += [ResourceError(error) for error in errors]


def resource_problems(spec: StudySpec, capacity: Capacity) -> tuple[list[str], list[str]]:
    """(errors, warnings) of running the spec's trials on `capacity`; see `check_resources`."""
    per, where = spec.resources.per_trial, capacity.where
    has = f"{where} has {_cpus(capacity.cpus)} and {_gpus(capacity.gpus)}"
    if spec.resources.num_cpus and capacity.local:
        has += " (resources.num_cpus)"
    errors, warnings_ = [], []
    if capacity.local:
        cluster = "or run on a cluster with such nodes: --address HOST:PORT"
        if per.cpu > capacity.cpus:
            errors.append(f"resources.per_trial.cpu is {_n(per.cpu)}, but {has}, and the local Ray that adsearch "
                          f"starts cannot grow, so no trial could ever start: ask at most {_n(capacity.cpus)} "
                          f"(--set resources.per_trial.cpu={_n(min(capacity.cpus, 1))} as in the README's CPU smoke "
                          f"run), {cluster}")
        if per.gpu > capacity.gpus:
            fix = ("for a CPU run: --set resources.per_trial.gpu=0 --set train.device=cpu (the README's CPU smoke "
                   "run)" if not capacity.gpus else f"ask at most {_n(capacity.gpus)}")
            errors.append(f"resources.per_trial.gpu is {_n(per.gpu)}, but {has}, and the local Ray that adsearch "
                          f"starts cannot grow, so no trial could ever start: {fix}, {cluster}")
    elif not capacity.fits(per.cpu, per.gpu):
        warnings_.append(f"resources.per_trial asks {_cpus(per.cpu)} and {_gpus(per.gpu)} per trial, but no node of "
                         f"{where} has that now ({capacity.shapes()}): waiting up to "
                         f"{seconds(spec.resources.placement_timeout_s)} (resources.placement_timeout_s) for an "
                         "autoscaler to add one")
    errors += _device_problems(spec, capacity)
    base = spec.train.device.partition(":")[0]
    if base in ("auto", "cuda") and capacity.gpus and not per.gpu and not errors:
        where_to = "cuda:0" if base == "auto" else spec.train.device
        warnings_.append(f"train.device is {spec.train.device!r} and {where} has {_gpus(capacity.gpus)}, but "
                         f"resources.per_trial.gpu is 0: Ray hands out no GPU, so every trial runs on {where_to}, as "
                         "many at once as the CPUs allow; ask resources.per_trial.gpu (1, or 0.5 for two trials per "
                         "GPU) to have Ray share the GPUs out, or set train.device: cpu")
    fits, asked = capacity.fits(per.cpu, per.gpu), spec.resources.max_concurrent
    if asked and fits and asked > fits:
        warnings_.append(f"resources.max_concurrent is {asked}, but {has}, room for {fits} trial(s) at "
                         f"{_cpus(per.cpu)} and {_gpus(per.gpu)} each: {fits} will run at once")
    return errors, warnings_


def _device_problems(spec: StudySpec, capacity: Capacity) -> list[str]:
    """`train.device` and `train.amp` against what the trials' machines have."""
    per, train = spec.resources.per_trial, spec.train
    base, _, index = train.device.partition(":")
    problems = []
    if base == "cuda":
        if capacity.local and not capacity.gpus:
            problems.append(f"train.device is {train.device!r}, but this machine has no CUDA device: use auto or cpu "
                            "(with resources.per_trial.gpu: 0), or run on GPU nodes: --address HOST:PORT")
        elif not capacity.local and not capacity.gpus and not per.gpu:
            problems.append(f"train.device is {train.device!r}, but no node of {capacity.where} has a GPU, and with "
                            "resources.per_trial.gpu 0 Ray would not wait for one: ask resources.per_trial.gpu (1, or a "
                            "share such as 0.5), or use train.device auto or cpu")
        elif index and per.gpu and int(index) >= math.ceil(per.gpu):
            seen = math.ceil(per.gpu)
            problems.append(f"train.device is {train.device!r}, but each trial sees only the {seen} GPU(s) Ray gives "
                            f"it (resources.per_trial.gpu {_n(per.gpu)}), numbered from cuda:0: use cuda (or auto)")
        elif index and not per.gpu and capacity.local and int(index) >= capacity.gpus:
            problems.append(f"train.device is {train.device!r}, but this machine has {_gpus(capacity.gpus)} "
                            f"(cuda:0 to cuda:{int(capacity.gpus) - 1})")
    on_gpu = base == "cuda" or (base == "auto" and capacity.gpus > 0)
    if train.amp == "bf16" and on_gpu and capacity.bf16 is False:
        problems.append(f"train.amp is bf16, but this machine's GPU ({capacity.gpu_name or 'cuda:0'}) has no "
                        "bfloat16: use fp16 (or off)")
    return problems


def _n(x: float) -> str:
    return f"{x:g}"


def _cpus(x: float) -> str:
    return f"{x:g} CPU" + "s" * (x != 1)


def _gpus(x: float) -> str:
    return f"{x:g} GPU" + "s" * (x != 1) if x else "no GPU"
