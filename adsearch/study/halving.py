"""Multi-objective successive halving: which trials go on at a rung (`search.early_stop`).

Ray Tune's schedulers (ASHA, HyperBand, median stopping) rank trials by one metric and Optuna's
pruners refuse a multi-objective study. Here, as in MO-ASHA (Schmucker et al., 2021), a trial that
reaches a *rung* (an epoch of `search.early_stop.rungs`) is ranked among the trials that reached
the same rung before it by non-dominated sorting over the study's objectives as they stand there
(accuracy so far, the parameters and inference MACs it has now, the training MACs spent so far),
and goes on only if fewer than `ceil(keep * n)` of those `n` trials (itself included) sort into a
better front. Ties at the boundary go on: a trial is never stopped while another of its front goes
on. With fewer than `min_peers` trials at the rung every one goes on.

The trap (PITFALLS.md): a trial that cuts later is larger at an early rung, so ranking every trial
together would favour early cutting whatever its final accuracy. With `peers: same_cuts` (the
default) a trial is ranked only among those that had made as many cuts by the rung.

The decisions are asynchronous (a trial is judged when it arrives, against those already there),
so they depend only on the order of arrivals at each rung: the same order gives the same decisions.
Each arrival is kept (`RungEntry`, as an Optuna user attribute of its trial: `early_stop.RUNGS_KEY`)
so that a resumed study ranks against the same arrivals and keeps the decisions it made.

Pure functions over entries; the Ray Tune scheduler that applies them is `adsearch.study.early_stop`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from adsearch.results.pareto import nondominated_sort, objective_pairs
from adsearch.results.rows import TrialRow

RUNG_METRICS = ("accuracy", "top5", "loss", "params", "macs", "train_macs")
"""The objectives a rung can rank on: those every epoch reports (latency is measured only at the end)."""


@dataclass(frozen=True)
class RungEntry:
    """One trial's arrival at one rung: what it had there and what was decided."""

    number: int
    """The trial's number."""
    rung: int
    """The epoch of the rung."""
    values: dict[str, float]
    """The objectives' values at the rung (`RUNG_METRICS` among the study's objectives)."""
    cuts: int
    """Compression rounds made by the end of the rung's epoch."""
    order: int
    """Its place among the arrivals at this rung (0: the first)."""
    go_on: bool = True
    better: int = 0
    """How many of its peers sorted into a better front."""
    peers: int = 1
    """How many trials it was ranked among (itself included)."""

    def plain(self) -> dict:
        """As JSON keeps it (an Optuna user attribute)."""
        return asdict(self)

    @classmethod
    def of(cls, data: dict) -> RungEntry:
        return cls(**{k: data[k] for k in ("number", "rung", "values", "cuts", "order", "go_on", "better", "peers")
                      if k in data})


def rung_objectives(objectives) -> list[tuple[str, str]]:
    """The (metric, mode) pairs a rung ranks on: the study's objectives that each epoch reports."""
    return [(m, mode) for m, mode in objective_pairs(objectives) if m in RUNG_METRICS]


def peers_of(arrived: Sequence[RungEntry], cuts: int, peers: str) -> list[RungEntry]:
    """The arrivals a trial with `cuts` cuts is ranked among: all (`peers: all`), or those with as many
    cuts (`same_cuts`)."""
    return [e for e in arrived if peers == "all" or e.cuts == cuts]


def decide(arrived: Sequence[RungEntry], number: int, rung: int, values: dict[str, float], cuts: int, *,
           objectives, keep: float, min_peers: int, peers: str = "same_cuts") -> RungEntry:
    """The decision for trial `number` arriving at `rung` with `values` after `cuts` cuts, given the
    earlier arrivals at that rung (`arrived`, other trials): its `RungEntry`."""
    pairs = rung_objectives(objectives)
    order = len(arrived)
    group = peers_of([e for e in arrived if e.number != number], cuts, peers)
    n = len(group) + 1
    entry = dict(number=number, rung=rung, values=dict(values), cuts=cuts, order=order, peers=n)
    if n < min_peers or not pairs:
        return RungEntry(**entry, go_on=True, better=0)
    rows = [TrialRow(number=e.number, metrics=dict(e.values)) for e in group]
    rows.append(TrialRow(number=number, metrics=dict(values)))
    ranks = nondominated_sort(rows, pairs)
    mine = ranks[-1]
    if mine is None:  # a value missing or not finite (a diverging trial): it ranks last
        better = sum(r is not None for r in ranks[:-1])
    else:
        better = sum(r is not None and r < mine for r in ranks[:-1])
    return RungEntry(**entry, go_on=better < math.ceil(keep * n), better=better)


def replay(entries: Sequence[RungEntry], *, objectives, keep: float, min_peers: int,
           peers: str = "same_cuts") -> list[RungEntry]:
    """The decisions for `entries` (what trials had at each rung) made again from their values, the
    trials arriving at each rung in their `order` and a trial stopped at a rung reaching none after it:
    a simulation of early stopping over trials that all trained to the end (a resumed study keeps the
    decisions it recorded instead)."""
    out, stopped, by_rung = [], set(), {}
    for e in sorted(entries, key=lambda e: (e.rung, e.order)):
        if e.number in stopped:
            continue
        arrived = by_rung.setdefault(e.rung, [])
        decided = decide(arrived, e.number, e.rung, e.values, e.cuts, objectives=objectives, keep=keep,
                         min_peers=min_peers, peers=peers)
        arrived.append(decided)
        out.append(decided)
        if not decided.go_on:
            stopped.add(e.number)
    return out
