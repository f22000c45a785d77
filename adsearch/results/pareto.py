"""Pareto analysis of a study's trial rows: dominance, fronts, hypervolume, the recommended trade-off.

Pure functions over a study's `adsearch.results.rows.TrialRow`s; no I/O. A row takes part in a front only
when its `state` is COMPLETE and every objective value is a finite number; other rows (failed,
running, missing a metric) get no rank. Objectives are given as `adsearch.spec.sections.Objective` models,
`(metric, mode)` pairs or bare metric names (natural mode from `adsearch.metrics.OBJECTIVES`). Values are compared in the units they have: nothing is normalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from adsearch.metrics import OBJECTIVES, finite as _finite
from adsearch.results.rows import TrialRow

ObjectiveLike = Any
"""An `Objective`, a `(metric, mode)` pair, or a metric name."""


def objective_pairs(objectives: Sequence[ObjectiveLike]) -> list[tuple[str, str]]:
    """`objectives` as `(metric, mode)` pairs, mode 'max' or 'min'.

    Raises:
        ValueError: for an empty list, or a mode other than 'max'/'min'.
    """
    pairs = []
    for obj in objectives:
        if isinstance(obj, str):
            metric, mode = obj, None
        elif hasattr(obj, "metric"):
            metric, mode = obj.metric, getattr(obj, "mode", None)
        else:
            metric, mode = obj
        mode = mode or OBJECTIVES.get(metric)
        if mode not in ("max", "min"):
            raise ValueError(f"objective {metric!r}: mode must be 'max' or 'min', got {mode!r}")
        pairs.append((metric, mode))
    if not pairs:
        raise ValueError("at least one objective is needed, got none")
    return pairs


def _minimised(row: TrialRow, pairs: list[tuple[str, str]]) -> tuple[float, ...] | None:
    """The row's objective values turned into minimisation (max objectives negated), or None."""
    values = [row.metrics.get(metric) for metric, _ in pairs]
    if not all(_finite(v) for v in values):
        return None
    return tuple(-float(v) if mode == "max" else float(v) for v, (_, mode) in zip(values, pairs))


def _eligible(rows: Sequence[TrialRow], pairs) -> tuple[list[int], np.ndarray]:
    """Indices of COMPLETE rows with finite objective values, and their minimised values; a
    repeat (the same point as the trial it repeats) is not a point of its own."""
    index, points = [], []
    for i, row in enumerate(rows):
        if not row.complete or row.is_repeat:
            continue
        point = _minimised(row, pairs)
        if point is not None:
            index.append(i)
            points.append(point)
    return index, np.asarray(points, dtype=float).reshape(len(points), len(pairs))


def dominates(a: TrialRow, b: TrialRow, objectives: Sequence[ObjectiveLike]) -> bool:
    """Whether row `a` is no worse than row `b` in every objective and better in at least one.

    A row without a finite value for every objective neither dominates nor is dominated.
    """
    pairs = objective_pairs(objectives)
    pa, pb = _minimised(a, pairs), _minimised(b, pairs)
    if pa is None or pb is None:
        return False
    return all(x <= y for x, y in zip(pa, pb)) and any(x < y for x, y in zip(pa, pb))


def nondominated_sort(rows: Sequence[TrialRow], objectives: Sequence[ObjectiveLike]) -> list[int | None]:
    """The non-domination rank of every row (0: the Pareto front, 1: the front once 0 is removed,
    ...), aligned with `rows`; None for rows that take no part (not COMPLETE, or a value missing).

    Rows with equal objective values do not dominate each other and share a rank.
    """
    pairs = objective_pairs(objectives)
    index, points = _eligible(rows, pairs)
    ranks: list[int | None] = [None] * len(rows)
    if not index:
        return ranks
    le = (points[:, None, :] <= points[None, :, :]).all(axis=2)
    lt = (points[:, None, :] < points[None, :, :]).any(axis=2)
    dominated_by = (le & lt).T  # [j, i]: row i dominates row j
    remaining = np.ones(len(index), dtype=bool)
    rank = 0
    while remaining.any():
        front = remaining & ~(dominated_by & remaining[None, :]).any(axis=1)
        for k in np.flatnonzero(front):
            ranks[index[k]] = rank
        remaining &= ~front
        rank += 1
    return ranks


def pareto_front(rows: Sequence[TrialRow], objectives: Sequence[ObjectiveLike]) -> list[int]:
    """Indices (ascending) of the non-dominated rows among the COMPLETE rows with finite values."""
    return [i for i, rank in enumerate(nondominated_sort(rows, objectives)) if rank == 0]


def hypervolume(rows: Sequence[TrialRow], objectives: Sequence[ObjectiveLike], reference: Sequence[float]) -> float:
    """The volume of objective space dominated by the rows' Pareto front and bounded by `reference`.

    `reference` holds one value per objective in the metric's own units (e.g. `(0.0, baseline
    params)` for accuracy max, params min); it should be worse than every point of interest.
    Nothing is normalised, so the volume is in the product of the objectives' units; compare
    volumes only between fronts over the same objectives and reference. Points not strictly
    better than the reference in every objective add nothing. Exact: a sweep for 2 objectives,
    slicing along the last objective for more (fast enough for a few hundred points, 4 objectives).

    Raises:
        ValueError: if `reference` does not hold one finite value per objective.
    """
    pairs = objective_pairs(objectives)
    if len(reference) != len(pairs) or not all(_finite(r) for r in reference):
        raise ValueError(f"reference must hold one finite value per objective ({len(pairs)}), got {list(reference)}")
    ref = np.array([-float(r) if mode == "max" else float(r) for r, (_, mode) in zip(reference, pairs)])
    _, points = _eligible(rows, pairs)
    points = points[(points < ref).all(axis=1)]
    return float(_volume(points, ref))


def _volume(points: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume (minimisation) of `points`, all strictly below `ref`; dominated points are harmless."""
    n, d = points.shape
    if n == 0:
        return 0.0
    if d == 1:
        return float(ref[0] - points[:, 0].min())
    if d == 2:
        order = np.lexsort((points[:, 1], points[:, 0]))
        x, y = points[order, 0], points[order, 1]
        best_before = np.concatenate(([ref[1]], np.minimum.accumulate(y)[:-1]))
        return float(np.sum((ref[0] - x) * np.clip(best_before - y, 0.0, None)))
    pts = points[np.argsort(points[:, -1], kind="stable")]
    depth = np.append(pts[1:, -1], ref[-1]) - pts[:, -1]
    return float(sum(depth[i] * _volume(pts[: i + 1, :-1], ref[:-1]) for i in range(n) if depth[i] > 0))


def baseline_index(rows: Sequence[TrialRow]) -> int | None:
    """The index of the first completed baseline row with a finite accuracy, or None."""
    for i, row in enumerate(rows):
        if row.is_baseline and row.complete and row.has("accuracy"):
            return i
    return None


def qualifying(rows: Sequence[TrialRow], max_accuracy_drop: float) -> list[int]:
    """The indices of the completed search rows (repeats left out) whose accuracy is at least the
    baseline's minus `max_accuracy_drop` (a fraction, 0.01 = one point), by params, then higher
    accuracy, then lower trial number; [] without a completed baseline."""
    base = baseline_index(rows)
    if base is None:
        return []
    floor = rows[base].metrics["accuracy"] - max_accuracy_drop - 1e-12  # accuracies are fractions k/n
    found = []
    for i, row in enumerate(rows):
        acc, params = row.metrics.get("accuracy"), row.metrics.get("params")
        if row.is_baseline or not row.complete or row.is_repeat:
            continue
        if _finite(acc) and _finite(params) and acc >= floor:
            found.append(i)
    return sorted(found, key=lambda i: (rows[i].metrics["params"], -rows[i].metrics["accuracy"], rows[i].number))


def outdone_by(rows: Sequence[TrialRow], i: int, among: Sequence[int], size_tolerance: float) -> int | None:
    """Of the rows `among`, the most accurate that is more accurate than row `i` with at most
    `size_tolerance` (a fraction) more params than it, or None: the row `i` is not preferred to."""
    acc, most = rows[i].metrics["accuracy"], rows[i].metrics["params"] * (1 + size_tolerance) + 1e-9
    better = [j for j in among if rows[j].metrics["accuracy"] > acc and rows[j].metrics["params"] <= most]
    return max(better, key=lambda j: (rows[j].metrics["accuracy"], -rows[j].metrics["params"]), default=None)


def recommended(rows: Sequence[TrialRow], max_accuracy_drop: float, *, size_tolerance: float) -> int | None:
    """The recommended trade-off: among the `qualifying` rows (within `max_accuracy_drop` of the
    baseline's accuracy), the one with the fewest params that no other outdoes by being more
    accurate at most `size_tolerance` larger (`outdone_by`: a trial 4% larger and 0.8 points more
    accurate is preferred at 0.1). Ties go to the higher accuracy, then the lower trial number; at a
    tolerance of 0, the fewest params.

    Returns None when there is no completed baseline or no search row qualifies.
    """
    candidates = qualifying(rows, max_accuracy_drop)
    return next((i for i in candidates if outdone_by(rows, i, candidates, size_tolerance) is None), None)
