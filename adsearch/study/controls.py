"""Running a study's scratch controls on Ray Tune and recording them in `scratch.json`.

Which trials get a control and what one trains is `adsearch.study.scratch` (it runs nothing); this
module runs them: after the search (`run_front_controls`, `search.scratch_controls`) or for the
trials `adsearch scratch` names (`run_controls`), one Ray experiment per set run together.
"""

from __future__ import annotations

import hashlib
import shutil

from ray import tune

from adsearch.errors import StudyInterrupted, one_line
from adsearch.results.checkpoints import checkpoint_path
from adsearch.results.rows import TrialRow, find
from adsearch.results.reading import collect_rows
from adsearch.results.study_dir import StudyDir, atomic_write
from adsearch.spec.study_spec import StudySpec
from adsearch.study.callbacks import ControlProgress
from adsearch.study.experiment import fit, tuner
from adsearch.study.scratch import (COMPLETE, completed, control_spec, failed, front_controls, sharing_plan, to_run,
                                   trials_text)
from adsearch.study.searcher import TRIAL_KEY
from adsearch.study.trials import control_trainable

SCRATCH_EXPERIMENTS = "scratch"
"""Where under the study's `ray/` the controls' experiments are kept, one per set of trials run together."""


def run_front_controls(spec: StudySpec, study: StudyDir, threads: int, say) -> None:
    """`search.scratch_controls`: the controls of the pruned trials on the front, after the search,
    matched on epochs, compute or both (`search.scratch_matches`)."""
    chosen = front_controls(spec, collect_rows(study, spec))
    if not chosen:
        say("scratch controls: none to run, no pruned trial is on the Pareto front")
        return
    for match in spec.search.scratch_matches:
        run_controls(spec, study, [r.number for r in chosen], threads, say, match=match)


def run_controls(spec: StudySpec, study: StudyDir, numbers: list[int], threads: int, say, *,
                 retry=(), match: str = "epochs") -> None:
    """Run the scratch controls matched on `match` ('epochs' or 'compute') of trials `numbers` not
    recorded yet (and those in `retry` whose control failed) on Ray Tune, at once as resources allow;
    record each result in scratch.json and keep each finished control's network in `trials/`.
    Controls that train alike (`scratch.same_training`) run once, and one recorded already is not
    run again for another trial: each trial gets the result and a copy of the network.

    A run stopped early is restored from `ray/scratch/<its trials>` by the next run asking for the
    same controls: finished controls are kept, running ones go on from their last epoch.

    Raises:
        StudyInterrupted: some control did not finish (Ctrl-C); those that did are recorded.
    """
    rows = collect_rows(study, spec)
    chosen = [find(rows, n) for n in numbers]
    pending = to_run(chosen, retry, match)
    recorded = [r for r in chosen if r not in pending]
    what = "scratch controls" if match == "epochs" else "equal-compute scratch controls"
    if recorded:
        say(f"{what}: {trials_text(recorded)} already recorded")
    if not pending:
        return
    specs = {r.number: control_spec(spec, r, match) for r in pending}
    if match == "epochs":
        say(f"{what}: {trials_text(pending)}, each one's final widths trained from scratch for "
            f"{spec.train.epochs} epochs without pruning")
    else:
        say(f"{what}: {trials_text(pending)}, each one's final widths trained from scratch without pruning for "
            "as many training MACs as the trial cost: " + ", ".join(f"trial {n} {s.train.epochs} epochs"
                                                                    for n, s in specs.items()))
    done = {r.number: control_spec(spec, r, match) for r in rows if r not in pending
            and (r.control(match) or {}).get("state") == COMPLETE and checkpoint_path(study, r.number, match).is_file()}
    taken, alike = sharing_plan(specs, done, rows)
    for first, takers in taken.items():
        say(f"{what}: {trials_text([find(rows, n) for n in takers])} {'train' if len(takers) > 1 else 'trains'} "
            f"what trial {first}'s recorded control did (the same final widths and recipe): its result and network "
            "are taken")
        _record_alike(study, match, first, takers)
    for first, members in alike.items():
        if len(members) > 1:
            say(f"{what}: {trials_text([find(rows, n) for n in members[1:]])} "
                f"{'train' if len(members) > 2 else 'trains'} what trial {first}'s does (the same final widths and "
                "recipe): trained once")
    specs = {n: specs[n] for members in alike.values() for n in members}  # those taken are recorded
    if not alike:
        return
    running = [find(rows, n) for n in alike]
    name = f"{SCRATCH_EXPERIMENTS}/{'compute-' if match == 'compute' else ''}{_experiment_name(running)}"
    restore = not any(r.control(match) for r in pending)  # a failed control named again starts afresh
    if not restore:
        shutil.rmtree(study.ray_dir / name, ignore_errors=True)
    controls = {n: {"spec": specs[n].model_dump(mode="json"), "widths": list(find(rows, n).widths), "match": match}
                for n in alike}
    trainable = control_trainable(controls, study, baseline=study.read_baseline(), threads=threads)
    named = (f" --trials {','.join(map(str, numbers))}" if retry else "") + (f" --match {match}" if match != "epochs"
                                                                               else "")
    grid = fit(tuner(trainable, spec, study, name, samples=1, restore=restore, resume_errored=True,
                     callbacks=[ControlProgress(running, match)],
                     param_space={TRIAL_KEY: tune.grid_search(sorted(controls))}),
               spec, f"adsearch scratch {study}{named}")
    results = {}
    for result in grid:
        number, metrics = (result.config or {}).get(TRIAL_KEY), result.metrics or {}
        if number not in controls:
            continue
        if result.error:
            results[number] = failed(metrics.get("error") or one_line(result.error))
        elif metrics.get("epoch") == specs[number].train.epochs:
            results[number] = completed(metrics)
    if results:
        study.save_scratch(results, match)
    for first in results:
        _record_alike(study, match, first, alike[first][1:])
    results.update({n: results[first] for first in list(results) for n in alike[first][1:]})
    unfinished = [n for n in specs if n not in results]
    if unfinished:
        raise StudyInterrupted(f"the {what} stopped before trial{'s' * (len(unfinished) > 1)} "
                               f"{', '.join(map(str, unfinished))} finished ({len(results)} finished and recorded); "
                               f"go on from the last epoch with: adsearch scratch {study}{named}")


def _experiment_name(rows: list[TrialRow]) -> str:
    """The Ray experiment of the controls of `rows`: 'trials-4-7-12' (hashed when long)."""
    name = "trials-" + "-".join(str(r.number) for r in sorted(rows, key=lambda r: r.number))
    return name if len(name) <= 100 else f"trials-{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def _record_alike(study: StudyDir, match: str, first: int, numbers: list[int]) -> None:
    """Record trial `first`'s control (matched on `match`) as that of each of `numbers`, whose controls
    train alike (`scratch.same_training`): the same result, and a copy of its network when it finished."""
    if not numbers:
        return
    control = study.read_scratch()[first][match]
    if control.get("state") == COMPLETE:
        for number in numbers:
            atomic_write(checkpoint_path(study, number, match),
                         lambda path: shutil.copyfile(checkpoint_path(study, first, match), path))
    study.save_scratch({n: control for n in numbers}, match)
