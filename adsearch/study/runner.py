"""A study: Ray Tune runs the trials, Optuna samples them.

`run_study(spec)` makes `reports/<name>/`, runs the baseline (the same recipe, pruning off),
then the search: Ray Tune's `OptunaSearch` over `search.space`, multi-objective over
`search.objectives`, with Optuna's storage in `study.db`. Every trial's metrics, ratios against
the baseline, widths and failure reason are kept as Optuna user attributes, so `study.db` plus
`baseline.json` are the whole record; `trials.csv`, `pareto.csv` and the report are made from them.

After the search, with `search.replicates` the baseline and the front trials are trained again with
other seeds (`adsearch.study.replicates`), and with `search.scratch_controls` the pruned front
trials' final widths from scratch (`adsearch.study.scratch`, `adsearch.study.controls`); both run on a
finished study too (`adsearch.study.finished`: `adsearch replicate`, `adsearch scratch`).

The parts a study runs on: what runs in a Ray worker (`adsearch.study.trials`), the Tune callbacks
and the driver they report to (`adsearch.study.callbacks`), each Ray Tune experiment's set-up and
fit (`adsearch.study.experiment`). The Optuna side of the search (space, sampler, the searcher,
counting trials in the storage) is `adsearch.study.searcher`, the only module that touches Ray's or
Optuna's private attributes; Ray's start-up and the process settings a study needs are
`adsearch.study.cluster`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import ray

from adsearch.errors import AdsearchError, Problems, StudyDirError, StudyInterrupted, one_line
from adsearch.metrics import count, percent, seconds
from adsearch.report import writer as report
from adsearch.results.rows import RECORDED, TRACE, TrialRow, baseline_row, plain
from adsearch.results.lock import lock
from adsearch.results.ownership import check_can_run, mark, remove, start
from adsearch.results.reading import collect_rows, search_ended
from adsearch.results.study_dir import StudyDir
from adsearch.spec.space import space_size
from adsearch.spec.study_spec import StudySpec
from adsearch.study.callbacks import DRIVER, Live, SearchProgress
from adsearch.study.cluster import cluster_capacity, configure_process, prepare_ray
from adsearch.study.controls import run_front_controls
from adsearch.study.disk import DiskEstimate, check_space, checkpoint_bytes, write_errors, write_failure
from adsearch.study.early_stop import RungScheduler
from adsearch.study.experiment import fit, tuner
from adsearch.study.replicates import run_replicates
from adsearch.study.stopping import graceful_sigterm
from adsearch.study.searcher import (FailureLimit, Searcher, failed_count, finished_count, make_sampler, open_storage,
                                     optuna_space, set_metric_names, stopped_by_disk)
from adsearch.study.trials import search_trainable
from adsearch.train.prefixes import cache_dir, cache_settings, cache_size
from adsearch.train.trainer import build_model, steps_per_epoch


@dataclass
class StudyResult:
    """What a run of a study returns: its directory, its trials' rows and the report's files by name."""

    directory: Path
    rows: list[TrialRow]
    files: dict[str, Path]


# --- the study -------------------------------------------------------------------------------


def check_runnable(spec: StudySpec, problems: Problems | None = None) -> tuple[list[int], int] | None:
    """Build the data and the network once, before anything is written; return the base widths and
    the size of a checkpoint of it (`disk.checkpoint_bytes`). Their problems go to `problems` (None
    then), else they are raised (`Problems.raise_found`)."""
    from adsearch.prune.compress import group_widths
    from adsearch.data.registry import load_data
    from adsearch.prune.graph import channel_groups

    found = problems if problems is not None else Problems()
    data = found.check(load_data, spec.data, spec.seed)
    model = None
    if data is not None:
        found.check(steps_per_epoch, spec.train, data.n_train)
        model = found.check(build_model, spec, data)
    if problems is None:
        found.raise_found()
    return (group_widths(model, channel_groups(model)), checkpoint_bytes(spec, model)) if model is not None else None


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
        StudyInterrupted: it stopped early (Ctrl-C or SIGTERM, `search.max_failures`, no trial placed within
            `resources.placement_timeout_s`); it can resume.
    """
    with graceful_sigterm():
        return _run_study(spec, Path(reports_dir), address, fresh, say, warn, log_level, live)


def _run_study(spec: StudySpec, reports_dir: Path, address: str | None, fresh: bool, say: Callable[[str], None],
               warn: Callable[[str], None] | None, log_level: str, live: Live | None) -> StudyResult:
    configure_process()
    started_ray = False
    try:
        with _starting():  # every problem found before anything is written, said together
            problems, warn = Problems(), warn or _warn_with(say)
            runnable = check_runnable(spec, problems)
            study = StudyDir(reports_dir / spec.name)
            resuming = problems.check(check_can_run, study, spec, fresh=fresh)  # reads only
            if runnable is not None:
                base_widths, checkpoint = runnable
                estimate = DiskEstimate.of(spec, checkpoint)
                check_space(study.path, estimate, warn)
            started_ray = prepare_ray(spec, address, warn=warn, log_level=log_level, problems=problems)
        with write_errors(study.path, estimate, f"adsearch resume {study}"):
            if fresh and study.path.exists():
                remove(study)
                say(f"deleted the earlier study in {study} (--fresh)")
            study.path.mkdir(parents=True, exist_ok=True)
            with lock(study), DRIVER.driving(spec, study, say, live, estimate):
                if not check_can_run(study, spec):  # again under the lock: another run may have begun
                    start(study, spec)
                else:
                    mark(study, spec)  # a study from before the marker gets one
                if resuming:
                    say(f"resuming study {spec.name!r} in {study}")
                threads = _threads(spec)
                try:
                    baseline = None
                    if spec.search.baseline:
                        baseline = _run_baseline(spec, study, threads, base_widths, say)
                        if DRIVER.board is not None:
                            DRIVER.board.set_baseline(baseline_row(baseline))
                    _run_search(spec, study, baseline, threads, base_widths, say)
                    if spec.search.replicates > 1:  # the baseline and the front with the other seeds
                        run_replicates(spec, study, None, spec.search.replicates, threads, say,
                                       prefixes=cache_settings(spec), again=f"adsearch resume {study}")
                except (StudyInterrupted, KeyboardInterrupt) as exc:
                    report.write_report(study.path, spec, collect_rows(study, spec), state="interrupted")
                    if isinstance(exc, KeyboardInterrupt):  # a stop between Ray Tune's runs
                        raise _interrupted(study, "interrupted") from None
                    raise
                _end_prefixes(spec, study, say)  # the search is done; the controls share nothing
                controls = (lambda: run_front_controls(spec, study, threads, say)) if spec.search.scratch_matches \
                    else (lambda: None)
                rows, files = run_then_report(spec, study, controls, f"adsearch scratch {study}")
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


def run_then_report(spec: StudySpec, study: StudyDir, work: Callable[[], None], again: str, what: str = "scratch controls"):
    """Run what a done study runs on (`work()`: its scratch controls, its replicates), then write its
    report: also when they stop early (Ctrl-C, SIGTERM; `StudyInterrupted` goes on up, saying `again`,
    the command that goes on), with those that finished. Returns the rows and the files."""
    try:
        work()
    except (StudyInterrupted, KeyboardInterrupt) as exc:  # the study is done, less some of `what`
        report.write_report(study.path, spec, collect_rows(study, spec), state="done")
        if isinstance(exc, KeyboardInterrupt):  # a stop outside Ray Tune's run of them
            raise StudyInterrupted(f"the {what} were interrupted (those that finished are recorded); "
                                   f"go on from the last epoch with: {again}") from None
        raise
    rows = collect_rows(study, spec)
    return rows, report.write_report(study.path, spec, rows, state="done")


def _warn_with(say: Callable[[str], None]) -> Callable[[str], None]:
    return lambda message: say(f"warning: {message}")

def _threads(spec: StudySpec) -> int:
    """The torch threads of each trial: `train.threads`, else the CPUs a trial asks Ray for."""
    return spec.train.threads or max(1, int(spec.resources.per_trial.cpu))


@contextlib.contextmanager
def _starting() -> Iterator[None]:
    """A stop (Ctrl-C, SIGTERM) while a study starts (its data and network checked, Ray started),
    before anything of it is written, as a `StudyInterrupted` that says so."""
    try:
        yield
    except KeyboardInterrupt:
        raise StudyInterrupted("interrupted while starting, before anything was written; "
                               "run the same command again") from None


def _interrupted(directory: StudyDir | Path, what: str) -> StudyInterrupted:
    return StudyInterrupted(f"{what}; finished trials are kept and running ones checkpointed each epoch. "
                            f"Resume with: adsearch resume {directory}")


def _end_prefixes(spec: StudySpec, study: StudyDir, say) -> None:
    """Say how large the shared prefix cache is now and where (its least recently used states have
    gone as trials wrote, to stay within `search.prefix_cache_gb`)."""
    if not spec.search.share_prefixes:
        return
    directory = cache_dir(spec)
    entries, size = cache_size(directory)
    if entries:
        say(f"prefix cache: {entries} states, {size / 1e6:.1f} MB in {directory}, kept for later studies "
            f"(at most {spec.search.prefix_cache_gb:g} GB; `adsearch cache` lists and clears it)")


def _run_baseline(spec: StudySpec, study: StudyDir, threads: int, base_widths: list[int], say) -> dict:
    done = study.read_baseline()
    if done is not None:
        return done
    say(f"baseline: {spec.train.epochs} epochs without pruning")
    trainable = search_trainable(spec.without_pruning(), study, baseline=None, threads=threads, base_widths=base_widths,
                                 prefixes=cache_settings(spec))
    # a baseline that failed for its recipe fails again the same way; one a full disk stopped goes on
    grid = fit(tuner(trainable, spec, study, "baseline", samples=1, restore=True, resume_errored=True), spec,
               f"adsearch resume {study}")
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
    trainable = search_trainable(spec, study, baseline=baseline, threads=threads, base_widths=base_widths,
                                 prefixes=cache_settings(spec))
    progress = SearchProgress(spec.search.trials, baseline, spec.report.max_accuracy_drop, url, spec.name,
                              size_tolerance=spec.report.size_tolerance, stops=spec.search.early_stop is not None)
    stopper = FailureLimit(spec.search.max_failures, url, spec.name)
    _check_failure_limit(spec, study, storage)  # failures before a resume count
    if DRIVER.board is not None:
        DRIVER.board.totals(spec.search.trials, done_before=_count(finished_count, storage, spec.name),
                            concurrent=_concurrency(spec), failed_before=_count(failed_count, storage, spec.name))
    say(f"search: {spec.search.trials} trials, sampler {spec.search.sampler}, objectives "
        + ", ".join(f"{o.metric} ({o.mode})" for o in objectives))
    rungs = RungScheduler(spec.search.early_stop, objectives, url, spec.name) if spec.search.early_stop else None
    fit(tuner(trainable, spec, study, "search", search_alg=searcher, samples=spec.search.trials,
              callbacks=[progress, stopper], stop=stopper, scheduler=rungs, restore=True,
              resume_errored=stopped_by_disk(storage, spec.name)), spec, f"adsearch resume {study}")
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
        if write_failure(exc) is not None:  # a full disk: `write_errors` says so
            raise
        raise StudyDirError(f"{study.db_file} cannot be opened as an Optuna storage ({one_line(exc)}); "
                            "the other files of the study are untouched") from None
