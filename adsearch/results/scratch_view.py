"""A trial set against its scratch controls (its final widths trained from scratch with the same
recipe: `TrialRow.scratch` for as many epochs, `TrialRow.scratch_compute` for as much training
compute), as every writer of the report says it: one trial (`scratch_verdict`) and all of them
(`scratch_summary`), for each match (`MATCH_TITLES`). Where both kept their correct test samples
the two are tested paired (McNemar), and a gap inside the noise is a match, never a win."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from adsearch.metrics import count, finite, percent, points, value
from adsearch.results.rows import TrialRow
from adsearch.results.texts import CLEAR_GAP, differs, paired

SCRATCH_INTRO = ("A scratch control trains a trial's final widths from scratch with the same recipe, no pruning "
                 "(Liu et al., \"Rethinking the Value of Network Pruning\"), for as many epochs as the trial or for "
                 "as many training MACs (more epochs of the small network): does pruning in training beat simply "
                 "training the small network?")
"""What a scratch control is, said the same by every writer."""

MATCH_TITLES = {"epochs": "At equal epochs", "compute": "At equal training compute"}
"""How every writer heads the controls of each match (`scratch.MATCHES`), in this order."""


def scratch_metric(row: TrialRow, key: str, match: str = "epochs") -> float | None:
    """Metric `key` of the row's scratch control matched on `match` (`TrialRow.control`), or None (no
    control, no finite value)."""
    v = (row.control(match) or {}).get(key)
    return v if finite(v) else None


def control_test(row: TrialRow, match: str = "epochs"):
    """McNemar's test of the trial against its scratch control matched on `match` (`texts.paired`), or None."""
    return paired(row.correct, (row.control(match) or {}).get("correct"))


def control_beats_trial(row: TrialRow):
    """(match, control, its McNemar test) of the trial's scratch control that is significantly more
    accurate than it (at 5%; the equal-compute one first), or None: then the recommendation says so."""
    for match in ("compute", "epochs"):
        test, acc = control_test(row, match), scratch_metric(row, "accuracy", match)
        if test is not None and test.significant and acc is not None and acc > (row.metric("accuracy") or 0):
            return match, row.control(match), test
    return None


def scratch_verdict(row: TrialRow, match: str = "epochs") -> str:
    """The trial against its scratch control (its final widths trained from scratch, same recipe and
    epochs) in one line, e.g. 'pruning in training: +0.8 points over training these widths from
    scratch, at 8.5x its training MACs' or 'training these widths from scratch matches it (-0.1
    points) at 8.5x less training compute'; '' when either accuracy is missing. Training compute is
    each one's `train_macs` (the schedule's cost from scratch, sharing left out). With a paired test
    (`control_test`) its p-value follows the gap: '(+0.1 points; McNemar p = 0.8, not significant at 5%)'."""
    acc, control = row.metric("accuracy"), scratch_metric(row, "accuracy", match)
    if acc is None or control is None:
        return ""
    gap = acc - control
    test = control_test(row, match)
    tested = f"; {test.text()}" if test is not None else ""
    mine, theirs = row.metric("train_macs"), scratch_metric(row, "train_macs", match)
    ratio = mine / theirs if mine and theirs else None  # pruning in training / scratch
    if differs(gap, test):
        winner, loser, r = (("pruning in training", "training these widths from scratch", ratio) if gap > 0 else
                            ("training these widths from scratch", "pruning in training", ratio and 1 / ratio))
        return (f"{winner}: +{points(abs(gap))} points over {loser}" + (f" ({test.text()})" if test else "")
                + (f", {_compute(r)}" if r else ""))
    if ratio is None:
        return f"training these widths from scratch matches pruning in training ({100 * -gap:+.1f} points{tested})"
    if ratio >= 1:
        return f"training these widths from scratch matches it ({100 * -gap:+.1f} points{tested}) {_compute(1 / ratio)}"
    return (f"pruning in training matches training these widths from scratch ({100 * gap:+.1f} points{tested}) "
            f"{_compute(ratio)}")


def _compute(ratio: float) -> str:
    """How the subject's training MACs compare with the other's (subject / other)."""
    if round(ratio, 1) == 1 or round(1 / ratio, 1) == 1:
        return "at about the same training compute"
    return f"at {ratio:.1f}x its training MACs" if ratio > 1 else f"at {1 / ratio:.1f}x less training compute"


def scratch_summary(rows: Sequence[TrialRow], on_front: Callable[[TrialRow], bool], match: str = "epochs") -> str:
    """The trials `rows` (those with a control) against their controls in one sentence: how many, the
    mean accuracy gap, how many above, below and within `CLEAR_GAP` of their control, the mean ratio
    of training MACs; and, when every one is on the front (`on_front`), that the front is selected
    for luck as well as merit (its controls are not). '' without two trials to compare."""
    pairs = [(r.metric("accuracy"), scratch_metric(r, "accuracy", match), r.metric("train_macs"),
              scratch_metric(r, "train_macs", match), control_test(r, match)) for r in rows]
    pairs = [p for p in pairs if p[0] is not None and p[1] is not None]
    if len(pairs) < 2:
        return ""
    gaps = [(a - c, test) for a, c, _, _, test in pairs]
    ratios = [m / cm for _, _, m, cm, _ in pairs if m and cm]
    above = sum(differs(g, test) and g > 0 for g, test in gaps)
    below = sum(differs(g, test) and g < 0 for g, test in gaps)
    mean = sum(g for g, _ in gaps) / len(gaps)
    if all(test is not None for _, test in gaps):
        counts = (f"{above} significantly above their control, {below} significantly below, "
                  f"{len(pairs) - above - below} within the noise, by McNemar's paired test at 5%")
    else:  # a study recorded before trials kept their test samples
        counts = (f"{above} clearly above their control, {below} clearly below, {len(pairs) - above - below} within "
                  f"{points(CLEAR_GAP)} points")
    text = (f"Over {len(pairs)} trials with a control, pruning in training is {100 * mean:+.2f} points from "
            f"training the same widths from scratch on average ({counts})")
    if ratios:
        text += f", at {sum(ratios) / len(ratios):.1f}x the control's training MACs on average"
    text += "."
    if all(on_front(r) for r in rows):
        text += (" These are front trials, the best of the search: selected for luck as well as merit, unlike "
                 "their controls, so their edge is overstated (`adsearch scratch --trials` controls others).")
    return text


def scratch_columns(matches: Sequence[str]) -> list[str]:
    """The table columns of the scratch controls of `matches` (`scratch_cells` fills them)."""
    return [*(["scratch accuracy", "scratch train MACs"] if "epochs" in matches else []),
            *(["scratch accuracy (equal compute)", "its epochs"] if "compute" in matches else [])]


def scratch_cells(row: TrialRow, matches: Sequence[str]) -> list[tuple[str, float | None]]:
    """(text, number to sort by) for each of `scratch_columns(matches)`: the equal-epoch control's accuracy
    and training MACs, the equal-compute control's accuracy and epochs; '' where the row has none."""
    cells: list[tuple[str, float | None]] = []
    if "epochs" in matches:
        acc, macs = scratch_metric(row, "accuracy"), scratch_metric(row, "train_macs")
        cells += [(percent(acc), acc), (count(macs), macs)] if row.scratch else [("", None), ("", None)]
    if "compute" in matches:
        acc, epochs = scratch_metric(row, "accuracy", "compute"), scratch_metric(row, "epoch", "compute")
        cells += [(percent(acc), acc), (value(epochs), epochs)] if row.scratch_compute else [("", None), ("", None)]
    return cells
