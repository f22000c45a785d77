"""A finished trial's network rebuilt from the study directory: the spec it ran (the study's with
its sampled values put in), its final checkpoint in `trials/`, the model at those widths.

Read by export (which then writes the network out) and by `load_study(...).model(trial)`.
"""

from __future__ import annotations

from adsearch.errors import AdsearchError
from adsearch.results.checkpoints import load_checkpoint
from adsearch.results.reading import StudyRecord
from adsearch.results.rows import TrialRow


def trial_spec(record: StudyRecord, row: TrialRow):
    """The spec the trial ran: the study's with the trial's sampled values put in."""
    from adsearch.spec.loading import apply_params

    if row.is_baseline:
        return record.spec.without_pruning()
    return apply_params(record.spec, {k: v for k, v in row.settings.items() if v is not None})


def check_finished(record: StudyRecord, row: TrialRow) -> None:
    """Raise `AdsearchError` unless trial `row` completed (a failed one with its reason)."""
    name = row.label
    if row.state == "FAIL":
        raise AdsearchError(f"trial {name} of study {record.name!r} failed, so it has no network to export: "
                            f"{row.error or '(no message recorded)'}")
    if row.stopped:
        raise AdsearchError(f"trial {name} of study {record.name!r} was stopped early after epoch {row.stopped_at} "
                            "(search.early_stop), so it has no final network to export")
    if not row.complete:
        raise AdsearchError(f"trial {name} of study {record.name!r} is {row.state} (study {record.state}); "
                            "only a finished trial can be exported")


def rebuild(spec, checkpoint: dict):
    """(the network of `spec` at the checkpoint's widths with its weights, in eval mode; the data it reads)."""
    from adsearch.data.registry import load_data
    from adsearch.train.trainer import build_model

    data = load_data(spec.data, spec.seed)
    model = build_model(spec, data, list(checkpoint["widths"]))
    model.load_state_dict(checkpoint["model"])
    return model.eval(), data


def trial_network(record: StudyRecord, row: TrialRow, control: str | None = None):
    """The network trial `row` ended with (or its scratch control matched on `control`, 'epochs' or
    'compute', trained), on the CPU, in eval mode.

    Raises:
        AdsearchError: the trial failed or has not finished, no such control completed, or the
            checkpoint is missing, unreadable or not the one its metrics come from.
    """
    check_finished(record, row)
    model, data = rebuild(trial_spec(record, row), load_checkpoint(record.study_dir, row, control))
    data.close()
    return model
