"""What trials took from each other (the prefix cache, a repeated parameter set) and what that
saved: for one trial (`sharing_text`) and for the study (`sharing_summary`, `compute_saved`)."""

from __future__ import annotations

from collections.abc import Sequence

from adsearch.metrics import count, seconds, value
from adsearch.results.rows import BASELINE, TrialRow


def sharing_text(row: TrialRow) -> str:
    """What the trial took from others (the prefix cache, a repeat): 'repeat of trial 3',
    'reused trial 3 (no training)', 'epochs 1-4 from the baseline'; '' when it trained everything."""
    def name(number) -> str:
        return "the baseline" if number == BASELINE else f"trial {value(number)}"

    if row.metric("repeat_of") is not None:
        return f"repeat of {name(row.metric('repeat_of'))}"
    shared, source = row.metric("shared_epochs"), row.metric("shared_from")
    if not shared or source is None:
        return ""
    if shared == row.metric("epoch"):
        return f"reused {name(source)}" + ("" if row.metric("spent_train_macs") else " (no training)")
    return f"epoch{'s 1-' if shared > 1 else ' '}{shared} from {name(source)}"


def sharing_summary(rows: Sequence[TrialRow]) -> str:
    """What sharing saved the study of `rows`, in one paragraph; '' when no trial took anything from another.

    Every completed trial but the repeats (the baseline included) is counted at its schedule's
    cost from scratch (`train_macs`, `wall_s`) against what the study ran for it
    (`spent_train_macs`, `spent_s`); the repeats are said apart: they cost nothing.
    """
    spending = _spending_rows(rows)
    repeats = sum(r.is_repeat for r in rows)
    reused = [r for r in spending
              if r.metric("shared_epochs") == r.metric("epoch") and not r.metric("spent_train_macs")]
    started = [r for r in spending if r not in reused and (r.metric("shared_epochs") or 0) > 0]
    if not (repeats or reused or started):
        return ""
    parts = [f"{len(started)} trial{'s' * (len(started) != 1)} started from a state another trial trained"]
    if reused:
        parts.append(f"{len(reused)} reused a network already trained (no training)")
    if repeats:
        parts.append(f"{repeats} repeated parameter set{'s' * (repeats != 1)} cost nothing")
    scratch, spent = _spending(rows)
    wall = sum(r.metric("wall_s") or 0 for r in spending)
    spent_s = sum(r.metric("spent_s") or 0 for r in spending)
    saved = compute_saved(rows)
    return (f"Shared training: {_and(parts)}. From scratch, the {len(spending)} completed trials (the baseline "
            f"included, the repeats not) would have cost {count(scratch)} training MACs and {seconds(wall)}; the "
            f"study ran {count(spent)}{f' ({saved})' if saved else ''} in {seconds(spent_s)}.")


def compute_saved(rows: Sequence[TrialRow]) -> str:
    """'2.3x less training compute' run than the completed trials' schedules cost from scratch
    (the repeats left out); '' when nothing was saved (or nothing recorded what was run)."""
    scratch, spent = _spending(rows)
    return f"{scratch / spent:.1f}x less training compute" if spent and scratch > spent else ""


def _spending_rows(rows: Sequence[TrialRow]) -> list[TrialRow]:
    """The completed trials that recorded what was run for them, the repeats left out."""
    return [r for r in rows if r.complete and not r.is_repeat and r.has("train_macs") and r.has("spent_train_macs")]


def _spending(rows: Sequence[TrialRow]) -> tuple[float, float]:
    """Training MACs of `_spending_rows`: their schedules' from scratch, and what was run."""
    spending = _spending_rows(rows)
    return sum(r.metrics["train_macs"] for r in spending), sum(r.metrics["spent_train_macs"] for r in spending)


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
