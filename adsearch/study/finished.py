"""Work on a finished study: its scratch controls (`adsearch scratch`, `scratch_study`) and its
replicates (`adsearch replicate`, `replicate_study`).

Both read the study, refuse one that is running or interrupted (its front may still change), check
what was asked before Ray starts, start Ray only when something is left to train, run it on Ray Tune
under the study's lock, record it and rewrite the report (`runner.run_then_report`). The study's
spec is not changed; what is recorded already is not run again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import ray

from adsearch.errors import AdsearchError, Problems
from adsearch.results.lock import lock, owner
from adsearch.results.reading import StudyRecord, read_study
from adsearch.study.callbacks import DRIVER, Live
from adsearch.study.cluster import configure_process, prepare_ray
from adsearch.study.controls import run_controls
from adsearch.study.replicates import chosen_replicates, front_replicates, other_seeds, run_replicates
from adsearch.study.replicates import to_run as replicates_to_run
from adsearch.study.runner import (StudyResult, _starting, _threads, _warn_with, check_runnable,
                                   run_then_report)
from adsearch.study.scratch import MATCHES, controls_for, to_run
from adsearch.study.stopping import graceful_sigterm
from adsearch.train.prefixes import cache_settings

MATCH_CHOICES = ("epochs", "compute", "both")
"""What `adsearch scratch --match` takes."""


def scratch_study(directory: Path | str, *, trials: list[int] | None = None, match: str | None = None,
                  address: str | None = None, say: Callable[[str], None] = print,
                  warn: Callable[[str], None] | None = None, log_level: str = "error",
                  live: Live | None = None) -> StudyResult:
    """Run the scratch controls of the finished study in `directory` (`adsearch scratch`), then
    rewrite its report. Its spec is not changed; controls already recorded are not run again.

    Args:
        trials: the trials to control (complete, pruned, not repeats; a failed control of one named
            here is run again); default: the pruned trials on the study's Pareto front.
        match: what the controls match their trial on: 'epochs', 'compute' or 'both'; default the
            study's `search.scratch_controls`, or 'epochs' where that is off.

    Raises:
        StudyDirError: no study there, or a file of it unreadable.
        AdsearchError: the study is running or interrupted; no trial to control (none named and
            none pruned on the front); a named trial that cannot have a control; an unknown `match`.
        ResourceError: as `run_study`.
        StudyInterrupted: the controls stopped early (Ctrl-C, none placed in time); the next run goes
            on with them.
    """
    if match is not None and match not in MATCH_CHOICES:
        raise AdsearchError(f"--match must be one of {', '.join(MATCH_CHOICES)}, got {match!r}")

    def plan(record: StudyRecord):
        spec, study = record.spec, record.study_dir
        matches = {None: spec.search.scratch_matches or ("epochs",), "both": MATCHES}.get(match, (match,))
        chosen = controls_for(spec, record.rows, trials)
        numbers = [r.number for r in chosen]
        again = (f"adsearch scratch {study}" + (f" --trials {','.join(map(str, numbers))}" if trials else "")
                 + (f" --match {match}" if match else ""))

        def work() -> None:
            for m in matches:
                run_controls(spec, study, numbers, _threads(spec), say, retry=trials or (), match=m)

        return any(to_run(chosen, trials or (), m) for m in matches), work, again

    with graceful_sigterm():
        return _on_finished_study(Path(directory), "scratch", "scratch controls", plan, address, say, warn, log_level,
                                  live)


def replicate_study(directory: Path | str, *, seeds: int, trials: list[int] | None = None,
                    address: str | None = None, say: Callable[[str], None] = print,
                    warn: Callable[[str], None] | None = None, log_level: str = "error",
                    live: Live | None = None) -> StudyResult:
    """Train the baseline and the front trials of the finished study in `directory` (or the trials
    `trials`, -1 the baseline) again with other seeds, `seeds` in all counting the study's own
    (`adsearch replicate`), then rewrite its report with their means. Its spec is not changed;
    replicates already recorded are not run again.

    Raises:
        StudyDirError: no study there, or a file of it unreadable.
        AdsearchError: the study is running or interrupted; `seeds` below 2; a named trial that is no
            completed trial.
        ResourceError: as `run_study`.
        StudyInterrupted: the replicates stopped early; the next run goes on with them.
    """
    if not isinstance(seeds, int) or not 2 <= seeds <= 20:
        raise AdsearchError(f"--seeds must be a whole number from 2 to 20 (the study's own seed counted), got {seeds!r}")

    def plan(record: StudyRecord):
        spec, study = record.spec, record.study_dir
        chosen = chosen_replicates(record.rows, trials) if trials else front_replicates(spec, record.rows)
        again = (f"adsearch replicate {study} --seeds {seeds}"
                 + (f" --trials {','.join(map(str, trials))}" if trials else ""))

        def work() -> None:
            run_replicates(spec, study, trials, seeds, _threads(spec), say, prefixes=cache_settings(spec),
                           retry=trials or (), again=again)

        return bool(replicates_to_run(chosen, other_seeds(spec, seeds), trials or ())), work, again

    with graceful_sigterm():
        return _on_finished_study(Path(directory), "replicate", "replicates", plan, address, say, warn, log_level,
                                  live)


def _on_finished_study(directory: Path, command: str, what: str, plan, address: str | None,
                       say: Callable[[str], None], warn: Callable[[str], None] | None, log_level: str,
                       live: Live | None) -> StudyResult:
    """Read the study in `directory`, refuse it unless done, make `plan(record)` (every error before Ray
    starts: (whether anything is left to train, the work, the command that goes on with it)), start
    Ray if needed, then run the work under the study's lock and rewrite the report."""
    record = read_study(directory)
    study, spec = record.study_dir, record.spec
    if record.state == "running":
        raise AdsearchError(f"study {study} is running (pid {owner(study)}); its {what} can run once it is done: "
                            f"`adsearch {command} {study}`")
    if record.state == "interrupted":
        raise AdsearchError(f"study {study} is interrupted ({record.trials_done} of {record.trials_total} search "
                            f"trials done), so its Pareto front may still change: finish it with `adsearch resume "
                            f"{study}`, then `adsearch {command} {study}`")
    needed, work, again = plan(record)
    started_ray = False
    try:
        if needed:  # nothing to train: no Ray
            configure_process()
            with _starting():
                problems = Problems()
                check_runnable(spec, problems)
                started_ray = prepare_ray(spec, address, warn=warn or _warn_with(say), log_level=log_level,
                                          problems=problems)
        with lock(study), DRIVER.driving(spec, study, say, live):
            rows, files = run_then_report(spec, study, work, again, what)
    finally:
        if started_ray:
            ray.shutdown()
    return StudyResult(directory=study.path, rows=rows, files=files)
