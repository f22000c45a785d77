"""A study's Ray Tune experiments, each a folder under the study's `ray/` ('baseline', 'search',
'scratch/trials-4-7'): made or restored (`tuner`), and run (`fit`) with the wait for the first
trial's placement that `resources.placement_timeout_s` sets (`callbacks.PlacementWait`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.stopper import CombinedStopper

from adsearch.errors import StudyInterrupted
from adsearch.metrics import seconds
from adsearch.results.study_dir import StudyDir
from adsearch.spec.study_spec import StudySpec
from adsearch.study.callbacks import DRIVER, PlacementWait
from adsearch.study.cluster import cluster_capacity
from adsearch.study.disk import KEPT_CHECKPOINTS, disk_error
from adsearch.study.trials import restore_named_checkpoints


def tuner(trainable, spec: StudySpec, study: StudyDir, name: str, *, search_alg=None, samples: int,
          callbacks=(), stop=None, scheduler=None, restore: bool = False, resume_errored: bool = False,
          param_space: dict | None = None) -> tune.Tuner:
    """Ray Tune's experiment `name` (a path under the study's `ray/`: 'search', 'scratch/trials-4-7');
    restored, its errored trials go on from their checkpoint with `resume_errored` (those a full
    disk stopped), else they stay as they ended."""
    per = spec.resources.per_trial
    trainable = tune.with_resources(trainable, {"cpu": per.cpu, "gpu": per.gpu})
    wait = PlacementWait()
    path = study.ray_dir / name
    if restore and path.is_dir():
        set_aside_torn_state(path)  # a full disk can have torn Ray's last snapshot: restore the one before
    if restore and tune.Tuner.can_restore(str(path.resolve())):
        restore_named_checkpoints(path)  # a hard kill can have left Tune's named checkpoints deleted
        # finished and failed trials stay as they are; unfinished ones go on from their checkpoint
        return tune.Tuner.restore(str(path.resolve()), trainable, resume_unfinished=True,
                                  resume_errored=resume_errored, restart_errored=False)
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(search_alg=search_alg, scheduler=scheduler, num_samples=samples, reuse_actors=True,
                                    max_concurrent_trials=spec.resources.max_concurrent),
        run_config=tune.RunConfig(
            name=path.name, storage_path=str(path.parent.resolve()), verbose=0,
            callbacks=[JsonLoggerCallback(), CSVLoggerCallback(), wait, *callbacks],
            stop=CombinedStopper(wait, stop) if stop is not None else wait,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=KEPT_CHECKPOINTS),
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )


STATE_FILES = ("experiment_state-*.json", "search_gen_state-*.json", "basic-variant-state-*.json",
               "searcher-state-*.pkl")
"""Ray Tune's snapshots of an experiment and of its search algorithm, one of each a run (the
newest is what a restore reads): JSON, and cloudpickles for the search algorithms."""


def set_aside_torn_state(experiment: Path) -> list[Path]:
    """Where one of Ray Tune's newest snapshot files of `experiment` (`STATE_FILES`) cannot be read (a
    write a full disk cut short), that run's snapshot files renamed to `<name>.torn`, so that Ray
    restores the run before (or, with none, starts the experiment again) instead of printing its
    traceback and starting again. Returns the files set aside."""
    import ray.cloudpickle as cloudpickle

    moved: list[Path] = []
    while True:
        newest = [max(experiment.glob(pattern), default=None) for pattern in STATE_FILES]
        torn = []
        for path in filter(None, newest):
            try:
                with path.open("rb") as f:
                    json.load(f) if path.name.startswith("experiment_state") else cloudpickle.load(f)
            except Exception:  # noqa: BLE001 - any failure to read it back: Ray's restore would fail too
                torn.append(path)
        if not torn:
            return moved
        runs = {_run_of(path) for path in [*torn, *filter(None, newest[:1])]}  # that run's files, all of them
        for path in sorted(p for pattern in STATE_FILES for p in experiment.glob(pattern) if _run_of(p) in runs):
            path.rename(path.with_name(path.name + ".torn"))
            moved.append(path)


def _run_of(path: Path) -> str:
    """The run a Ray Tune state file belongs to: the time stamp in its name ('2026-12-03_09-34-22')."""
    found = re.search(r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}", path.name)
    return found.group(0) if found else path.name


def fit(tuner: tune.Tuner, spec: StudySpec, again: str) -> tune.ResultGrid:
    """`tuner.fit()`; a run stopped because no trial was placed in time raises `StudyInterrupted`
    saying what a trial asks and what the nodes have now, one stopped because a trial could not
    write its files `DiskError` (`DRIVER.disk` says where and what the study needs); `again` is the
    command that goes on."""
    DRIVER.unplaced, DRIVER.placement_timeout_s = False, spec.resources.placement_timeout_s
    DRIVER.write_failure = None
    try:
        grid = tuner.fit()
    except Exception:  # noqa: BLE001 - `callbacks._Unplaced`, as Tune wraps it
        if not DRIVER.unplaced and DRIVER.write_failure is None:
            raise
    finally:
        DRIVER.placement_timeout_s = None
    if DRIVER.write_failure is not None:
        folder, estimate = DRIVER.disk
        raise disk_error(f"a trial failed to write its files ({DRIVER.write_failure})", folder, folder, estimate,
                         again)
    if not DRIVER.unplaced:
        return grid
    per, nodes = spec.resources.per_trial, cluster_capacity(None)
    now = ("a node that has them is there now: go on with" if nodes.fits(per.cpu, per.gpu)
           else f"no node has them ({nodes.shapes()}): add one, then go on with")
    raise StudyInterrupted(
        f"no trial was placed within resources.placement_timeout_s ({seconds(spec.resources.placement_timeout_s)}): "
        f"each asks {per.cpu:g} CPU(s) and {per.gpu:g} GPU(s) (resources.per_trial), and {now}: {again} "
        "(to wait longer, `adsearch run` the spec again with --set resources.placement_timeout_s=SECONDS)")
