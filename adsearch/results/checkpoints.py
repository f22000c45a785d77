"""Each finished trial's final checkpoint in the study's `trials/` (`trials/baseline.pt`,
`trials/<number>.pt`): a plain dict (model, widths, epoch, ...) kept in one place when the trial
ends and read back in one place, checked to be the one its reported metrics come from. Export and
`load_study(...).model(trial)` read these."""

from __future__ import annotations

from pathlib import Path

from adsearch.errors import AdsearchError, one_line
from adsearch.models.saving import save_torch
from adsearch.results.rows import BASELINE, TrialRow
from adsearch.results.study_dir import TRIALS_DIR, StudyDir, atomic_write


def checkpoint_path(study: StudyDir, number: int, control: str | None = None) -> Path:
    """Where trial `number`'s final checkpoint is kept: trials/baseline.pt, trials/<number>.pt; that of
    its scratch control matched on `control` ('epochs', 'compute'): trials/<number>.scratch-<control>.pt."""
    if control is not None:
        return study / TRIALS_DIR / f"{number}.scratch-{control}.pt"
    return study / TRIALS_DIR / ("baseline.pt" if number == BASELINE else f"{number}.pt")


def save_checkpoint(study: StudyDir, number: int, state: dict, control: str | None = None) -> Path:
    """Keep trial `number`'s final state (a plain dict: model, widths, epoch, ...) atomically; or that
    of its scratch control matched on `control`."""
    return atomic_write(checkpoint_path(study, number, control), lambda p: save_torch(state, p))


def load_checkpoint(study: StudyDir, row: TrialRow, control: str | None = None) -> dict:
    """Trial `row`'s final checkpoint (or that of its scratch control matched on `control`), checked to
    be the one its reported metrics come from.

    Raises:
        AdsearchError: no checkpoint kept for it, an unreadable one, or one from another epoch
            or with other widths than the trial (or control) reported.
    """
    path = checkpoint_path(study, row.number, control)
    if control is not None:
        return _control_checkpoint(path, row, control)
    if not path.is_file():
        raise AdsearchError(f"trial {row.label} has no final checkpoint ({path} is missing); studies run before "
                            "adsearch kept them there cannot export it: run the study again")
    checkpoint = _read(path)
    epoch = row.metrics.get("epoch")
    if epoch is not None and checkpoint.get("epoch") != epoch:
        raise AdsearchError(f"the checkpoint of trial {row.label} ({path}) is from epoch "
                            f"{checkpoint.get('epoch')}, but its reported metrics are from epoch {epoch}")
    if row.widths is not None and list(checkpoint["widths"]) != list(row.widths):
        raise AdsearchError(f"the checkpoint {path} has widths {list(checkpoint['widths'])}, but trial "
                            f"{row.label} reported {row.widths}")
    return checkpoint


def _read(path: Path) -> dict:
    """The checkpoint in `path`, loaded with `weights_only`; any failure one `AdsearchError` naming it."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same message
        raise AdsearchError(f"cannot read checkpoint {path}: {one_line(exc)}") from None


def _control_checkpoint(path: Path, row: TrialRow, control: str) -> dict:
    """The final checkpoint of trial `row`'s scratch control matched on `control`, checked against what
    the control recorded."""
    recorded = row.control(control)
    what = f"the {'equal-compute ' if control == 'compute' else ''}scratch control of trial {row.label}"
    if not recorded or recorded.get("state") != "COMPLETE":
        state = "failed" if recorded else "was not run"
        raise AdsearchError(f"{what} {state}: nothing to export (`adsearch scratch <study> --trials {row.label}"
                            f"{' --match compute' if control == 'compute' else ''}` runs it)")
    if not path.is_file():
        raise AdsearchError(f"{what} has no final checkpoint ({path} is missing); controls run before adsearch "
                            "kept them cannot be exported: run it again with `adsearch scratch`")
    checkpoint = _read(path)
    if checkpoint.get("epoch") != recorded.get("epoch") or list(checkpoint["widths"]) != list(recorded.get("widths") or []):
        raise AdsearchError(f"the checkpoint {path} (epoch {checkpoint.get('epoch')}, widths "
                            f"{list(checkpoint['widths'])}) is not the one {what} recorded")
    return checkpoint
