"""A study: Ray Tune runs the trials, Optuna samples them; the only module that imports either.

`run_study(spec)` makes `reports/<name>/`, runs the baseline (the same recipe, pruning off),
then the search: Ray Tune's `OptunaSearch` over `search.space`, multi-objective over
`search.objectives`, with Optuna's storage in `study.db`. Every trial's metrics, ratios against
the baseline, widths and failure reason are kept as Optuna user attributes, so `study.db` plus
`baseline.json` are the whole record; `trials.csv`, `pareto.csv` and the report are made from them.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import math
import os
import socket
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
import ray
import yaml
import torch
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.search.optuna import OptunaSearch

from adsearch import pareto, report
from adsearch.errors import AdsearchError, StudyDirError, StudyInterrupted
from adsearch.records import (  # noqa: F401 - the study directory and reading it back live in records
    BASELINE_FILE, DB_FILE, LOCK_FILE, MARKER_FILE, RECORDED, SPEC_FILE, SPEC_HEADER, TRACE, atomic_write,
    check_removable, collect_rows, is_study, load_study_spec, lock_pid, pid_alive, remove_study, storage_url)
from adsearch.spec import METRICS, StudySpec, ValuesDim, apply_params, decode_choice, encode_choice
from adsearch.trainer import build_model, run_trial, steps_per_epoch

# Keeping one checkpoint per trial forces an experiment snapshot at each epoch; that is the
# point (a crash costs at most an epoch), so Ray's warning about it is only noise here.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# Results go to JSON and CSV per trial (added in `_tuner`); TensorBoard cannot take our lists.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)



class _AlreadyDeletedCheckpoint(logging.Filter):
    """Drops Ray's traceback for deleting an old checkpoint that a crash already deleted.

    A restored experiment can remember a checkpoint that was removed after its last snapshot;
    Ray's retention then fails to delete it again, harmlessly (the trial goes on).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, FileNotFoundError) and "Error handling checkpoint" in record.getMessage())


logging.getLogger("ray.tune.execution.tune_controller").addFilter(_AlreadyDeletedCheckpoint())

CHECKPOINT_FILE = "trial.pt"


@dataclass
class StudyResult:
    directory: Path
    rows: list[dict]
    files: dict[str, Path]


# --- metrics against the baseline ---------------------------------------------------------------


def with_ratios(metrics: dict, baseline: dict | None) -> dict:
    """`metrics` plus params/macs/train_macs ratios (trial / baseline) and the accuracy drop."""
    out = dict(metrics)
    if baseline:
        for key in ("params", "macs", "train_macs"):
            out[f"{key}_ratio"] = metrics[key] / baseline[key] if baseline.get(key) else math.nan
        out["accuracy_drop"] = baseline["accuracy"] - metrics["accuracy"]
    else:
        out.update(params_ratio=1.0, macs_ratio=1.0, train_macs_ratio=1.0, accuracy_drop=0.0)
    return out


# --- the trainable that Ray runs -----------------------------------------------------------------


def _trainable(config: dict, *, base: dict, baseline: dict | None, threads: int, base_widths: list[int]):
    """One Ray Tune trial: the base spec with `config` put in, trained by `run_trial`."""
    torch.set_num_threads(threads)
    spec = apply_params(StudySpec.model_validate(base), config)
    restored = tune.get_checkpoint()
    checkpoint = load_checkpoint(Path(restored.path)) if restored is not None else None

    def report_epoch(metrics: dict, state: dict) -> None:
        flat = with_ratios(metrics, baseline)
        flat["base_widths"] = base_widths
        flat["gpu_ids"] = [str(g) for g in ray.get_gpu_ids()]  # what Ray gave this trial
        if metrics["epoch"] == spec.train.epochs:  # the last report carries the whole trace
            flat.update({key: state[key] for key in TRACE})
        with tempfile.TemporaryDirectory() as d:
            torch.save(state, Path(d) / CHECKPOINT_FILE)
            tune.report(flat, checkpoint=tune.Checkpoint.from_directory(d))

    try:
        run_trial(spec, report=report_epoch, checkpoint=checkpoint)
    except Exception as exc:
        # the searcher sees results, not exceptions: report the reason, then fail the trial
        tune.report({"error": _error_text(exc), **{m: math.nan for m in METRICS}})
        raise


def load_checkpoint(path: Path) -> dict | None:
    """The trial checkpoint in Ray checkpoint dir `path`, or the newest readable one before it.

    A checkpoint that cannot be read (a torn or corrupt file) is skipped with a warning, so a
    trial falls back to its previous epoch instead of failing or starting again.
    """
    candidates = sorted(path.parent.glob("checkpoint_*"), reverse=True)
    candidates = [c for c in candidates if c.name <= path.name] or [path]
    for directory in candidates:
        try:
            return torch.load(directory / CHECKPOINT_FILE, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file means: try the one before
            warnings.warn(f"checkpoint {directory / CHECKPOINT_FILE} is unreadable ({exc}); "
                          "falling back to the one before", stacklevel=1)
    return None


# --- Optuna ----------------------------------------------------------------------------------


def optuna_space(spec: StudySpec) -> dict[str, optuna.distributions.BaseDistribution]:
    space = {}
    for path, dim in spec.search.space.items():
        if isinstance(dim, ValuesDim):
            space[path] = optuna.distributions.CategoricalDistribution([encode_choice(v) for v in dim.values])
        elif dim.distribution == "int_uniform":
            space[path] = optuna.distributions.IntDistribution(int(dim.low), int(dim.high), step=int(dim.step or 1))
        else:
            space[path] = optuna.distributions.FloatDistribution(
                dim.low, dim.high, log=dim.distribution == "log_uniform", step=dim.step)
    return space


def make_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    """The sampler named in the spec, always set explicitly and seeded by the study's seed."""
    s, seed = spec.search, spec.seed
    if s.sampler == "nsga2":
        # a population of a third of the budget lets small studies evolve at least twice
        return optuna.samplers.NSGAIISampler(population_size=max(4, min(50, s.trials // 3)), seed=seed)
    if s.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if s.sampler == "grid":
        grid = {p: [encode_choice(v) for v in d.values] for p, d in s.space.items()}
        return optuna.samplers.GridSampler(grid, seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


class _Searcher(OptunaSearch):
    """OptunaSearch that keeps each trial's metrics as user attributes and fails errored trials.

    Ray passes an errored trial's last intermediate result; told as is, Optuna would record the
    trial COMPLETE with half-trained metrics, so an error always goes to Optuna as FAIL.
    """

    _orphans: list | None = None

    def suggest(self, trial_id: str) -> dict | None:
        orphan = self._next_orphan()
        if orphan is not None:  # a trial Optuna handed out just before a crash, unknown to Ray
            self._ot_trials[trial_id] = orphan
            orphan.set_user_attr("ray_trial_id", trial_id)
            return dict(orphan.params)
        config = super().suggest(trial_id)
        if trial_id in self._ot_trials:
            self._ot_trials[trial_id].set_user_attr("ray_trial_id", trial_id)
        return config

    def _next_orphan(self):
        """After a restore: Optuna trials still RUNNING whose Ray trial the restored Ray lost."""
        if self._orphans is None:
            known = set(self._ot_trials)
            known_numbers = {t.number for t in self._ot_trials.values()}
            self._orphans = [
                optuna.Trial(self._ot_study, t._trial_id)
                for t in self._ot_study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING])
                if t.user_attrs.get("ray_trial_id") not in known and t.number not in known_numbers
            ]
        return self._orphans.pop(0) if self._orphans else None

    def on_trial_result(self, trial_id: str, result: dict):
        if "error" in result:
            self._errors[trial_id] = result["error"]
        super().on_trial_result(trial_id, result)

    @property
    def _errors(self) -> dict:
        if "_error_texts" not in self.__dict__:
            self._error_texts = {}
        return self._error_texts

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or self._finished(ot_trial):
            # told before a crash, then re-run from its last checkpoint by the restored Ray
            self._completed_trials.add(trial_id)
            return
        if error:
            reason = self._errors.pop(trial_id, "the trial's process failed; see its error.txt under ray/search/")
            ot_trial.set_user_attr("error", reason)
        if result and not error:
            for key in RECORDED + TRACE:
                if key in result:
                    ot_trial.set_user_attr(key, _plain(result[key]))
        super().on_trial_complete(trial_id, None if error else result, error)

    def _finished(self, ot_trial) -> bool:
        return self._ot_study._storage.get_trial(ot_trial._trial_id).state.is_finished()

    def save(self, checkpoint_path: str):
        orphans, self._orphans = self._orphans, None  # recomputed against the storage on restore
        try:
            super().save(checkpoint_path)
        finally:
            self._orphans = orphans


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# --- progress ----------------------------------------------------------------------------------


class _Progress(tune.Callback):
    """Prints a line per finished trial: done/total and the current recommended trade-off."""

    def __init__(self, total: int, baseline: dict | None, max_drop: float, say: Callable[[str], None],
                 url: str, study_name: str):
        self.total, self.baseline, self.max_drop, self.say = total, baseline, max_drop, say
        self.url, self.study_name = url, study_name
        self.rows: list[dict] = []

    def __getstate__(self):  # Ray pickles callbacks with the experiment; a console holds locks
        return {k: v for k, v in self.__dict__.items() if k != "say"}

    def __setstate__(self, state):
        self.__dict__.update(state, say=print)

    def _line(self, trial, state: str, error: str = "") -> None:
        r = trial.last_result or {}
        row = {"number": len(self.rows), "role": "search", "state": state,
               **{k: r.get(k) for k in ("accuracy", "params", "params_ratio", "train_macs_ratio")}}
        self.rows.append(row)
        done = max(len(self.rows), finished_count(self.url, self.study_name))  # counts those before a resume
        if state == "COMPLETE":
            what = (f"accuracy {r['accuracy']:.2%}, params {_count(r['params'])} "
                    f"({1 / r['params_ratio']:.1f}x fewer), train MACs {1 / r['train_macs_ratio']:.1f}x fewer")
        else:
            what = f"failed: {error}"
        best = self._best()
        settings = ", ".join(f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in (trial.config or {}).items())
        self.say(f"[{done}/{self.total}] {settings}: {what}" + (f" | best so far: {best}" if best else ""))

    def _best(self) -> str:
        if not self.baseline:
            return ""
        rows = [{"role": "baseline", "state": "COMPLETE", "accuracy": self.baseline["accuracy"],
                 "params": self.baseline["params"]}] + self.rows
        i = pareto.recommended(rows, self.max_drop)
        if i is None:
            return f"none within {self.max_drop:.1%} of the baseline yet"
        r = rows[i]
        return f"{r['accuracy']:.2%} at {1 / r['params_ratio']:.1f}x fewer params"

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trial, "COMPLETE")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, "FAIL", _trial_error(trial))


def _short(value) -> str:
    """A sampled value as the progress line shows it: floats to 3 significant digits."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


def _trial_error(trial) -> str:
    """The exception a Ray trial ended with, as one line."""
    try:
        error = trial.get_pickled_error() or trial.get_error()
    except Exception:  # noqa: BLE001 - best effort: the error file may be unreadable
        error = None
    return _error_text(error) if error else "unknown error"


def _error_text(error: BaseException) -> str:
    cause = getattr(error, "cause", None) or error
    text = str(cause).strip().splitlines()
    last = text[-1] if text else ""
    return f"{type(cause).__name__}: {last}"[:300]


# --- Ray -------------------------------------------------------------------------------------


def _start_ray(spec: StudySpec, address: str | None) -> bool:
    """Connect to `address` or start a local Ray sized to `resources`; True if we started it."""
    if ray.is_initialized():
        return False
    address = address or spec.resources.address
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level="WARNING",
                                  configure_logging=True)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
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


class _FailureLimit(tune.Stopper, tune.Callback):
    """Stops the whole search once `limit` trials have failed, as Optuna's storage counts them.

    Counting in the storage (not in memory) keeps failures from before a resume in the count. The
    storage is read at the first check and again after each trial error (Ray tells the searcher,
    which records the FAIL, before it tells callbacks), so the stop follows the failure that
    reaches the limit at once, whatever the timing.
    """

    def __init__(self, limit: int | None, url: str, study_name: str):
        self.limit, self.url, self.study_name = limit, url, study_name
        self._stale, self._reached = True, False

    def __call__(self, trial_id, result) -> bool:
        return False

    def on_trial_error(self, iteration, trials, trial, **info):
        self._stale = True

    def stop_all(self) -> bool:
        if self.limit is not None and self._stale and not self._reached:
            self._stale = False
            self._reached = failed_count(self.url, self.study_name) >= self.limit
        return self._reached


def failed_count(url: str, study_name: str) -> int:
    study = optuna.load_study(study_name=study_name, storage=url)
    return len(study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.FAIL]))


def finished_count(url: str, study_name: str) -> int:
    study = optuna.load_study(study_name=study_name, storage=url)
    return sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))


def _tuner(trainable, spec: StudySpec, directory: Path, name: str, *, search_alg=None, samples: int,
           callbacks=(), stop=None, restore: bool = False) -> tune.Tuner:
    per = spec.resources.per_trial
    trainable = tune.with_resources(trainable, {"cpu": per.cpu, "gpu": per.gpu})
    path = directory / "ray" / name
    if restore and tune.Tuner.can_restore(str(path.resolve())):
        # finished and failed trials stay as they are; unfinished ones go on from their checkpoint
        return tune.Tuner.restore(str(path.resolve()), trainable, resume_unfinished=True,
                                  resume_errored=False, restart_errored=False)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=search_alg, num_samples=samples, reuse_actors=True,
                                    max_concurrent_trials=spec.resources.max_concurrent),
        run_config=tune.RunConfig(
            name=name, storage_path=str((directory / "ray").resolve()), verbose=0,
            callbacks=[JsonLoggerCallback(), CSVLoggerCallback(), *callbacks], stop=stop,
            # two kept: if the newest is torn by a crash, the trial falls back to the one before
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )


# --- the study -------------------------------------------------------------------------------


def check_runnable(spec: StudySpec) -> list[int]:
    """Build the data and the network once, before anything is written; return the base widths."""
    from adsearch.compress import group_widths
    from adsearch.data import load_data
    from adsearch.graph import channel_groups

    data = load_data(spec.data, spec.seed)
    steps_per_epoch(spec.train, data.n_train)
    model = build_model(spec, data)
    return group_widths(model, channel_groups(model))


# --- the study directory and its lock ---------------------------------------------------------


def lock_owner(directory: Path) -> int | None:
    """The pid of the live process running the study in `directory`, or None."""
    pid = lock_pid(directory)
    return pid if pid is not None and pid_alive(pid) else None


def _check_not_running(directory: Path) -> None:
    owner = lock_owner(directory)
    if owner is not None and owner != os.getpid():
        raise AdsearchError(f"study {directory} is already running (pid {owner}); wait for it to finish or "
                            f"stop it (kill {owner}), then `adsearch resume {directory}`")


@contextlib.contextmanager
def study_lock(directory: Path):
    """Hold `directory/.lock` (our pid) while the study runs; a stale lock is taken over."""
    path = directory / LOCK_FILE
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            _check_not_running(directory)
            path.unlink(missing_ok=True)  # stale: its process is gone
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _spec_text(spec: StudySpec) -> str:
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)


def check_directory(spec: StudySpec, directory: Path, *, fresh: bool = False) -> bool:
    """Check, before anything is written, that `spec` may run in `directory`; True if a study
    of this spec is there to resume (never with `fresh`, which deletes it first).

    Raises:
        StudyDirError: `directory` exists and is not a study (or, with `fresh`, is not one that
            may be deleted: see `records.check_removable`); its spec.yaml cannot be read.
        AdsearchError: a live process runs the study; its spec changed since it began.
    """
    if not directory.exists():
        return False
    if not directory.is_dir():
        raise StudyDirError(f"{directory} is a file, not a study folder; choose another study name or --reports")
    _check_not_running(directory)
    if fresh:
        check_removable(directory)
        return False
    if not (directory / SPEC_FILE).exists():
        leftovers = sorted(p.name for p in directory.iterdir() if p.name != LOCK_FILE)
        if leftovers:
            raise StudyDirError(
                f"{directory} exists and is not an adsearch study (it holds {', '.join(leftovers[:5])}); "
                "choose another study name or --reports directory")
        return False
    if not is_study(directory):
        raise StudyDirError(f"{directory} holds a {SPEC_FILE} that adsearch did not write (no {MARKER_FILE}), so it is "
                            "not a study to resume; choose another study name or --reports directory")
    before = load_study_spec(directory)
    if before.digest() != spec.digest():
        diff = "".join(difflib.unified_diff(_spec_text(before).splitlines(True), _spec_text(spec).splitlines(True),
                                            f"{directory / SPEC_FILE} (as started)", "the spec now"))
        raise AdsearchError(
            f"the spec changed since study {spec.name!r} began, so it cannot resume:\n{diff}"
            f"run with --fresh to start it again (deletes {directory}), or give the study a new name")
    collect_rows(directory, before)  # its baseline.json and study.db must read, before Ray starts
    return True


def _start_directory(spec: StudySpec, directory: Path) -> None:
    """Make a new study's folder: its spec.yaml and the marker that says adsearch made it."""
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / MARKER_FILE, json.dumps({"study": spec.name, "spec_digest": spec.digest()}) + "\n")
    atomic_write(directory / SPEC_FILE, f"{SPEC_HEADER}{spec.digest()}\n" + _spec_text(spec))


# --- the study -------------------------------------------------------------------------------


def run_study(
    spec: StudySpec,
    *,
    reports_dir: Path | str = "reports",
    address: str | None = None,
    fresh: bool = False,
    say: Callable[[str], None] = print,
) -> StudyResult:
    """Run (or resume) the baseline and the search of `spec`; write `reports/<name>/` and its report.

    An existing study of the same name and spec is resumed: finished trials are kept, unfinished
    ones go on from their last checkpoint, and the budget is completed exactly.

    Raises:
        AdsearchError: the study is running elsewhere, its spec changed, or the baseline failed.
        StudyInterrupted: it stopped early (Ctrl-C or `search.max_failures`); it can resume.
    """
    base_widths = check_runnable(spec)
    directory = Path(reports_dir) / spec.name
    resuming = check_directory(spec, directory, fresh=fresh)  # reads only: nothing written yet
    started_ray = _start_ray(spec, address)
    try:
        if fresh and directory.exists():
            remove_study(directory)
            say(f"deleted the earlier study in {directory} (--fresh)")
        directory.mkdir(parents=True, exist_ok=True)
        with study_lock(directory):
            if not check_directory(spec, directory):  # again under the lock: another run may have begun
                _start_directory(spec, directory)
            elif not (directory / MARKER_FILE).exists():  # a study from before the marker
                atomic_write(directory / MARKER_FILE, json.dumps({"study": spec.name}) + "\n")
            if resuming:
                say(f"resuming study {spec.name!r} in {directory}")
            threads = spec.train.threads or max(1, int(spec.resources.per_trial.cpu))
            try:
                baseline = None
                if spec.search.baseline:
                    baseline = _run_baseline(spec, directory, threads, base_widths, say)
                _run_search(spec, directory, baseline, threads, base_widths, say)
            except StudyInterrupted:
                report.write_report(directory, spec, collect_rows(directory, spec), state="interrupted")
                raise
            rows = collect_rows(directory, spec)
            files = report.write_report(directory, spec, rows, state="done")
    finally:
        if started_ray:
            ray.shutdown()
    return StudyResult(directory=directory, rows=rows, files=files)


def resume_study(directory: Path | str, *, address: str | None = None, say: Callable[[str], None] = print) -> StudyResult:
    """Continue the study in `directory` with the spec it was started with.

    Raises:
        StudyDirError: no study there, a file of it unreadable, or a folder not named after the
            study it holds.
    """
    directory = Path(directory)
    spec = load_study_spec(directory)
    if spec.name != directory.name:
        raise StudyDirError(f"{directory} holds study {spec.name!r} (its spec.yaml says so); a study's folder is "
                            f"named after it: rename the folder to {directory.with_name(spec.name)}, then "
                            f"`adsearch resume {directory.with_name(spec.name)}`")
    return run_study(spec, reports_dir=directory.parent, address=address, say=say)


def _interrupted(directory: Path, what: str) -> StudyInterrupted:
    return StudyInterrupted(f"{what}; finished trials are kept and running ones checkpointed each epoch. "
                            f"Resume with: adsearch resume {directory}")


def _run_baseline(spec: StudySpec, directory: Path, threads: int, base_widths: list[int], say) -> dict:
    path = directory / BASELINE_FILE
    if path.exists():
        return json.loads(path.read_text())
    say(f"baseline: {spec.train.epochs} epochs without pruning")
    base = spec.without_pruning().model_dump(mode="json")
    trainable = tune.with_parameters(_trainable, base=base, baseline=None, threads=threads,
                                     base_widths=base_widths)
    grid = _tuner(trainable, spec, directory, "baseline", samples=1, restore=True).fit()
    result = grid[0]
    if result.error:
        raise AdsearchError(f"the baseline trial failed: {_error_text(result.error)}. The baseline trains the "
                            f"base recipe without pruning, so every trial would fail the same way: fix the recipe "
                            f"and start again with --fresh (details in {directory / 'ray' / 'baseline'})")
    if (result.metrics or {}).get("epoch") != spec.train.epochs:
        raise _interrupted(directory, "interrupted during the baseline")
    metrics = {k: _plain(result.metrics[k]) for k in RECORDED + TRACE if k in result.metrics}
    atomic_write(path, json.dumps(metrics, indent=2))
    say(f"baseline: accuracy {metrics['accuracy']:.2%}, params {_count(metrics['params'])}, "
        f"MACs {_count(metrics['macs'])}, {metrics['wall_s']:.1f} s")
    return metrics


def _run_search(spec, directory, baseline, threads, base_widths, say) -> None:
    objectives = spec.search.objectives
    url = storage_url(directory)
    storage = _open_storage(directory, url)
    searcher = _Searcher(
        space=optuna_space(spec),
        metric=[o.metric for o in objectives],
        mode=[o.mode for o in objectives],
        sampler=make_sampler(spec),
        storage=storage,
        study_name=spec.name,
        seed=spec.seed,
    )
    trainable = tune.with_parameters(_trainable, base=spec.model_dump(mode="json"), baseline=baseline,
                                     threads=threads, base_widths=base_widths)
    progress = _Progress(spec.search.trials, baseline, spec.report.max_accuracy_drop, say, url, spec.name)
    stopper = _FailureLimit(spec.search.max_failures, url, spec.name)
    _check_failure_limit(spec, directory, storage)  # failures before a resume count
    say(f"search: {spec.search.trials} trials, sampler {spec.search.sampler}, objectives "
        + ", ".join(f"{o.metric} ({o.mode})" for o in objectives))
    _tuner(trainable, spec, directory, "search", search_alg=searcher, samples=spec.search.trials,
           callbacks=[progress, stopper], stop=stopper, restore=True).fit()
    study = optuna.load_study(study_name=spec.name, storage=storage)
    study.set_metric_names([o.metric for o in objectives])
    _check_failure_limit(spec, directory, storage)
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    if len(finished) < spec.search.trials:
        raise _interrupted(directory, f"interrupted after {len(finished)} of {spec.search.trials} trials")


def _check_failure_limit(spec: StudySpec, directory: Path, storage) -> None:
    """Raise `StudyInterrupted` if `search.max_failures` trials of the study have failed, counted
    over every run of it (a resume does not reset the count)."""
    limit = spec.search.max_failures
    try:
        trials = optuna.load_study(study_name=spec.name, storage=storage).get_trials(
            deepcopy=False, states=[optuna.trial.TrialState.FAIL])
    except KeyError:  # the search has not made its Optuna study yet
        return
    if limit is not None and len(trials) >= limit:
        raise StudyInterrupted(
            f"search.max_failures ({limit}) reached: {len(trials)} trials failed (reasons in "
            f"{directory / 'trials.csv'}). The limit counts the failures of earlier runs too, so resuming stops "
            f"here again: fix the cause, then start again with --fresh, or raise search.max_failures under a new "
            f"study name")


def _open_storage(directory: Path, url: str) -> optuna.storages.RDBStorage:
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy and Optuna raise many kinds here
        raise StudyDirError(f"{directory / DB_FILE} cannot be opened as an Optuna storage ({_error_text(exc)}); "
                            "the other files of the study are untouched") from None
