"""What Ray runs in a worker: the trainables of a study's trials and the checkpoint they resume from.

`search_trainable` (the baseline and the search trials) and `control_trainable` (the scratch
controls) give Ray Tune the trainable with the study's fixed arguments; each trial trains by
`trainer.run_trial`, reports every epoch with its state as a Ray checkpoint (`CHECKPOINT_FILE`),
and keeps its live entry (`adsearch.results.live`) in the study's `live/` while it runs.

Why a resumed trial trains some epochs again. Ray Tune restores an unfinished trial from the
checkpoint that its experiment's newest snapshot (`ray/<experiment>/experiment_state-*.json`)
names, and it writes that snapshot only every ten seconds or so, or once a trial has saved
`KEPT_CHECKPOINTS` checkpoints since the last one, and copies it into the study folder in the
background. The worker writes each epoch's checkpoint into the trial folder when it reports, before
the driver takes the report in. A hard kill (SIGKILL, a lost node) therefore leaves checkpoints newer
than the one the snapshot names, and the resumed trial trains those epochs again: at most the
epoch in flight and the few since the last snapshot. They are not worth skipping: starting from
the newest file on disk would pass over reports the driver never saw, and the checkpoint holds
the weights, the optimizer, the schedule and every random state (the torch and CUDA generators,
the shuffle), so an epoch trained again gives the record it gave the first time (on a CPU bit for
bit; the kill test of `tests/study/test_runner.py` checks it line by line). Ctrl-C and SIGTERM
stop through Ray, which writes the snapshot last: nothing is trained again.

The same lag can leave the named checkpoint deleted: Tune deletes a trial's older checkpoints as
soon as it takes newer ones in, before a snapshot names them, which a burst of reports (a trial's
branch epochs from the prefix cache) makes likely. Ray would fail such a trial ("does not exist on
storage anymore"), so before a restore `restore_named_checkpoints` puts in its place the newest
checkpoint whose report the driver logged (or, with none, lets the trial start again).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Iterator

import ray
import torch
from ray import tune
from ray.tune.execution.experiment_state import _find_newest_experiment_checkpoint
from ray.tune.trainable.metadata import _TrainingRunMetadata

from adsearch.errors import one_line
from adsearch.models.saving import save_torch
from adsearch.metrics import METRICS, with_ratios
from adsearch.results.rows import BASELINE, TRACE
from adsearch.results.checkpoints import save_checkpoint
from adsearch.results.live import end_live, live_entry, save_live
from adsearch.results.study_dir import StudyDir
from adsearch.spec.loading import apply_params
from adsearch.spec.study_spec import StudySpec
from adsearch.study.searcher import TRIAL_KEY
from adsearch.train.prefixes import PrefixCache
from adsearch.train.trainer import run_trial

CHECKPOINT_FILE = "trial.pt"
"""The file in each of Ray's checkpoint folders (what a trial resumes from)."""


def search_trainable(base: StudySpec, study: StudyDir, *, baseline: dict | None, threads: int,
                     base_widths: list[int], prefixes: dict | None):
    """Ray's trainable of the baseline or the search trials: each trains `base` with its config put
    in (`_trainable`); `baseline` (None: the baseline itself) gives the ratios it reports."""
    return tune.with_parameters(_trainable, base=base.model_dump(mode="json"), baseline=baseline, threads=threads,
                                base_widths=base_widths, directory=str(study.path.resolve()), prefixes=prefixes)


def control_trainable(controls: dict, study: StudyDir, *, baseline: dict | None, threads: int):
    """Ray's trainable of the scratch controls `controls` (trial number -> its spec and widths;
    `_control_trainable`), reporting ratios against `baseline`."""
    return tune.with_parameters(_control_trainable, controls=controls, baseline=baseline, threads=threads,
                                directory=str(study.path.resolve()))


def replicate_trainable(replicates: dict, study: StudyDir, *, threads: int, prefixes: dict | None):
    """Ray's trainable of the replicates `replicates` (an id -> the trial number, its seed and the spec
    it trains; `_replicate_trainable`)."""
    return tune.with_parameters(_replicate_trainable, replicates=replicates, threads=threads,
                                directory=str(study.path.resolve()), prefixes=prefixes)


def _replicate_trainable(config: dict, *, replicates: dict, threads: int, directory: str,
                         prefixes: dict | None):
    """One replicate as a Ray Tune trial: trial `number` (-1 the baseline) trained again with another
    seed, `replicates[config[TRIAL_KEY]]`. It shares prefixes through the study's cache with the
    other replicates of its seed (the cache's key holds the seed); its network is not kept."""
    torch.set_num_threads(threads)
    replicate = replicates[config[TRIAL_KEY]]
    number, seed = replicate["number"], replicate["seed"]
    spec = StudySpec.model_validate(replicate["spec"])
    restored = tune.get_checkpoint()
    checkpoint = load_checkpoint(Path(restored.path)) if restored is not None else None
    study = StudyDir(directory)
    prefixes = PrefixCache.of(prefixes, owner=number)

    with _live_entry(study, "replicate", number, {"seed": seed}, spec, checkpoint) as show:
        def report_epoch(metrics: dict, state: dict) -> None:
            show(metrics)
            _report({**metrics, "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}, state)

        try:
            run_trial(spec, report=report_epoch, checkpoint=checkpoint, prefixes=prefixes)
        except Exception as exc:
            tune.report({"error": one_line(exc), **{m: math.nan for m in METRICS}})
            raise


def _trainable(config: dict, *, base: dict, baseline: dict | None, threads: int, base_widths: list[int],
               directory: str, prefixes: dict | None):
    """One Ray Tune trial: the base spec with `config` put in, trained by `run_trial`; its final
    state kept in the study directory by trial number (`config[TRIAL_KEY]`; none: the baseline).
    With `prefixes` (`prefixes.cache_settings`) it shares prefixes through the prefix cache."""
    torch.set_num_threads(threads)
    number = config.get(TRIAL_KEY, BASELINE)
    spec = apply_params(StudySpec.model_validate(base), {k: v for k, v in config.items() if k != TRIAL_KEY})
    restored = tune.get_checkpoint()
    checkpoint = load_checkpoint(Path(restored.path)) if restored is not None else None
    study = StudyDir(directory)
    prefixes = PrefixCache.of(prefixes, owner=number)
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
                save_checkpoint(study, number, state)  # before the report that finishes the trial
            _report(flat, state)

        try:
            run_trial(spec, report=report_epoch, checkpoint=checkpoint, prefixes=prefixes)
        except Exception as exc:
            # the searcher sees results, not exceptions: report the reason, then fail the trial
            tune.report({"error": one_line(exc), **{m: math.nan for m in METRICS}})
            raise


def _control_trainable(config: dict, *, controls: dict, baseline: dict | None, threads: int, directory: str):
    """One scratch control as a Ray Tune trial: `controls[config[TRIAL_KEY]]` holds the spec it
    trains (`scratch.control_spec`), the widths it starts at and what it matches its trial on
    (`match`: 'epochs' or 'compute'); no prefix cache. Its final state is kept in the study's `trials/`
    beside its trial's (`results.checkpoints`): a control that beats its trial is a network to export."""
    torch.set_num_threads(threads)
    number = config[TRIAL_KEY]
    control = controls[number]
    match = control.get("match", "epochs")
    spec = StudySpec.model_validate(control["spec"])
    restored = tune.get_checkpoint()
    checkpoint = load_checkpoint(Path(restored.path)) if restored is not None else None
    study = StudyDir(directory)

    with _live_entry(study, "control" if match == "epochs" else "compute control", number, {}, spec,
                     checkpoint) as show:
        def report_epoch(metrics: dict, state: dict) -> None:
            show(metrics)
            if metrics["epoch"] == spec.train.epochs:
                save_checkpoint(study, number, state, control=match)  # before the report that finishes it
            _report({**with_ratios(metrics, baseline), "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}, state)

        try:
            run_trial(spec, report=report_epoch, checkpoint=checkpoint, widths=control["widths"])
        except Exception as exc:
            tune.report({"error": one_line(exc), **{m: math.nan for m in METRICS}})
            raise


@contextlib.contextmanager
def _live_entry(study: StudyDir, kind: str, number: int, settings: dict, spec: StudySpec,
                checkpoint: dict | None) -> Iterator[Callable[[dict], None]]:
    """The trial's live entry (`adsearch.results.live`) in the study's `live/`: written now and by the function
    given after each epoch (with the epoch's metrics), removed when the trial ends. A write that
    fails is skipped: the display is not worth a trial."""
    started, first_epoch = time.time(), (checkpoint or {}).get("epoch", 0)

    def show(metrics: dict | None) -> None:
        try:
            save_live(study, live_entry(kind=kind, number=number, settings=settings, epochs=spec.train.epochs,
                                        metrics=metrics, started=started, first_epoch=first_epoch))
        except OSError:
            pass

    show(None)
    try:
        yield show
    finally:
        end_live(study, kind, number, settings.get("seed") if kind == "replicate" else None)


def _report(flat: dict, state: dict) -> None:
    """Report an epoch's results to Ray Tune with the trial's state as the checkpoint it resumes from."""
    with tempfile.TemporaryDirectory() as d:
        save_torch(state, Path(d) / CHECKPOINT_FILE)
        tune.report(flat, checkpoint=tune.Checkpoint.from_directory(d))


def load_checkpoint(path: Path) -> dict | None:
    """The trial checkpoint in Ray checkpoint dir `path`, or the newest readable one before it.

    A checkpoint that cannot be read (a torn or corrupt file) is skipped with a warning, so a
    trial falls back to its previous epoch instead of failing or starting again; an empty folder
    (`restore_named_checkpoints` made it: the trial starts again) is passed over without one.
    """
    candidates = sorted(path.parent.glob("checkpoint_*"), reverse=True)
    candidates = [c for c in candidates if c.name <= path.name] or [path]
    for directory in candidates:
        if directory.is_dir() and not (directory / CHECKPOINT_FILE).exists():
            continue  # made empty by `restore_named_checkpoints`: nothing there to go on from
        try:
            return torch.load(directory / CHECKPOINT_FILE, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file means: try the one before
            warnings.warn(f"checkpoint {directory / CHECKPOINT_FILE} is unreadable ({exc}); "
                          "falling back to the one before", stacklevel=1)
    return None


def restore_named_checkpoints(experiment: Path) -> None:
    """Each checkpoint folder of an unfinished trial that Ray Tune experiment `experiment`'s newest
    snapshot names, where the folder is gone, made again before the experiment is restored: the
    one the trial goes on from as a copy of the trial's newest readable checkpoint of an epoch its
    result.json has (what the driver took in), the older ones, which Tune will only delete, empty.
    Without such a checkpoint (the driver's log lost its last lines) the one it goes on from is made
    empty too: the trial starts again (`load_checkpoint`), from the prefix cache where it can, and
    gives the same record. A snapshot that cannot be read (a full disk tore it) is left to Ray."""
    snapshot = _find_newest_experiment_checkpoint(str(experiment.resolve()))
    try:
        trials = json.loads(Path(snapshot).read_text())["trial_data"] if snapshot else []
    except (OSError, ValueError, KeyError):
        return
    for state, runtime in trials:
        trial = json.loads(state)
        kept = _TrainingRunMetadata.from_json_state(runtime).checkpoint_manager
        latest, folder = kept.latest_checkpoint_result, experiment / trial["relative_logdir"]
        if trial.get("status") == "TERMINATED" or latest is None:
            continue
        if (folder / Path(latest.checkpoint.path).name).exists():
            continue
        source = _newest_logged_checkpoint(folder)
        older = [r for r in kept.best_checkpoint_results if r is not latest]
        for result in [*older, latest]:  # the one restored from last: a kill meanwhile repairs again
            missing = folder / Path(result.checkpoint.path).name
            if missing.exists():
                continue
            partial = folder / f".{missing.name}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            if result is latest and source is not None:
                shutil.copytree(source, partial)
            else:  # empty: Tune only deletes it, or (the one restored from) the trial starts again
                partial.mkdir()
            partial.rename(missing)


def _newest_logged_checkpoint(folder: Path) -> Path | None:
    """Trial folder `folder`'s newest readable checkpoint folder of an epoch that its result.json has
    (an epoch the driver took in), or None."""
    logged = set()
    for line in (folder / "result.json").read_text().splitlines() if (folder / "result.json").exists() else []:
        with contextlib.suppress(ValueError):  # a line being written when the run was killed
            logged.add(json.loads(line).get("epoch"))
    for directory in sorted(folder.glob("checkpoint_*"), reverse=True):
        try:
            epoch = torch.load(directory / CHECKPOINT_FILE, weights_only=True)["epoch"]
        except Exception:  # noqa: BLE001 - torn or empty: an older one
            continue
        if epoch in logged:
            return directory
    return None
