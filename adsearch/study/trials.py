"""What Ray runs in a worker: the trainables of a study's trials and the checkpoint they resume from.

`search_trainable` (the baseline and the search trials) and `control_trainable` (the scratch
controls) give Ray Tune the trainable with the study's fixed arguments; each trial trains by
`trainer.run_trial`, reports every epoch with its state as a Ray checkpoint (`CHECKPOINT_FILE`),
and keeps its live entry (`adsearch.results.live`) in the study's `live/` while it runs.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Iterator

import ray
import torch
from ray import tune

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
                     base_widths: list[int], branches: list[int] | None):
    """Ray's trainable of the baseline or the search trials: each trains `base` with its config put
    in (`_trainable`); `baseline` (None: the baseline itself) gives the ratios it reports."""
    return tune.with_parameters(_trainable, base=base.model_dump(mode="json"), baseline=baseline, threads=threads,
                                base_widths=base_widths, directory=str(study.path.resolve()), branches=branches)


def control_trainable(controls: dict, study: StudyDir, *, baseline: dict | None, threads: int):
    """Ray's trainable of the scratch controls `controls` (trial number -> its spec and widths;
    `_control_trainable`), reporting ratios against `baseline`."""
    return tune.with_parameters(_control_trainable, controls=controls, baseline=baseline, threads=threads,
                                directory=str(study.path.resolve()))


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
        end_live(study, kind, number)


def _report(flat: dict, state: dict) -> None:
    """Report an epoch's results to Ray Tune with the trial's state as the checkpoint it resumes from."""
    with tempfile.TemporaryDirectory() as d:
        save_torch(state, Path(d) / CHECKPOINT_FILE)
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
