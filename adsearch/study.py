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
import shutil
import tempfile
import time
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
from adsearch.errors import AdsearchError
from adsearch.records import (  # noqa: F401 - reading a study back lives in records
    BASELINE_FILE, DB_FILE, LOCK_FILE, RECORDED, SPEC_FILE, TRACE, collect_rows)
from adsearch.spec import METRICS, StudySpec, ValuesDim, apply_params, decode_choice, encode_choice
from adsearch.trainer import build_model, run_trial

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


def storage_url(directory: Path) -> str:
    return f"sqlite:///{(directory / DB_FILE).resolve()}"


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


class _FailureLimit(tune.Stopper):
    """Stops the whole search once `limit` trials have failed, as Optuna's storage counts them.

    Counting in the storage (not in memory) keeps failures from before a resume in the count.
    """

    def __init__(self, limit: int | None, url: str, study_name: str):
        self.limit, self.url, self.study_name = limit, url, study_name
        self._checked, self._reached = 0.0, False

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        if self.limit is None or self._reached or time.monotonic() - self._checked < 1.0:
            return self._reached
        self._checked = time.monotonic()
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


class StudyInterrupted(AdsearchError):
    """The study stopped before its budget was spent (Ctrl-C, a stopped cluster); it can resume."""


def check_runnable(spec: StudySpec) -> list[int]:
    """Build the data and the network once, before anything is written; return the base widths."""
    from adsearch.compress import group_widths
    from adsearch.data import load_data
    from adsearch.graph import channel_groups

    data = load_data(spec.data, spec.seed)
    model = build_model(spec, data)
    return group_widths(model, channel_groups(model))


# --- the study directory and its lock ---------------------------------------------------------


def lock_owner(directory: Path) -> int | None:
    """The pid of the live process running the study in `directory`, or None."""
    try:
        pid = int((directory / LOCK_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


@contextlib.contextmanager
def study_lock(directory: Path):
    """Hold `directory/.lock` (our pid) while the study runs; a stale lock is taken over."""
    path = directory / LOCK_FILE
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            owner = lock_owner(directory)
            if owner is not None and owner != os.getpid():
                raise AdsearchError(
                    f"study {directory} is already running (pid {owner}); wait for it to finish or "
                    f"stop it (kill {owner}), then `adsearch resume {directory}`") from None
            path.unlink(missing_ok=True)  # stale: its process is gone
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def saved_spec(directory: Path) -> StudySpec:
    """The spec a study in `directory` was started with."""
    from adsearch.spec import SpecError, load_spec

    if not (directory / SPEC_FILE).is_file():
        raise AdsearchError(f"{directory} is not an adsearch study (no {SPEC_FILE}){_studies_near(directory)}")
    try:
        return load_spec(directory / SPEC_FILE)
    except SpecError as exc:
        raise AdsearchError(f"{directory / SPEC_FILE} is not a valid spec any more:\n{exc}") from None


def _studies_near(directory: Path) -> str:
    parent = directory.parent
    names = sorted(p.parent.name for p in parent.glob(f"*/{SPEC_FILE}")) if parent.is_dir() else []
    return f"; studies in {parent}: {', '.join(names)}" if names else ""


def _spec_text(spec: StudySpec) -> str:
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)


def open_directory(spec: StudySpec, directory: Path) -> bool:
    """Make or check the study directory for `spec`; True if the study already exists (resume)."""
    if (directory / SPEC_FILE).exists():
        before = saved_spec(directory)
        if before.digest() != spec.digest():
            diff = "".join(difflib.unified_diff(_spec_text(before).splitlines(True), _spec_text(spec).splitlines(True),
                                                f"{directory / SPEC_FILE} (as started)", "the spec now"))
            raise AdsearchError(
                f"the spec changed since study {spec.name!r} began, so it cannot resume:\n{diff}"
                f"run with --fresh to start it again (deletes {directory}), or give the study a new name")
        return True
    leftovers = [p.name for p in directory.iterdir() if p.name != LOCK_FILE]
    if leftovers:
        raise AdsearchError(f"{directory} exists and is not an adsearch study (it holds {', '.join(leftovers[:5])}); "
                            "choose another study name or --reports directory")
    _atomic_write(directory / SPEC_FILE, f"# adsearch study spec, digest {spec.digest()}\n" + _spec_text(spec))
    return False


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
    if fresh and directory.exists():
        owner = lock_owner(directory)
        if owner is not None:
            raise AdsearchError(f"study {directory} is running (pid {owner}); stop it before --fresh")
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with study_lock(directory):
        resuming = open_directory(spec, directory)
        if resuming:
            say(f"resuming study {spec.name!r} in {directory}")
        started_ray = _start_ray(spec, address)
        threads = spec.train.threads or max(1, int(spec.resources.per_trial.cpu))
        try:
            baseline = None
            if spec.search.baseline:
                baseline = _run_baseline(spec, directory, threads, base_widths, say)
            _run_search(spec, directory, baseline, threads, base_widths, say)
        except StudyInterrupted:
            report.write_report(directory, spec, collect_rows(directory, spec), state="interrupted")
            raise
        finally:
            if started_ray:
                ray.shutdown()
        rows = collect_rows(directory, spec)
        files = report.write_report(directory, spec, rows, state="done")
    return StudyResult(directory=directory, rows=rows, files=files)


def resume_study(directory: Path | str, *, address: str | None = None, say: Callable[[str], None] = print) -> StudyResult:
    """Continue the study in `directory` with the spec it was started with."""
    directory = Path(directory)
    if not directory.is_dir():
        raise AdsearchError(f"no study at {directory}{_studies_near(directory)}")
    spec = saved_spec(directory)
    if spec.name != directory.name:
        raise AdsearchError(f"{directory} holds study {spec.name!r}; keep the directory named after its study")
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
        raise AdsearchError(f"the baseline trial failed: {_error_text(result.error)}; "
                            f"see {directory / 'ray' / 'baseline'}")
    if (result.metrics or {}).get("epoch") != spec.train.epochs:
        raise _interrupted(directory, "interrupted during the baseline")
    metrics = {k: _plain(result.metrics[k]) for k in RECORDED + TRACE if k in result.metrics}
    _atomic_write(path, json.dumps(metrics, indent=2))
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
    say(f"search: {spec.search.trials} trials, sampler {spec.search.sampler}, objectives "
        + ", ".join(f"{o.metric} ({o.mode})" for o in objectives))
    _tuner(trainable, spec, directory, "search", search_alg=searcher, samples=spec.search.trials,
           callbacks=[progress], stop=stopper, restore=True).fit()
    study = optuna.load_study(study_name=spec.name, storage=storage)
    study.set_metric_names([o.metric for o in objectives])
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    failed = sum(t.state == optuna.trial.TrialState.FAIL for t in finished)
    if spec.search.max_failures is not None and failed >= spec.search.max_failures:
        raise StudyInterrupted(
            f"search.max_failures ({spec.search.max_failures}) reached: {failed} trials failed "
            f"(reasons in {directory / 'trials.csv'}); fix the cause, raise the limit in a new study, or "
            f"resume with: adsearch resume {directory}")
    if len(finished) < spec.search.trials:
        raise _interrupted(directory, f"interrupted after {len(finished)} of {spec.search.trials} trials")


def _open_storage(directory: Path, url: str) -> optuna.storages.RDBStorage:
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy and Optuna raise many kinds here
        raise AdsearchError(f"{directory / DB_FILE} cannot be opened as an Optuna storage ({_error_text(exc)}); "
                            "the other files of the study are untouched") from None


def _atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` so that a reader sees the old file or the new one, never a torn one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
