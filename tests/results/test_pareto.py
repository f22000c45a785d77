"""Pareto analysis: dominance by hand, fronts against brute force, hypervolume, the recommendation."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest
from helpers import brute_force_front, trial_row

from adsearch.results.pareto import (dominates, hypervolume, nondominated_sort, outdone_by, pareto_front, qualifying,
                                     recommended)
from adsearch.spec.sections import Objective

ACC_PARAMS = [("accuracy", "max"), ("params", "min")]


def row(number, accuracy, params, *, state="COMPLETE", role="search", **more):
    return trial_row(number, role=role, state=state, accuracy=accuracy, params=params, **more)


def with_metrics(r, **metrics):
    """`r` with some metrics changed (None: removed)."""
    changed = {**r.metrics, **metrics}
    return replace(r, metrics={k: v for k, v in changed.items() if v is not None})


def flat(rows) -> list[dict]:
    """Rows as the brute force reads them (number, state, one key per metric)."""
    return [r.flat() for r in rows]


def random_rows(seed: int, n: int = 40) -> list:
    rng = random.Random(seed)
    rows = [row(k, rng.choice([0.5, 0.6, 0.7, 0.8, 0.9]), rng.randint(1, 12) * 1000,
                macs=rng.randint(1, 8) * 1e6, latency_ms=rng.uniform(1, 5)) for k in range(n)]
    rows[3] = with_metrics(replace(rows[3], state="FAIL"), accuracy=0.99, params=1)  # would dominate everything
    rows[5] = with_metrics(rows[5], accuracy=None, params=1)
    rows[7] = with_metrics(rows[7], macs=float("nan"), params=1)
    return rows


def test_dominates_by_hand():
    a, b, c = row(0, 0.9, 100), row(1, 0.8, 200), row(2, 0.95, 300)
    assert dominates(a, b, ACC_PARAMS)  # better in both
    assert not dominates(b, a, ACC_PARAMS)
    assert not dominates(a, c, ACC_PARAMS) and not dominates(c, a, ACC_PARAMS)  # a trade-off
    assert not dominates(a, replace(a), ACC_PARAMS)  # equal is not better
    assert dominates(row(3, 0.9, 50), a, ACC_PARAMS)  # equal in one, better in the other
    assert dominates(c, a, [("accuracy", "max")]) and dominates(a, c, [("params", "min")])
    assert dominates(b, a, [("accuracy", "min"), ("params", "max")])  # modes flip it
    assert not dominates(row(4, None, 10), b, ACC_PARAMS) and not dominates(a, row(5, None, 900), ACC_PARAMS)


def test_objectives_as_models_pairs_or_names_agree():
    rows = random_rows(0)
    as_models = [Objective(metric="accuracy"), Objective(metric="params")]
    assert pareto_front(rows, as_models) == pareto_front(rows, ACC_PARAMS)
    assert pareto_front(rows, ["accuracy", "params"]) == pareto_front(rows, ACC_PARAMS)
    with pytest.raises(ValueError, match="mode must be 'max' or 'min', got 'up'"):
        pareto_front(rows, [("accuracy", "up")])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("objectives", [
    ACC_PARAMS,
    [("accuracy", "max"), ("params", "min"), ("macs", "min")],
    [("accuracy", "min"), ("params", "max"), ("latency_ms", "min")],
])
def test_pareto_front_matches_brute_force(seed, objectives):
    rows = random_rows(seed)
    front = pareto_front(rows, objectives)
    assert set(front) == brute_force_front(flat(rows), objectives, key=None)
    assert front == sorted(front) and 3 not in front and 5 not in front
    if any(m == "macs" for m, _ in objectives):
        assert 7 not in front


@pytest.mark.parametrize("seed", range(3))
def test_nondominated_sort_peels_fronts(seed):
    rows = random_rows(seed)
    objectives = [("accuracy", "max"), ("params", "min"), ("macs", "min")]
    ranks = nondominated_sort(rows, objectives)
    assert ranks[3] is None and ranks[5] is None
    remaining = [r if ranks[i] is not None else replace(r, state="FAIL") for i, r in enumerate(rows)]
    level = 0
    while any(r.complete for r in remaining):
        front = brute_force_front(flat(remaining), objectives, key=None)
        assert front == {i for i, k in enumerate(ranks) if k == level}
        remaining = [replace(r, state="FAIL") if i in front else r for i, r in enumerate(remaining)]
        level += 1


def test_equal_points_share_the_front():
    rows = [row(0, 0.9, 100), row(1, 0.9, 100), row(2, 0.8, 100)]
    assert pareto_front(rows, ACC_PARAMS) == [0, 1]
    assert nondominated_sort(rows, ACC_PARAMS) == [0, 0, 1]


def test_hypervolume_2d_by_hand():
    # accuracy (max) against params (min), reference accuracy 0, params 10:
    # (0.9, 8): [8,10] x [0,0.9] = 1.8;  (0.5, 2) adds [2,8] x [0,0.5] = 3.0;  (0.4, 6) is dominated.
    rows = [row(0, 0.9, 8), row(1, 0.5, 2), row(2, 0.4, 6), row(3, 1.0, 1, state="FAIL")]
    assert hypervolume(rows, ACC_PARAMS, (0.0, 10)) == pytest.approx(4.8)
    # a point worse than the reference (params 12 > 10) adds nothing
    assert hypervolume(rows + [row(4, 0.95, 12)], ACC_PARAMS, (0.0, 10)) == pytest.approx(4.8)
    assert hypervolume([], ACC_PARAMS, (0.0, 10)) == 0.0
    with pytest.raises(ValueError, match="one finite value per objective"):
        hypervolume(rows, ACC_PARAMS, (0.0,))


def _cells_dominated(points, ref) -> int:
    """Brute force: unit cells of the integer grid below `ref` dominated by some point (all min)."""
    return sum(any(all(p[k] <= c[k] for k in range(len(ref))) for p in points)
               for c in itertools.product(*(range(r) for r in ref)))


@pytest.mark.parametrize("dims,seed", [(2, 0), (3, 1), (3, 2), (4, 3)])
def test_hypervolume_matches_grid_count(dims, seed):
    rng = random.Random(seed)
    names = ["params", "macs", "train_macs", "wall_s"][:dims]
    ref = (7,) * dims
    points = [tuple(rng.randint(0, 7) for _ in range(dims)) for _ in range(12)]
    rows = [trial_row(i, **dict(zip(names, p))) for i, p in enumerate(points)]
    inside = [p for p in points if all(x < r for x, r in zip(p, ref))]
    assert hypervolume(rows, [(m, "min") for m in names], ref) == pytest.approx(_cells_dominated(inside, ref))


def test_hypervolume_handles_200_points_in_4d_quickly():
    rng = random.Random(0)
    rows = []
    for i in range(200):  # points on a sphere: every one is on the front
        v = [abs(rng.gauss(0, 1)) + 1e-3 for _ in range(4)]
        norm = sum(x * x for x in v) ** 0.5
        rows.append(trial_row(i, **dict(zip(["params", "macs", "train_macs", "wall_s"], [x / norm for x in v]))))
    objectives = [(m, "min") for m in ["params", "macs", "train_macs", "wall_s"]]
    assert len(pareto_front(rows, objectives)) == 200
    volume = hypervolume(rows, objectives, (1.0, 1.0, 1.0, 1.0))
    assert 0 < volume < 1


def test_recommended_fewest_params_within_the_drop():
    rows = [
        row(-1, 0.95, 1000, role="baseline"),
        row(0, 0.945, 300),  # within 1 point
        row(1, 0.94, 200),  # exactly 1 point below: qualifies
        row(2, 0.93, 50),  # too inaccurate
        row(3, 0.99, 10, state="FAIL"),  # failed
        row(4, 0.96, 200),  # same params as 1, more accurate: wins the tie
        row(5, None, 5),
    ]
    assert recommended(rows, 0.01, size_tolerance=0) == 5  # index 5 holds trial 4
    assert rows[recommended(rows, 0.01, size_tolerance=0)].number == 4
    assert recommended(rows, 0.02, size_tolerance=0) == 3  # trial 2 now qualifies
    assert recommended(rows, 0.0, size_tolerance=0) == 5  # only trial 4 is at least as accurate as the baseline


def test_recommended_ties_go_to_the_lower_number_and_none_when_nothing_qualifies():
    base = row(-1, 0.9, 1000, role="baseline")
    assert recommended([base, row(7, 0.9, 100), row(2, 0.9, 100)], 0.01, size_tolerance=0) == 2
    assert recommended([base, row(0, 0.5, 100), row(1, 0.7, 100)], 0.01, size_tolerance=0) is None
    assert recommended([row(0, 0.9, 100)], 0.01, size_tolerance=0) is None  # no baseline
    assert recommended([base], 0.01, size_tolerance=0) is None  # the baseline is not a recommendation


def test_a_slightly_larger_more_accurate_trial_is_preferred():
    base = row(-1, 0.997, 1_150_000, role="baseline")
    small, slightly = row(12, 0.989, 15_200), row(6, 0.997, 15_800)  # 4% larger, 0.8 points more accurate
    assert recommended([base, small, slightly], 0.01, size_tolerance=0.1) == 2
    assert recommended([base, small, slightly], 0.01, size_tolerance=0.03) == 1  # 4% is too much at 3%
    assert recommended([base, small, slightly], 0.01, size_tolerance=0) == 1  # the fewest params
    assert recommended([base, small, row(6, 0.989, 15_800)], 0.01, size_tolerance=0.1) == 1  # as accurate: smaller
    # each step at most 10% larger and more accurate: the chain goes on (15.2k -> 16.4k -> 17.7k)
    chain = [base, small, row(1, 0.992, 16_400), row(2, 0.994, 17_700), row(3, 0.996, 30_000)]
    assert recommended(chain, 0.01, size_tolerance=0.1) == 3
    # two within reach of the smallest: each is outdone by the next, more accurate, within its own reach
    assert recommended([base, small, row(1, 0.995, 16_000), row(2, 0.996, 16_500)], 0.01, size_tolerance=0.1) == 3
    front = [base, small, slightly]
    assert outdone_by(front, 1, [1, 2], 0.1) == 2 and outdone_by(front, 2, [1, 2], 0.1) is None
    assert qualifying([base, small, slightly, row(4, 0.95, 100)], 0.01) == [1, 2]  # 0.95 is too far below


def test_on_the_quickstarts_trials_the_recommendation_is_trial_6_not_trial_12():
    """The quickstart as shipped (reports/quickstart/trials.csv, 2026-12-03): accuracy out of its 360
    test images, params; repeats and pruned repeats left out. Trial 12 has the fewest parameters
    within 1 point, but trial 6, 4% larger, is 3 images (0.8 points) more accurate."""
    quickstart = {-1: (359, 1_147_722), 0: (355, 15_264), 1: (353, 65_234), 2: (360, 274_478), 3: (360, 270_007),
                  4: (357, 66_579), 5: (359, 64_955), 6: (359, 15_810), 9: (357, 63_655), 12: (356, 15_194),
                  13: (358, 15_810), 15: (347, 16_514), 18: (347, 16_569)}
    rows = [row(n, k / 360, p, role="baseline" if n == -1 else "search") for n, (k, p) in quickstart.items()]
    assert rows[recommended(rows, 0.01, size_tolerance=0.1)].number == 6
    assert rows[recommended(rows, 0.01, size_tolerance=0)].number == 12  # the old rule: the fewest parameters
    assert [rows[i].number for i in qualifying(rows, 0.01)] == [12, 6, 13, 9, 5, 4, 3, 2]  # 0: 1.1 points below
