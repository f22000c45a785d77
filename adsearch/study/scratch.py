"""Scratch controls: a pruned trial's final widths trained from scratch (Liu et al., "Rethinking the
Value of Network Pruning", ICLR 2019).

A trial that pruned in training ends with narrower widths than it began with. Its *control* trains
a network of those final widths from the start, with the trial's own recipe (its searched values
kept: a searched learning rate too), the same seed, and pruning off. Matched on *epochs*, it trains
as many epochs as the trial: if it is as accurate, pruning in training bought no accuracy, only the
cheaper schedule the control also has (it trains the small network from epoch 1, so its training
MACs are at most the trial's). Matched on *compute*, it trains as many epochs as bring its training
MACs nearest the trial's (`compute_epochs`): the fair comparison when the question is what to do
with a training budget (Liu et al., "Scratch-B"; Blalock et al.).

This module decides which trials get a control, what a control trains and what is recorded of it;
it runs nothing. The study runs them on Ray Tune (after the search with `search.scratch_controls`,
or on a finished study with `finished.scratch_study`, `adsearch scratch`), and the study directory
keeps their results (`results.study_dir.StudyDir.save_scratch`, read back as `TrialRow.scratch`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from adsearch.errors import AdsearchError
from adsearch.metrics import METRICS, count, percent
from adsearch.prune.cost import train_macs
from adsearch.results.rows import TrialRow, find, plain
from adsearch.spec.loading import apply_params
from adsearch.spec.study_spec import StudySpec
from adsearch.results.view import report_view

MATCHES = ("epochs", "compute")
"""What a control matches its trial on: the epochs, or the training compute (MACs)."""
COMPLETE, FAIL = "COMPLETE", "FAIL"
"""A recorded control's `state`: trained to the last epoch, or failed (its `error` says why)."""


def completed(result: dict) -> dict:
    """What is recorded of a control that trained to the end (its last report, `result`): `state`
    COMPLETE, its `METRICS`, its `widths` and which test samples it got right (`correct`)."""
    return {"state": COMPLETE, **{k: plain(result[k]) for k in (*METRICS, "widths", "correct") if k in result}}


def failed(error: str) -> dict:
    """What is recorded of a control that failed: `state` FAIL and the `error`, one line."""
    return {"state": FAIL, "error": error}


def pruned(row: TrialRow) -> bool:
    """Whether the trial ended narrower than it began: its widths differ from its base widths. A
    trial that kept its base widths trained what the baseline trains; its control would be the baseline."""
    return row.widths is not None and row.base_widths is not None and list(row.widths) != list(row.base_widths)


def front_controls(spec: StudySpec, rows: Sequence[TrialRow]) -> list[TrialRow]:
    """The trials that get a control by default: the pruned search trials on the study's Pareto front
    (`view.ReportView.front_rows`), the baseline and the repeats left out, by trial number."""
    view = report_view(spec, rows)
    return sorted((r for r in view.front_rows if r.in_budget and r.complete and pruned(r)), key=lambda r: r.number)


def chosen_controls(rows: Sequence[TrialRow], numbers: Iterable[int]) -> list[TrialRow]:
    """The trials named by `numbers` (`--trials 3,5`), each checked to be one a control can train.

    Raises:
        AdsearchError: one line for each number that is no trial, the baseline, a repeat, a trial
            that did not complete (with its state and error), or one that was not pruned.
    """
    chosen, problems = [], []
    for number in dict.fromkeys(numbers):
        row = find(rows, number)
        if row is None:
            problems.append(f"there is no trial {number}")
        elif row.is_baseline:
            problems.append("the baseline is not pruned: its control would be itself")
        elif row.is_repeat:
            problems.append(f"trial {number} repeats trial {row.metric('repeat_of')}: name that one")
        elif not row.complete:
            problems.append(f"trial {number} is {row.state_text}{f' ({row.error})' if row.error else ''}: a control "
                            "trains the final widths of a completed trial")
        elif not pruned(row):
            problems.append(f"trial {number} kept its base widths: its control would be the baseline")
        else:
            chosen.append(row)
    if problems:
        complete = sorted(r.number for r in rows if r.in_budget and r.complete and pruned(r))
        raise AdsearchError("--trials: " + "; ".join(problems) + ". Pruned completed trials: "
                            + (", ".join(map(str, complete)) if complete else "none"))
    return sorted(chosen, key=lambda r: r.number)


def controls_for(spec: StudySpec, rows: Sequence[TrialRow], numbers: Iterable[int] | None = None) -> list[TrialRow]:
    """The trials to control: those named by `numbers` (`chosen_controls`), else `front_controls`.

    Raises:
        AdsearchError: a named trial that cannot have a control (see `chosen_controls`), or none
            named and no pruned trial on the front (the message lists the front).
    """
    if numbers:
        return chosen_controls(rows, numbers)
    chosen = front_controls(spec, rows)
    if not chosen:
        front = ", ".join("the baseline" if r.is_baseline else f"trial {r.number}" + ("" if pruned(r) else
                          " (kept its base widths)") for r in report_view(spec, rows).front_rows)
        raise AdsearchError(f"no pruned trial is on the Pareto front of study {spec.name!r} (the front: "
                            f"{front or 'empty'}), so no scratch control to run; name completed pruned trials "
                            "with --trials, e.g. --trials 3,5")
    return chosen


def to_run(rows: Sequence[TrialRow], numbers: Iterable[int] | None = None, match: str = "epochs") -> list[TrialRow]:
    """Of the trials that get a control matched on `match`, those still to run: no such control
    recorded, or (only when named in `numbers`) a failed one, which is tried again."""
    named = set(numbers or ())
    return [r for r in rows if r.control(match) is None
            or (r.number in named and r.control(match).get("state") == FAIL)]


def compute_epochs(spec: StudySpec, row: TrialRow) -> int:
    """The epochs of trial `row`'s control at equal compute: those whose training MACs (the final
    network's forward MACs, x3, for the samples the trial's last epoch trained on) come nearest the
    trial's `train_macs`; never fewer than `train.epochs` (a trial cannot cost less than its final
    network trained for its epochs). Without the figures (a study recorded before them), `train.epochs`."""
    macs, spent = row.metric("macs"), row.metric("train_macs")
    samples = (row.history[-1] if row.history else {}).get("samples")
    if not (macs and spent and samples):
        return spec.train.epochs
    return max(spec.train.epochs, round(spent / train_macs(macs, samples)))


def control_spec(spec: StudySpec, row: TrialRow, match: str = "epochs") -> StudySpec:
    """What trial `row`'s control matched on `match` trains (at the trial's final widths): the study's
    spec with the trial's searched values put in, pruning off, the same seed; the same epochs, or at
    equal compute `compute_epochs` (the learning-rate schedule spans them)."""
    control = apply_params(spec, {p: v for p, v in row.settings.items() if v is not None}).without_pruning()
    if match == "compute":
        epochs = compute_epochs(control, row)
        control = control.model_copy(update={"train": control.train.model_copy(update={"epochs": epochs})})
    return control


def trials_text(rows: Sequence[TrialRow]) -> str:
    """'trial 4' or 'trials 4, 7, 12'."""
    return f"trial{'s' if len(rows) != 1 else ''} " + ", ".join(str(r.number) for r in rows)


def control_name(row: TrialRow, match: str = "epochs") -> str:
    """'scratch control of trial 4', 'equal-compute scratch control of trial 4'."""
    return f"{'equal-compute ' if match == 'compute' else ''}scratch control of trial {row.number}"


def control_line(row: TrialRow, control: dict, match: str = "epochs") -> str:
    """A control's progress line: 'scratch control of trial 4: accuracy 97.2% (trial 97.5%), train MACs
    14.0G (trial 117G)', or 'scratch control of trial 4 failed: <error>'; at equal compute its epochs too."""
    name = control_name(row, match)
    if control.get("state") == FAIL:
        return f"{name} failed: {control.get('error') or 'no reason recorded'}"
    epochs = f" ({control.get('epoch')} epochs)" if match == "compute" else ""
    return (f"{name}{epochs}: accuracy {percent(control.get('accuracy'))} "
            f"(trial {percent(row.metric('accuracy'))}), train MACs {count(control.get('train_macs'))} "
            f"(trial {count(row.metric('train_macs'))})")


def same_training(specs: dict[int, StudySpec], rows: Sequence[TrialRow]) -> dict[int, list[int]]:
    """The controls `specs` (trial number -> what its control trains) that train alike, grouped: the
    first trial of each group (in the order of `specs`) -> every trial in it. Two controls train
    alike when they start at the same widths with the same spec but its pruning section, which a
    control does not use (trials that differ only in which channels a cut kept, `pruning.criterion`,
    end at the same widths when they cut from a shared state): one run serves them all."""
    groups: dict[str, list[int]] = {}
    for number in specs:
        recipe = {**specs[number].model_dump(mode="json"), "pruning": None, "widths": list(find(rows, number).widths)}
        groups.setdefault(json.dumps(recipe, sort_keys=True), []).append(number)
    return {members[0]: members for members in groups.values()}


def sharing_plan(pending: dict[int, StudySpec], recorded: dict[int, StudySpec],
                 rows: Sequence[TrialRow]) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """Who trains which control, of the controls still to run (`pending`: trial number -> what its
    control trains) given those recorded and finished (`recorded`): (a recorded trial -> the pending
    trials that take its control, which nothing trains again; the first pending trial of each group
    that trains alike -> the trials in it, the group's control trained once, for them all)."""
    groups = same_training({**recorded, **pending}, rows)  # a recorded control first in its group
    taken = {first: [n for n in members if n in pending] for first, members in groups.items() if first in recorded}
    return ({first: members for first, members in taken.items() if members},
            {first: members for first, members in groups.items() if first not in recorded})
