"""Replicates: the baseline and the front trials trained again with other seeds.

A trial's accuracy on one seed mixes what its schedule does with the luck of an initialisation and a
data order. With `search.replicates: k` (or `adsearch replicate DIR --seeds k` on a finished study)
the baseline and the pruned and unpruned trials on the Pareto front are each trained again with the
seeds `seed + 1` ... `seed + k - 1`, on Ray Tune like any trial; replicates of one seed share prefixes
through the study's cache as the search's trials do. Their results go to `replicates.json`
(`StudyDir.save_replicates`); the report shows each replicated trial's mean and standard deviation,
puts the means on the front and tests replicated trials against each other across their seeds
(`adsearch.results.seeds`).

A replicate already recorded is not run again; one stopped by Ctrl-C goes on from its last epoch
with the same command (its Ray experiment, `ray/replicates/<its set>`, is restored); one that failed
is recorded with its error and runs again when its trial is named with `--trials`.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable, Sequence

from ray import tune

from adsearch.errors import AdsearchError, StudyInterrupted, one_line
from adsearch.results.reading import collect_rows
from adsearch.results.rows import BASELINE, TrialRow, find
from adsearch.results.study_dir import StudyDir, save_replicates
from adsearch.results.view import report_view
from adsearch.spec.loading import apply_params
from adsearch.spec.study_spec import StudySpec
from adsearch.study.callbacks import ReplicateProgress
from adsearch.study.experiment import fit, tuner
from adsearch.study.scratch import FAIL, completed, failed
from adsearch.study.searcher import TRIAL_KEY
from adsearch.study.trials import replicate_trainable

REPLICATE_EXPERIMENTS = "replicates"
"""Where under the study's `ray/` the replicates' experiments are kept, one per set run together."""


def other_seeds(spec: StudySpec, seeds: int) -> list[int]:
    """The seeds a study of `spec` replicates with, `seeds` in all counting its own: seed+1, seed+2, ..."""
    return [spec.seed + i for i in range(1, seeds)]


def front_replicates(spec: StudySpec, rows: Sequence[TrialRow]) -> list[TrialRow]:
    """The trials replicated by default: the baseline and the complete search trials on the Pareto front
    (the repeats left out), by number."""
    view = report_view(spec, rows)
    chosen = [r for r in view.front_rows if r.complete and not r.is_repeat]
    if view.baseline is not None and all(r.number != BASELINE for r in chosen):
        chosen.append(view.baseline)
    return sorted((find(rows, r.number) for r in chosen), key=lambda r: r.number)


def chosen_replicates(rows: Sequence[TrialRow], numbers: Iterable[int]) -> list[TrialRow]:
    """The trials named by `numbers` (`--trials 3,5`; -1 the baseline), each checked to have completed.

    Raises:
        AdsearchError: one line for each number that is no trial, a repeat or a trial that did not complete.
    """
    chosen, problems = [], []
    for number in dict.fromkeys(numbers):
        row = find(rows, number)
        if row is None:
            problems.append(f"there is no trial {number}")
        elif row.is_repeat:
            problems.append(f"trial {number} repeats trial {row.metric('repeat_of')}: name that one")
        elif not row.complete:
            problems.append(f"trial {number} is {row.state_text}: only a completed trial is replicated")
        else:
            chosen.append(row)
    if problems:
        complete = [r.label for r in rows if r.complete and not r.is_repeat]
        raise AdsearchError("--trials: " + "; ".join(problems) + ". Completed trials: "
                            + (", ".join(complete) if complete else "none"))
    return sorted(chosen, key=lambda r: r.number)


def to_run(rows: Sequence[TrialRow], seeds: Sequence[int], retry: Iterable[int] = ()) -> list[tuple[TrialRow, int]]:
    """(trial, seed) of the replicates still to run: none recorded, or (only for trials named in
    `retry`) a failed one."""
    named = set(retry)
    return [(r, s) for r in rows for s in seeds
            if s not in r.replicates or (r.number in named and r.replicates[s].get("state") == FAIL)]


def replicate_spec(spec: StudySpec, row: TrialRow, seed: int) -> StudySpec:
    """What the replicate of trial `row` with `seed` trains: the study's spec with the trial's searched
    values put in (the baseline: pruning off) and the seed."""
    trained = spec.without_pruning() if row.is_baseline else apply_params(
        spec, {p: v for p, v in row.settings.items() if v is not None})
    return trained.model_copy(update={"seed": seed})


def replicate_line(row: TrialRow, seed: int, result: dict) -> str:
    """A replicate's progress line: 'trial 4 with seed 1: accuracy 97.2% (seed 0: 97.5%)'."""
    from adsearch.metrics import percent

    name = "the baseline" if row.is_baseline else f"trial {row.number}"
    if result.get("state") == FAIL:
        return f"{name} with seed {seed} failed: {result.get('error') or 'no reason recorded'}"
    return (f"{name} with seed {seed}: accuracy {percent(result.get('accuracy'))} (its first seed: "
            f"{percent(row.metric('accuracy'))})")


def run_replicates(spec: StudySpec, study: StudyDir, numbers: list[int] | None, seeds: int, threads: int, say, *,
                   prefixes: dict | None, retry: Iterable[int] = (), again: str = "") -> None:
    """Train the trials `numbers` (None: `front_replicates`) with the other seeds of `seeds` in all, those
    not recorded yet (and failed ones of the trials in `retry`), on Ray Tune at once as resources allow;
    record each result in replicates.json. On the front by default: the means move it, so a trial that
    comes onto it is replicated in turn, until every trial on it has been.

    Raises:
        StudyInterrupted: some replicate did not finish (Ctrl-C); those that did are recorded, and
            `again` is the command that goes on.
    """
    first = True
    while True:
        rows = collect_rows(study, spec)
        chosen = chosen_replicates(rows, numbers) if numbers else front_replicates(spec, rows)
        pending = to_run(chosen, other_seeds(spec, seeds), retry)
        if not pending:
            if first:
                say(f"replicates: {_names(chosen)} already trained with {seeds} seeds")
            return
        if not first:
            say("replicates: the means moved the Pareto front; the trials now on it:")
        _run_set(spec, study, pending, seeds, threads, say, prefixes=prefixes, again=again)
        if numbers:
            return
        first, retry = False, ()


def _run_set(spec: StudySpec, study: StudyDir, pending: list[tuple[TrialRow, int]], seeds: int, threads: int,
             say, *, prefixes: dict | None, again: str) -> None:
    """Run the replicates `pending` ((trial, seed) each) as one Ray Tune experiment and record them."""
    say(f"replicates: {_names(sorted({r.number: r for r, _ in pending}.values(), key=lambda r: r.number))} "
        f"again with seed{'s' * (seeds > 2)} {', '.join(map(str, other_seeds(spec, seeds)))} "
        f"({len(pending)} trainings)")
    jobs = {i: {"number": r.number, "seed": s, "spec": replicate_spec(spec, r, s).model_dump(mode="json")}
            for i, (r, s) in enumerate(pending)}
    name = f"{REPLICATE_EXPERIMENTS}/{_experiment_name(pending)}"
    restore = not any(s in r.replicates for r, s in pending)  # a failed one named again starts afresh
    if not restore:
        shutil.rmtree(study.ray_dir / name, ignore_errors=True)
    trainable = replicate_trainable(jobs, study, threads=threads, prefixes=prefixes)
    grid = fit(tuner(trainable, spec, study, name, samples=1, restore=restore, resume_errored=True,
                     callbacks=[ReplicateProgress({i: (r, s) for i, (r, s) in enumerate(pending)}, replicate_line)],
                     param_space={TRIAL_KEY: tune.grid_search(sorted(jobs))}), spec, again)
    results: dict[int, dict[int, dict]] = {}
    for result in grid:
        job, metrics = jobs.get((result.config or {}).get(TRIAL_KEY)), result.metrics or {}
        if job is None:
            continue
        if result.error:
            results.setdefault(job["number"], {})[job["seed"]] = failed(metrics.get("error") or one_line(result.error))
        elif metrics.get("epoch") == spec.train.epochs:
            results.setdefault(job["number"], {})[job["seed"]] = completed(metrics)
    if results:
        save_replicates(study, results)
    done = sum(len(v) for v in results.values())
    if done < len(pending):
        raise StudyInterrupted(f"the replicates stopped before {len(pending) - done} of {len(pending)} finished "
                               f"({done} finished and recorded); go on from the last epoch with: {again}")


def _names(rows: Sequence[TrialRow]) -> str:
    """'the baseline and trials 3, 5'."""
    trials = [str(r.number) for r in rows if not r.is_baseline]
    parts = (["the baseline"] if any(r.is_baseline for r in rows) else []) + (
        [f"trial{'s' * (len(trials) > 1)} {', '.join(trials)}"] if trials else [])
    return " and ".join(parts) or "no trial"


def _experiment_name(pending: Sequence[tuple[TrialRow, int]]) -> str:
    """The Ray experiment of a set of replicates: 'b-4-7_s1-2' (hashed when long)."""
    numbers = sorted({r.number for r, _ in pending})
    seeds = sorted({s for _, s in pending})
    name = "-".join("b" if n == BASELINE else str(n) for n in numbers) + "_s" + "-".join(map(str, seeds))
    return name if len(name) <= 100 else hashlib.sha256(name.encode()).hexdigest()[:16]
