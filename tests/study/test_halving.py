"""Multi-objective successive halving: which trials go on at a rung, on hand-made arrivals."""

from __future__ import annotations

import math

import pytest

from adsearch.study.halving import RungEntry, decide, replay, rung_objectives

OBJECTIVES = [("accuracy", "max"), ("params", "min"), ("train_macs", "min")]


def arrival(number, accuracy, params, cuts=1, *, order=None, rung=6, train_macs=1.0e9):
    return RungEntry(number=number, rung=rung, values={"accuracy": accuracy, "params": params, "train_macs": train_macs},
                     cuts=cuts, order=number if order is None else order)


def test_a_trial_is_stopped_only_when_enough_peers_sort_into_a_better_front():
    arrived = [arrival(0, 0.90, 1000), arrival(1, 0.88, 900), arrival(2, 0.80, 2000)]
    # dominated by 0 and 1 (less accurate, larger): 2 of 4 better, keep 0.5 lets ceil(2) = 2 ahead go on
    worst = decide(arrived, 3, 6, {"accuracy": 0.70, "params": 2500, "train_macs": 1.0e9}, 1, objectives=OBJECTIVES,
                   keep=0.5, min_peers=4)
    assert (worst.go_on, worst.better, worst.peers, worst.order) == (False, 3, 4, 3)
    # on the front (the smallest): nobody sorts better
    small = decide(arrived, 3, 6, {"accuracy": 0.70, "params": 100, "train_macs": 1.0e9}, 1, objectives=OBJECTIVES,
                   keep=0.5, min_peers=4)
    assert small.go_on and small.better == 0
    # with fewer peers than min_peers every trial goes on, however bad
    early = decide(arrived[:2], 3, 6, {"accuracy": 0.1, "params": 9999, "train_macs": 9e9}, 1, objectives=OBJECTIVES,
                   keep=0.5, min_peers=4)
    assert early.go_on and early.peers == 3


def test_ties_at_the_boundary_go_on():
    # 0 and 1 are on one front, 2 and 3 on the next: with keep 0.25 of 4 only one place, but 1 ties 0
    arrived = [arrival(0, 0.90, 1000), arrival(2, 0.80, 1200), arrival(3, 0.79, 1100)]
    tie = decide(arrived, 1, 6, {"accuracy": 0.85, "params": 900, "train_macs": 1.0e9}, 1, objectives=OBJECTIVES,
                 keep=0.25, min_peers=2)
    assert tie.go_on and tie.better == 0
    second = decide(arrived[:1] + [tie], 2, 6, {"accuracy": 0.80, "params": 1200, "train_macs": 1.0e9}, 1,
                    objectives=OBJECTIVES, keep=0.25, min_peers=2)
    assert not second.go_on and second.better == 2


def test_same_cuts_ranks_a_trial_that_cuts_later_only_among_its_like():
    # three trials cut once and small; one not cut yet: large, as any trial is before its cut
    arrived = [arrival(0, 0.86, 300, cuts=1), arrival(1, 0.87, 320, cuts=1), arrival(2, 0.88, 310, cuts=1)]
    late = {"accuracy": 0.85, "params": 1000, "train_macs": 2.0e9}
    among_all = decide(arrived, 3, 6, late, 0, objectives=OBJECTIVES, keep=0.5, min_peers=2, peers="all")
    assert not among_all.go_on  # every cut trial dominates it: it would lose for being uncut
    alike = decide(arrived, 3, 6, late, 0, objectives=OBJECTIVES, keep=0.5, min_peers=2, peers="same_cuts")
    assert alike.go_on and alike.peers == 1


def test_a_trial_without_a_finite_value_ranks_last():
    arrived = [arrival(0, 0.9, 100), arrival(1, 0.8, 200)]
    nan = decide(arrived, 2, 6, {"accuracy": math.nan, "params": 50, "train_macs": 1.0e9}, 1, objectives=OBJECTIVES,
                 keep=0.5, min_peers=2)
    assert not nan.go_on and nan.better == 2


def test_only_the_objectives_each_epoch_reports_are_ranked_on():
    assert rung_objectives([("accuracy", "max"), ("latency_ms", "min"), ("macs", "min")]) == \
        [("accuracy", "max"), ("macs", "min")]


def test_replay_stops_a_trial_at_its_first_losing_rung_and_the_same_order_gives_the_same_decisions():
    entries = []
    for rung in (3, 6):
        for n, acc in enumerate([0.90, 0.70, 0.85, 0.60, 0.88]):
            entries.append(arrival(n, acc + rung / 100, 1000, rung=rung, order=n))
    decided = replay(entries, objectives=OBJECTIVES, keep=0.5, min_peers=2)
    stopped_at = {e.number: e.rung for e in decided if not e.go_on}
    assert stopped_at == {1: 3, 3: 3, 2: 6}  # 1 and 3 ranked out at the first rung: never seen at the second
    assert [e.number for e in decided if e.rung == 6] == [0, 2, 4]
    assert replay(entries, objectives=OBJECTIVES, keep=0.5, min_peers=2) == decided
    # the worst arriving first, each trial is the best so far when it arrives: none is stopped
    worst_first = {3: 0, 1: 1, 2: 2, 4: 3, 0: 4}
    reordered = [RungEntry(**{**e.plain(), "order": worst_first[e.number]}) for e in entries]
    assert all(e.go_on for e in replay(reordered, objectives=OBJECTIVES, keep=0.5, min_peers=2))


def test_an_entry_survives_its_json_form():
    e = decide([arrival(0, 0.9, 100)], 1, 6, {"accuracy": 0.5, "params": 200, "train_macs": 2e9}, 0,
               objectives=OBJECTIVES, keep=0.5, min_peers=2)
    assert RungEntry.of(e.plain()) == e


@pytest.mark.parametrize("rungs, error", [([0, 3], "increasing epochs from 1"), ([5, 3], "increasing"),
                                          ([3, 20], "before the last")])
def test_bad_rungs_are_refused_saying_what_is_allowed(rungs, error):
    from adsearch.spec.loading import parse_spec
    from adsearch.spec.loading import SpecError
    from helpers import tiny_spec

    text = tiny_spec("rungs", epochs=20).replace("  sampler: grid", f"  sampler: grid\n  early_stop: {{rungs: {rungs}}}")
    with pytest.raises(SpecError, match=error):
        parse_spec(text)
