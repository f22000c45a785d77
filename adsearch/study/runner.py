"""A study: Ray Tune runs the trials, Optuna samples them.

`run_study(spec)` makes `reports/<name>/`, runs the baseline (the same recipe, pruning off),
then the search: Ray Tune's `OptunaSearch` over `search.space`, multi-objective over
`search.objectives`, with Optuna's storage in `study.db`. Every trial's metrics, ratios against
the baseline, widths and failure reason are kept as Optuna user attributes, so `study.db` plus
`baseline.json` are the whole record; `trials.csv`, `pareto.csv` and the report are made from them.

Scratch controls (`adsearch.study.scratch`: a pruned trial's final widths trained from scratch, pruning
off) run after the search with `search.scratch_controls`, or on a finished study with
`scratch_study` (`adsearch scratch`); their results go to `scratch.json`.

The Optuna side of the search (space, sampler, the searcher, counting trials in the storage) is
`adsearch.study.searcher`, the only module that touches Ray's or Optuna's private attributes; Ray's
start-up and the process settings a study needs are `adsearch.study.cluster`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import shutil
import signal
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import ray
import torch
from ray import tune
from rich.console import Console
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.stopper import CombinedStopper

from adsearch.report import writer as report
from adsearch.study.cluster import cluster_capacity, configure_process, prepare_ray
from adsearch.errors import AdsearchError, StudyDirError, StudyInterrupted, one_line
from adsearch.study.progress import Board, Monitor, live_entry
from adsearch.metrics import METRICS, count, percent, seconds, with_ratios
from adsearch.train.prefixes import PrefixCache, branch_epochs, cache_size
from adsearch.results.study_dir import StudyDir, collect_rows, read_study, search_ended
from adsearch.report.text import progress_line
from adsearch.results.view import best_so_far
from adsearch.results.rows import BASELINE, RECORDED, TRACE, TrialRow, baseline_row, find, plain
from adsearch.study.scratch import (completed, control_line, control_spec, controls_for, failed, front_controls, to_run,
                              trials_text)
from adsearch.study.searcher import (TRIAL_KEY, FailureLimit, Searcher, failed_count, finished_count, make_sampler,
                               open_storage, optuna_space, set_metric_names)
from adsearch.spec.space import space_size
from adsearch.spec.study_spec import StudySpec, apply_params
from adsearch.train.trainer import build_model, run_trial, steps_per_epoch

CHECKPOINT_FILE = "trial.pt"
"""The file in each of Ray's checkpoint folders (what a trial resumes from)."""


@dataclass
class StudyResult:
    directory: Path
    rows: list[TrialRow]
    files: dict[str, Path]


# --- the trainable that Ray runs -----------------------------------------------------------------


def _trainable(config: dict, *, base: dict, baseline: dict | None, threads: int, base_widths: list[int],
               directory: str, branches: list[int] | None):
    """One Ray Tune trial: the base spec with `config` put in, trained by `run_trial`; its final
    state kept in the study directory by trial number (`config[TRIAL_KEY]`; none: the baseline).
    With `branches` (the study's branch epochs) it shares prefixes through the study's cache."""
    torch.set_num_threads(threads)
    number = config.get(TRIAL_KEY, BASELINE)
    spec = apply_params(StudySpec.model_validate(base), {k: v for k, v in config.items() if k != TRIAL_KEY})
    restored = tune.get_checkpoint()
    checkpoint = load_checkpoint(Path(restored.path)) if restored is not None else None
    study = StudyDir(directory)
    prefixes = PrefixCache(study.prefixes_dir, branches, owner=number) if branches is not None else None
    settings = {k: v for k, v in config.items() if k != TRIAL_KEY}
    kind = "baseline" if number == BASELINE else "search"

    with _live_entry(study, kind, number, settings, spec, checkpoint) as show:
        def report_epoch(metrics: dict, state: dict) -> None:
            show(metrics)
            flat = with_ratios(metrics, baseline)
            flat["base_widths"] = base_widths
            flat["gpu_ids"] = [str(g) for g in ray.get_gpu_ids()]  # what Ray gave this trial
            if metrics["epoch"] == spec.train.epochs:  # the last report carries the whole trace
                flat.update({key: state[key] for key in TRACE})
                study.save_checkpoint(number, state)  # before the report that finishes the trial
            _report(flat, state)

        try:
            run_trial(spec, report=report_epoch, checkpoint=checkpoint, prefixes=prefixes)
        except Exception as exc:
            # the searcher sees results, not exceptions: report the reason, then fail the trial
            tune.report({"error": one_line(exc), **{m: math.nan for m in METRICS}})
            raise


def _control_trainable(config: dict, *, controls: dict, baseline: dict | None, threads: int, directory: str):
    """One scratch control as a Ray Tune trial: `controls[config[TRIAL_KEY]]` holds the spec it
    trains (`scratch.control_spec`) and the widths it starts at; no prefix cache, no final checkpoint
    kept (a control is a measurement, not a network to export)."""
    torch.set_num_threads(threads)
    number = config[TRIAL_KEY]
    control = controls[number]
    spec = StudySpec.model_validate(control["spec"])
    restored = tune.get_checkpoint()
    checkpoint = load_checkpoint(Path(restored.path)) if restored is not None else None

    with _live_entry(StudyDir(directory), "control", number, {}, spec, checkpoint) as show:
        def report_epoch(metrics: dict, state: dict) -> None:
            show(metrics)
            _report({**with_ratios(metrics, baseline), "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}, state)

        try:
            run_trial(spec, report=report_epoch, checkpoint=checkpoint, widths=control["widths"])
        except Exception as exc:
            tune.report({"error": one_line(exc), **{m: math.nan for m in METRICS}})
            raise


@contextlib.contextmanager
def _live_entry(study: StudyDir, kind: str, number: int, settings: dict, spec: StudySpec,
                checkpoint: dict | None) -> Iterator[Callable[[dict], None]]:
    """The trial's live entry (`adsearch.study.progress`) in the study's `live/`: written now and by the function
    given after each epoch (with the epoch's metrics), removed when the trial ends. A write that
    fails is skipped: the display is not worth a trial."""
    started, first_epoch = time.time(), (checkpoint or {}).get("epoch", 0)

    def show(metrics: dict | None) -> None:
        try:
            study.save_live(live_entry(kind=kind, number=number, settings=settings, epochs=spec.train.epochs,
                                       metrics=metrics, started=started, first_epoch=first_epoch))
        except OSError:
            pass

    show(None)
    try:
        yield show
    finally:
        study.end_live(kind, number)


def _report(flat: dict, state: dict) -> None:
    """Report an epoch's results to Ray Tune with the trial's state as the checkpoint it resumes from."""
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, Path(d) / CHECKPOINT_FILE)
        tune.report(flat, checkpoint=tune.Checkpoint.from_directory(d))


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


# --- progress ----------------------------------------------------------------------------------


class _Driver:
    """What the Ray Tune callbacks running in this process report to: the running study's `say`, and
    why a run stopped before any trial was placed. Ray pickles callbacks with its experiment and
    unpickles them when a study resumes, so they keep no console of their own and look here."""

    def __init__(self):
        self.say: Callable[[str], None] = print
        self.board: Board | None = None
        """The live display's board (`adsearch.study.progress`), while one is shown."""
        self.placement_timeout_s: float | None = None
        """How long the run now fitting waits for its first trial to be placed (None: for ever)."""
        self.unplaced = False
        """Whether it stopped for that."""

    @contextlib.contextmanager
    def driving(self, spec: StudySpec, study: StudyDir, say: Callable[[str], None], live: Live | None):
        """While a study runs in this process: its callbacks' lines go to `say`; with `live`, the running
        trials are shown as `live` says (`adsearch.study.progress.Monitor`), from entries cleared first (those a
        killed run left)."""
        before, self.say = self.say, say
        study.clear_live()
        try:
            if live is None:
                yield
                return
            self.board = Board(spec.report.max_accuracy_drop)
            with Monitor(study, self.board, console=live.console, terminal=live.console.is_terminal,
                         every_s=live.every_s, say=say):
                yield
        finally:
            self.say, self.board = before, None


_DRIVER = _Driver()


@dataclass
class Live:
    """How a study shows its running trials: on `console`, live where it is a terminal, else as plain
    lines at most every `every_s` seconds (`adsearch.study.progress.Monitor`)."""

    console: Console
    every_s: float = 30.0


class _Progress(tune.Callback):
    """Prints a line per finished trial: done/total and the current recommended trade-off."""

    def __init__(self, total: int, baseline: dict | None, max_drop: float, url: str, study_name: str):
        self.total, self.max_drop = total, max_drop
        self.url, self.study_name = url, study_name
        self.baseline = baseline_row(baseline) if baseline else None
        self.rows: list[TrialRow] = []

    def _line(self, trial, state: str, error: str = "") -> None:
        config = dict(trial.config or {})
        number = config.pop(TRIAL_KEY, len(self.rows))
        row = TrialRow.from_result(number, trial.last_result or {}, state=state, error=error, settings=config)
        self.rows.append(row)
        if _DRIVER.board is not None:
            _DRIVER.board.finished(row)
        done = max(len(self.rows), finished_count(self.url, self.study_name))  # counts those before a resume
        _DRIVER.say(progress_line(row, done=done, total=self.total,
                                  best=best_so_far(self.baseline, self.rows, self.max_drop)))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trial, "COMPLETE")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, "FAIL", _trial_error(trial))


class _PlacementWait(tune.Stopper, tune.Callback):
    """Stops a run whose first trial is not placed within `_DRIVER.placement_timeout_s`
    (`resources.placement_timeout_s`: a cluster with no node that has `resources.per_trial`, waiting
    for an autoscaler), and tells `_DRIVER`. A run restored from its snapshot waits afresh, as long
    as the spec it resumes with says."""

    def __init__(self):
        self._since: float | None = None
        self._placed = False

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()

    def __call__(self, trial_id, result) -> bool:
        return False

    def on_trial_start(self, iteration, trials, trial, **info):
        self._placed = True

    def stop_all(self) -> bool:
        if self._placed or _DRIVER.unplaced or _DRIVER.placement_timeout_s is None:
            return False
        now = time.monotonic()
        self._since = self._since or now
        if now - self._since < _DRIVER.placement_timeout_s:
            return False
        _DRIVER.unplaced = True
        # Returning True would end the trials (a resume would not go on with them): end the run as
        # Ctrl-C does instead. Tune treats SIGUSR1 as its first SIGINT where it installed its
        # handler (this, the main thread); never raise it where the default (exit) would act.
        if not callable(signal.getsignal(signal.SIGUSR1)):
            raise _Unplaced("no trial placed within resources.placement_timeout_s")
        signal.raise_signal(signal.SIGUSR1)
        return False


class _Unplaced(RuntimeError):
    """`_PlacementWait` ends a Tune run it cannot stop gracefully (Tune not in the main thread)."""


def _trial_error(trial) -> str:
    """The exception a Ray trial ended with, as one line."""
    try:
        error = trial.get_pickled_error() or trial.get_error()
    except Exception:  # noqa: BLE001 - best effort: the error file may be unreadable
        error = None
    return one_line(error) if error else "unknown error"


def _tuner(trainable, spec: StudySpec, study: StudyDir, name: str, *, search_alg=None, samples: int,
           callbacks=(), stop=None, restore: bool = False, param_space: dict | None = None) -> tune.Tuner:
    """Ray Tune's experiment `name` (a path under the study's `ray/`: 'search', 'scratch/trials-4-7')."""
    per = spec.resources.per_trial
    trainable = tune.with_resources(trainable, {"cpu": per.cpu, "gpu": per.gpu})
    wait = _PlacementWait()
    path = study.ray_dir / name
    if restore and tune.Tuner.can_restore(str(path.resolve())):
        # finished and failed trials stay as they are; unfinished ones go on from their checkpoint
        return tune.Tuner.restore(str(path.resolve()), trainable, resume_unfinished=True,
                                  resume_errored=False, restart_errored=False)
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(search_alg=search_alg, num_samples=samples, reuse_actors=True,
                                    max_concurrent_trials=spec.resources.max_concurrent),
        run_config=tune.RunConfig(
            name=path.name, storage_path=str(path.parent.resolve()), verbose=0,
            callbacks=[JsonLoggerCallback(), CSVLoggerCallback(), wait, *callbacks],
            stop=CombinedStopper(wait, stop) if stop is not None else wait,
            # two kept: if the newest is torn by a crash, the trial falls back to the one before
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )


# --- the study -------------------------------------------------------------------------------


def check_runnable(spec: StudySpec) -> list[int]:
    """Build the data and the network once, before anything is written; return the base widths."""
    from adsearch.prune.compress import group_widths
    from adsearch.data.registry import load_data
    from adsearch.prune.graph import channel_groups

    data = load_data(spec.data, spec.seed)
    steps_per_epoch(spec.train, data.n_train)
    model = build_model(spec, data)
    return group_widths(model, channel_groups(model))


# --- the study -------------------------------------------------------------------------------


def run_study(
    spec: StudySpec,
    *,
    reports_dir: Path | str = "reports",
    address: str | None = None,
    fresh: bool = False,
    say: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
    log_level: str = "error",
    live: Live | None = None,
) -> StudyResult:
    """Run (or resume) the baseline and the search of `spec`; write `reports/<name>/` and its report.

    An existing study of the same name and spec is resumed: finished trials are kept, unfinished
    ones go on from their last checkpoint, and the budget is completed exactly.

    Args:
        say: where the study's lines go; warn: where its warnings go (default: `say`, prefixed).
        log_level: Ray's own log lines shown at this level and up (`cluster.LOG_LEVELS`).
        live: show the running trials so (None: only a line per finished trial).

    Raises:
        ResourceError: the machine (a local Ray) can never give what the trials ask; nothing written.
        AdsearchError: the study is running elsewhere, its spec changed, or the baseline failed.
        StudyInterrupted: it stopped early (Ctrl-C, `search.max_failures`, no trial placed within
            `resources.placement_timeout_s`); it can resume.
    """
    configure_process()
    base_widths = check_runnable(spec)
    study = StudyDir(Path(reports_dir) / spec.name)
    resuming = study.check_can_run(spec, fresh=fresh)  # reads only: nothing written yet
    started_ray = prepare_ray(spec, address, warn=warn or _warn_with(say), log_level=log_level)
    try:
        if fresh and study.path.exists():
            study.remove()
            say(f"deleted the earlier study in {study} (--fresh)")
        study.path.mkdir(parents=True, exist_ok=True)
        with study.lock(), _DRIVER.driving(spec, study, say, live):
            if not study.check_can_run(spec):  # again under the lock: another run may have begun
                study.start(spec)
            else:
                study.mark(spec)  # a study from before the marker gets one
            if resuming:
                say(f"resuming study {spec.name!r} in {study}")
            threads = _threads(spec)
            try:
                baseline = None
                if spec.search.baseline:
                    baseline = _run_baseline(spec, study, threads, base_widths, say)
                    if _DRIVER.board is not None:
                        _DRIVER.board.set_baseline(baseline_row(baseline))
                _run_search(spec, study, baseline, threads, base_widths, say)
            except StudyInterrupted:
                report.write_report(study.path, spec, collect_rows(study, spec), state="interrupted")
                raise
            _end_prefixes(spec, study, say)  # the search is done; the controls share nothing
            controls = (lambda: _run_front_controls(spec, study, threads, say)) if spec.search.scratch_controls \
                else (lambda: None)
            rows, files = _controls_then_report(spec, study, controls)
    finally:
        if started_ray:
            ray.shutdown()
    return StudyResult(directory=study.path, rows=rows, files=files)


def resume_study(directory: Path | str, *, address: str | None = None, say: Callable[[str], None] = print,
                 warn: Callable[[str], None] | None = None, log_level: str = "error",
                 live: Live | None = None) -> StudyResult:
    """Continue the study in `directory` with the spec it was started with (the arguments as `run_study`'s).

    Raises:
        StudyDirError: no study there, a file of it unreadable, or a folder not named after the
            study it holds.
    """
    directory = Path(directory)
    spec = StudyDir(directory).read_spec()
    if spec.name != directory.name:
        raise StudyDirError(f"{directory} holds study {spec.name!r} (its spec.yaml says so); a study's folder is "
                            f"named after it: rename the folder to {directory.with_name(spec.name)}, then "
                            f"`adsearch resume {directory.with_name(spec.name)}`")
    return run_study(spec, reports_dir=directory.parent, address=address, say=say, warn=warn, log_level=log_level,
                     live=live)


def scratch_study(directory: Path | str, *, trials: list[int] | None = None, address: str | None = None,
                  say: Callable[[str], None] = print, warn: Callable[[str], None] | None = None,
                  log_level: str = "error", live: Live | None = None) -> StudyResult:
    """Run the scratch controls of the finished study in `directory` (`adsearch scratch`), then
    rewrite its report. Its spec is not changed; controls already recorded are not run again.

    Args:
        trials: the trials to control (complete, pruned, not repeats; a failed control of one named
            here is run again); default: the pruned trials on the study's Pareto front.

    Raises:
        StudyDirError: no study there, or a file of it unreadable.
        AdsearchError: the study is running or interrupted; no trial to control (none named and
            none pruned on the front); a named trial that cannot have a control.
        ResourceError: as `run_study`.
        StudyInterrupted: the controls stopped early (Ctrl-C, none placed in time); the next run goes
            on with them.
    """
    record = read_study(directory)
    study, spec = record.study_dir, record.spec
    if record.state == "running":
        raise AdsearchError(f"study {study} is running (pid {study.owner()}); its scratch controls can run once it "
                            f"is done: `adsearch scratch {study}`")
    if record.state == "interrupted":
        raise AdsearchError(f"study {study} is interrupted ({record.trials_done} of {record.trials_total} search "
                            f"trials done), so its Pareto front may still change: finish it with `adsearch resume "
                            f"{study}`, then `adsearch scratch {study}`")
    chosen = controls_for(spec, record.rows, trials)  # every error before Ray starts
    numbers, started_ray = [r.number for r in chosen], False
    if to_run(chosen, trials or ()):  # nothing to train: no Ray
        configure_process()
        check_runnable(spec)
        started_ray = prepare_ray(spec, address, warn=warn or _warn_with(say), log_level=log_level)
    try:
        with study.lock(), _DRIVER.driving(spec, study, say, live):
            rows, files = _controls_then_report(
                spec, study, lambda: _run_controls(spec, study, numbers, _threads(spec), say, retry=trials or ()))
    finally:
        if started_ray:
            ray.shutdown()
    return StudyResult(directory=study.path, rows=rows, files=files)


def _controls_then_report(spec: StudySpec, study: StudyDir, run_controls: Callable[[], None]):
    """Run the scratch controls, then write the done study's report: also when the controls stop early
    (Ctrl-C; `StudyInterrupted` goes on up), with those that finished. Returns the rows and the files."""
    try:
        run_controls()
    except StudyInterrupted:  # the study is done, less some controls: `adsearch scratch` goes on with them
        report.write_report(study.path, spec, collect_rows(study, spec), state="done")
        raise
    rows = collect_rows(study, spec)
    return rows, report.write_report(study.path, spec, rows, state="done")


def _warn_with(say: Callable[[str], None]) -> Callable[[str], None]:
    return lambda message: say(f"warning: {message}")


def _fit(tuner: tune.Tuner, spec: StudySpec, again: str) -> tune.ResultGrid:
    """`tuner.fit()`; a run stopped because no trial was placed in time raises `StudyInterrupted`
    saying what a trial asks and what the nodes have now; `again` is the command that goes on."""
    _DRIVER.unplaced, _DRIVER.placement_timeout_s = False, spec.resources.placement_timeout_s
    try:
        grid = tuner.fit()
    except Exception:  # noqa: BLE001 - `_Unplaced`, as Tune wraps it
        if not _DRIVER.unplaced:
            raise
    finally:
        _DRIVER.placement_timeout_s = None
    if not _DRIVER.unplaced:
        return grid
    per, nodes = spec.resources.per_trial, cluster_capacity(None)
    now = ("a node that has them is there now: go on with" if nodes.fits(per.cpu, per.gpu)
           else f"no node has them ({nodes.shapes()}): add one, then go on with")
    raise StudyInterrupted(
        f"no trial was placed within resources.placement_timeout_s ({seconds(spec.resources.placement_timeout_s)}): "
        f"each asks {per.cpu:g} CPU(s) and {per.gpu:g} GPU(s) (resources.per_trial), and {now}: {again} "
        "(to wait longer, `adsearch run` the spec again with --set resources.placement_timeout_s=SECONDS)")


def _threads(spec: StudySpec) -> int:
    """The torch threads of each trial: `train.threads`, else the CPUs a trial asks Ray for."""
    return spec.train.threads or max(1, int(spec.resources.per_trial.cpu))


def _interrupted(directory: StudyDir | Path, what: str) -> StudyInterrupted:
    return StudyInterrupted(f"{what}; finished trials are kept and running ones checkpointed each epoch. "
                            f"Resume with: adsearch resume {directory}")


def _branches(spec: StudySpec) -> list[int] | None:
    """The branch epochs of the study's prefix cache, or None when `search.share_prefixes` is off."""
    return branch_epochs(spec) if spec.search.share_prefixes else None


def _end_prefixes(spec: StudySpec, study: StudyDir, say) -> None:
    """Say how large the prefix cache grew; delete it unless `search.keep_prefixes`."""
    entries, size = cache_size(study.prefixes_dir)
    if not entries:
        return
    if spec.search.keep_prefixes:
        say(f"prefix cache: {entries} states, {size / 1e6:.1f} MB kept in {study.prefixes_dir} (search.keep_prefixes)")
        return
    shutil.rmtree(study.prefixes_dir, ignore_errors=True)
    say(f"prefix cache: {entries} states, {size / 1e6:.1f} MB, deleted now that the study is done "
        "(search.keep_prefixes: true keeps it)")


def _run_baseline(spec: StudySpec, study: StudyDir, threads: int, base_widths: list[int], say) -> dict:
    done = study.read_baseline()
    if done is not None:
        return done
    say(f"baseline: {spec.train.epochs} epochs without pruning")
    base = spec.without_pruning().model_dump(mode="json")
    trainable = tune.with_parameters(_trainable, base=base, baseline=None, threads=threads, base_widths=base_widths,
                                     directory=str(study.path.resolve()), branches=_branches(spec))
    grid = _fit(_tuner(trainable, spec, study, "baseline", samples=1, restore=True), spec, f"adsearch resume {study}")
    result = grid[0]
    if result.error:
        raise AdsearchError(f"the baseline trial failed: {one_line(result.error)}. The baseline trains the "
                            f"base recipe without pruning, so every trial would fail the same way: fix the recipe "
                            f"and start again with --fresh (details in {study.ray_dir / 'baseline'})")
    if (result.metrics or {}).get("epoch") != spec.train.epochs:
        raise _interrupted(study, "interrupted during the baseline")
    metrics = {k: plain(result.metrics[k]) for k in RECORDED + TRACE if k in result.metrics}
    study.save_baseline(metrics)
    say(f"baseline: accuracy {percent(metrics['accuracy'])}, params {count(metrics['params'])}, "
        f"MACs {count(metrics['macs'])}, {seconds(metrics['wall_s'])}")
    return metrics


def _run_search(spec: StudySpec, study: StudyDir, baseline: dict | None, threads: int, base_widths: list[int],
                say) -> None:
    objectives = spec.search.objectives
    url = study.storage_url
    storage = _open_storage(study, url)
    searcher = Searcher(
        space=optuna_space(spec),
        metric=[o.metric for o in objectives],
        mode=[o.mode for o in objectives],
        sampler=make_sampler(spec),
        storage=storage,
        study_name=spec.name,
        seed=spec.seed,
    )
    searcher.space_size, searcher.say = space_size(spec.search.space), say
    trainable = tune.with_parameters(_trainable, base=spec.model_dump(mode="json"), baseline=baseline,
                                     threads=threads, base_widths=base_widths, directory=str(study.path.resolve()),
                                     branches=_branches(spec))
    progress = _Progress(spec.search.trials, baseline, spec.report.max_accuracy_drop, url, spec.name)
    stopper = FailureLimit(spec.search.max_failures, url, spec.name)
    _check_failure_limit(spec, study, storage)  # failures before a resume count
    if _DRIVER.board is not None:
        _DRIVER.board.totals(spec.search.trials, done_before=_count(finished_count, storage, spec.name),
                             concurrent=_concurrency(spec), failed_before=_count(failed_count, storage, spec.name))
    say(f"search: {spec.search.trials} trials, sampler {spec.search.sampler}, objectives "
        + ", ".join(f"{o.metric} ({o.mode})" for o in objectives))
    _fit(_tuner(trainable, spec, study, "search", search_alg=searcher, samples=spec.search.trials,
                callbacks=[progress, stopper], stop=stopper, restore=True), spec, f"adsearch resume {study}")
    set_metric_names(storage, spec.name, [o.metric for o in objectives])
    _check_failure_limit(spec, study, storage)
    finished = finished_count(storage, spec.name)
    if finished < spec.search.trials:
        ended = search_ended(study, spec.name)
        if ended and not any(r.in_budget and not r.finished for r in collect_rows(study, spec)):
            say(f"search: ended after {finished} of {spec.search.trials} trials: {ended}")
            return
        raise _interrupted(study, f"interrupted after {finished} of {spec.search.trials} trials")


def _count(counter, storage, name: str) -> int:
    """`finished_count` or `failed_count` of the study; 0 before its search made its Optuna study."""
    try:
        return counter(storage, name)
    except KeyError:
        return 0


def _concurrency(spec: StudySpec) -> int:
    """How many trials run at once: what the Ray this process is connected to fits now, at most
    `resources.max_concurrent`."""
    per = spec.resources.per_trial
    fits = cluster_capacity(None).fits(per.cpu, per.gpu)
    return max(1, min(fits, spec.resources.max_concurrent or fits))


def _check_failure_limit(spec: StudySpec, study: StudyDir, storage) -> None:
    """Raise `StudyInterrupted` if `search.max_failures` trials of the study have failed, counted
    over every run of it (a resume does not reset the count)."""
    limit = spec.search.max_failures
    try:
        failed = failed_count(storage, spec.name)
    except KeyError:  # the search has not made its Optuna study yet
        return
    if limit is not None and failed >= limit:
        raise StudyInterrupted(
            f"search.max_failures ({limit}) reached: {failed} trials failed (reasons in "
            f"{study / 'trials.csv'}). The limit counts the failures of earlier runs too, so resuming stops "
            f"here again: fix the cause, then start again with --fresh, or raise search.max_failures under a new "
            f"study name")


def _open_storage(study: StudyDir, url: str):
    """`open_storage(url)`, or a StudyDirError naming the study's file."""
    try:
        return open_storage(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy and Optuna raise many kinds here
        raise StudyDirError(f"{study.db_file} cannot be opened as an Optuna storage ({one_line(exc)}); "
                            "the other files of the study are untouched") from None


# --- scratch controls ---------------------------------------------------------------------------


SCRATCH_EXPERIMENTS = "scratch"
"""Where under the study's `ray/` the controls' experiments are kept, one per set of trials run together."""


def _run_front_controls(spec: StudySpec, study: StudyDir, threads: int, say) -> None:
    """`search.scratch_controls`: the controls of the pruned trials on the front, after the search."""
    chosen = front_controls(spec, collect_rows(study, spec))
    if not chosen:
        say("scratch controls: none to run, no pruned trial is on the Pareto front")
        return
    _run_controls(spec, study, [r.number for r in chosen], threads, say)


def _run_controls(spec: StudySpec, study: StudyDir, numbers: list[int], threads: int, say, *,
                  retry=()) -> None:
    """Run the scratch controls of trials `numbers` not recorded yet (and those in `retry` whose
    control failed) on Ray Tune, at once as resources allow; record each result in scratch.json.

    A run stopped early is restored from `ray/scratch/<its trials>` by the next run asking for the
    same controls: finished controls are kept, running ones go on from their last epoch.

    Raises:
        StudyInterrupted: some control did not finish (Ctrl-C); those that did are recorded.
    """
    rows = collect_rows(study, spec)
    chosen = [find(rows, n) for n in numbers]
    pending = to_run(chosen, retry)
    recorded = [r for r in chosen if r not in pending]
    if recorded:
        say(f"scratch controls: {trials_text(recorded)} already recorded")
    if not pending:
        return
    say(f"scratch controls: {trials_text(pending)}, each one's final widths trained from scratch for "
        f"{spec.train.epochs} epochs without pruning")
    name = f"{SCRATCH_EXPERIMENTS}/{_experiment_name(pending)}"
    restore = not any(r.scratch for r in pending)  # a failed control named again starts afresh
    if not restore:
        shutil.rmtree(study.ray_dir / name, ignore_errors=True)
    controls = {r.number: {"spec": control_spec(spec, r).model_dump(mode="json"), "widths": list(r.widths)}
                for r in pending}
    trainable = tune.with_parameters(_control_trainable, controls=controls, baseline=study.read_baseline(),
                                     threads=threads, directory=str(study.path.resolve()))
    named = f" --trials {','.join(map(str, numbers))}" if retry else ""
    grid = _fit(_tuner(trainable, spec, study, name, samples=1, restore=restore, callbacks=[_ControlProgress(pending)],
                       param_space={TRIAL_KEY: tune.grid_search(sorted(controls))}),
                spec, f"adsearch scratch {study}{named}")
    results = {}
    for result in grid:
        number, metrics = (result.config or {}).get(TRIAL_KEY), result.metrics or {}
        if number not in controls:
            continue
        if result.error:
            results[number] = failed(metrics.get("error") or one_line(result.error))
        elif metrics.get("epoch") == spec.train.epochs:
            results[number] = completed(metrics)
    if results:
        study.save_scratch(results)
    unfinished = [n for n in controls if n not in results]
    if unfinished:
        raise StudyInterrupted(f"the scratch controls stopped before trial{'s' * (len(unfinished) > 1)} "
                               f"{', '.join(map(str, unfinished))} finished ({len(results)} finished and recorded); "
                               f"go on from the last epoch with: adsearch scratch {study}{named}")


def _experiment_name(rows: list[TrialRow]) -> str:
    """The Ray experiment of the controls of `rows`: 'trials-4-7-12' (hashed when long)."""
    name = "trials-" + "-".join(str(r.number) for r in sorted(rows, key=lambda r: r.number))
    return name if len(name) <= 100 else f"trials-{hashlib.sha256(name.encode()).hexdigest()[:16]}"


class _ControlProgress(tune.Callback):
    """Says each control's result as it finishes (`scratch.control_line`)."""

    def __init__(self, rows: list[TrialRow]):
        self.rows = {r.number: r for r in rows}

    def _line(self, trial, control: dict) -> None:
        row = self.rows.get((trial.config or {}).get(TRIAL_KEY))
        if row is not None:
            _DRIVER.say(control_line(row, control))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trial, completed(trial.last_result or {}))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, failed((trial.last_result or {}).get("error") or _trial_error(trial)))
