"""What the plots of a study show, decided once for every writer (PNG, HTML, terminal): the trials a
plot of accuracy against a cost can show (`plottable`), the front among them (`pair_front`) and the
names of a network's layer groups (`group_names`). Indices are into the rows given (a view's `rows`)."""

from __future__ import annotations

from collections.abc import Sequence

from adsearch.results.pareto import pareto_front
from adsearch.results.rows import TrialRow


def plottable(rows: Sequence[TrialRow], cost: str) -> list[int]:
    """The rows a plot of accuracy against `cost` (log axis) can show: COMPLETE, not a repeat,
    with a finite accuracy and a finite `cost` above zero."""
    return [i for i, r in enumerate(rows)
            if r.complete and not r.is_repeat and r.has("accuracy") and r.has(cost) and r.metrics[cost] > 0]


def pair_front(rows: Sequence[TrialRow], cost: str) -> list[int]:
    """The plottable rows not beaten in (accuracy max, `cost` min), ordered by `cost`."""
    usable = plottable(rows, cost)
    sub = [rows[i] for i in usable]
    front = [usable[k] for k in pareto_front(sub, [("accuracy", "max"), (cost, "min")])]
    return sorted(front, key=lambda i: rows[i].metrics[cost])


def group_names(rows: Sequence[TrialRow], n: int, row: TrialRow | None = None) -> list[str]:
    """The names of `n` layer groups, from the density records of `row` (if given) or of any
    trial of `rows` that has `n` of them; 'group 1', 'group 2', ... when none has."""
    for r in ([row] if row is not None else []) + list(rows):
        for h in reversed(r.history):
            names = list((h.get("density") or {}).keys())
            if len(names) == n:
                return names
    return [f"group {k + 1}" for k in range(n)]
