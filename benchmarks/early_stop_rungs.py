"""How well a rung's ranking predicts a study's final front: the measurement behind `search.early_stop`.

    python benchmarks/early_stop_rungs.py REPORTS/fashion_mnist_s0 REPORTS/fashion_mnist_s1 ...

Reads studies whose trials all trained to the end (early stopping off) and, from each trial's
per-epoch history, what it had at every epoch: accuracy, parameters and inference MACs after that
epoch's cut, training MACs so far, cuts made. Then, per study and pooled:

1. For each candidate rung (epoch): Spearman's rank correlation between a trial's non-domination
   rank at the rung (over the study's objectives, among every trial there or only among those with
   as many cuts) and its final rank; how many final-front trials are in a worse half there.
2. For each candidate rule (rungs, peers, keep, min_peers): the decisions `adsearch.study.halving`
   would have made, the trials arriving in the order of their numbers (about the order they ran in,
   two at a time), and then: the final-front trials it would have stopped, the training MACs it
   would have saved (each stopped trial's MACs after its rung: prefix sharing of those later epochs
   is ignored), and the hypervolume of what is left against the whole study's (accuracy, parameters
   / baseline, training MACs / baseline; reference: the baseline's accuracy - 10 points and its costs).

This replays decisions over trials that a sampler chose without early stopping; a real run with it
on also changes what the sampler proposes next (`bench_early_stop.py` measures that).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from adsearch.prune.cost import train_macs
from adsearch.results.pareto import hypervolume, nondominated_sort
from adsearch.results.reading import read_study
from adsearch.results.rows import TrialRow
from adsearch.study.halving import RungEntry, replay, rung_objectives

OBJECTIVES = [("accuracy", "max"), ("params", "min"), ("train_macs", "min")]


def at_epoch(row: TrialRow, epoch: int) -> tuple[dict, int]:
    """What trial `row` had after epoch `epoch` (its cut included): objective values, cuts so far."""
    history = row.history[:epoch]
    spent = sum(train_macs(h["macs"], h["samples"]) for h in history)
    cut = [c for c in row.compressions if c["epoch"] <= epoch]
    last = history[-1]
    params = cut[-1]["params"] if cut and cut[-1]["epoch"] == epoch else last["params"]
    macs = cut[-1]["macs"] if cut and cut[-1]["epoch"] == epoch else last["macs"]
    return {"accuracy": last["accuracy"], "params": params, "macs": macs, "train_macs": spent}, len(cut)


def trials_of(directory: Path) -> tuple[list[TrialRow], TrialRow]:
    record = read_study(directory)
    rows = [r for r in record.search_rows if r.complete and not r.is_repeat and r.history]
    for r in rows:  # the history's sum is the trial's own figure
        whole, _ = at_epoch(r, len(r.history))
        assert abs(whole["train_macs"] - r.metrics["train_macs"]) <= 1e-6 * r.metrics["train_macs"], r.number
    return sorted(rows, key=lambda r: r.number), record.baseline


def final_ranks(rows: list[TrialRow]) -> list[int]:
    return nondominated_sort(rows, OBJECTIVES)


def entries(rows: list[TrialRow], rung: int) -> list[RungEntry]:
    out = []
    for order, r in enumerate(rows):
        values, cuts = at_epoch(r, rung)
        out.append(RungEntry(number=r.number, rung=rung, values=values, cuts=cuts, order=order))
    return out


def rung_rank(es: list[RungEntry], peers: str) -> list[int]:
    """Each entry's non-domination rank at the rung among its peers."""
    ranks = [0] * len(es)
    groups = {}
    for i, e in enumerate(es):
        groups.setdefault(e.cuts if peers == "same_cuts" else 0, []).append(i)
    for members in groups.values():
        rows = [TrialRow(number=es[i].number, metrics=es[i].values) for i in members]
        for i, rank in zip(members, nondominated_sort(rows, OBJECTIVES)):
            ranks[i] = rank
    return ranks


def correlation(rows: list[TrialRow], rung: int, peers: str) -> dict:
    es = entries(rows, rung)
    at, final = rung_rank(es, peers), final_ranks(rows)
    rho = spearmanr(at, final).statistic if len(set(at)) > 1 else math.nan
    front = [i for i, f in enumerate(final) if f == 0]
    # a front trial "in the worse half": more than half of its peers sort into a better front
    worse = 0
    for i in front:
        group = [j for j, e in enumerate(es) if peers == "all" or e.cuts == es[i].cuts]
        better = sum(at[j] < at[i] for j in group)
        worse += better >= math.ceil(0.5 * len(group))
    return {"rho": rho, "front": len(front), "front_in_worse_half": worse}


def normalised(rows: list[TrialRow], baseline: TrialRow) -> list[TrialRow]:
    b = baseline.metrics
    return [TrialRow(number=r.number, metrics={"accuracy": r.metrics["accuracy"],
                                               "params": r.metrics["params"] / b["params"],
                                               "train_macs": r.metrics["train_macs"] / b["train_macs"]})
            for r in rows]


def simulate(rows: list[TrialRow], baseline: TrialRow, rungs: list[int], peers: str, keep: float,
             min_peers: int) -> dict:
    es = [e for rung in rungs for e in entries(rows, rung)]
    decided = replay(es, objectives=OBJECTIVES, keep=keep, min_peers=min_peers, peers=peers)
    stopped = {e.number: e for e in decided if not e.go_on}
    final = final_ranks(rows)
    front = {r.number for r, f in zip(rows, final) if f == 0}
    total = sum(r.metrics["train_macs"] for r in rows)
    saved = sum(r.metrics["train_macs"] - stopped[r.number].values["train_macs"] for r in rows if r.number in stopped)
    kept = [r for r in rows if r.number not in stopped]
    reference = (baseline.metrics["accuracy"] - 0.10, 1.0, 1.0)
    hv_all = hypervolume(normalised(rows, baseline), OBJECTIVES, reference)
    hv_kept = hypervolume(normalised(kept, baseline), OBJECTIVES, reference)
    return {"stopped": len(stopped), "trials": len(rows), "front": len(front),
            "front_stopped": len(front & set(stopped)), "macs_saved": saved / total,
            "hv_kept": hv_kept / hv_all if hv_all else math.nan}


RULES = [(rungs, peers, keep, min_peers)
         for rungs in ([3], [6], [9], [12], [15], [6, 12], [9, 15], [3, 9, 15])
         for peers in ("same_cuts", "all")
         for keep in (0.5, 1 / 3)
         for min_peers in (3,)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("studies", nargs="+", type=Path)
    ap.add_argument("--rungs", default="2,3,4,5,6,8,9,10,12,15,17")
    ap.add_argument("--json", action="store_true", help="also print every figure as one JSON line")
    args = ap.parse_args()
    studies = {d.name: trials_of(d) for d in args.studies}
    print(f"objectives: {', '.join(m for m, _ in rung_objectives(OBJECTIVES))}; studies: "
          + ", ".join(f"{name} ({len(rows)} trials)" for name, (rows, _) in studies.items()))
    print("\n## Rank correlation of a rung's non-domination rank with the final one (Spearman; per study)\n")
    print("| rung | peers | rho per study | mean rho | final-front trials in a worse half at the rung |")
    print("| --- | --- | --- | --- | --- |")
    summary = {"correlation": [], "rules": []}
    for rung in map(int, args.rungs.split(",")):
        for peers in ("all", "same_cuts"):
            cs = [correlation(rows, rung, peers) for rows, _ in studies.values()]
            rhos = [c["rho"] for c in cs]
            mean = float(np.nanmean(rhos)) if not all(math.isnan(r) for r in rhos) else math.nan
            worse, front = sum(c["front_in_worse_half"] for c in cs), sum(c["front"] for c in cs)
            print(f"| {rung} | {peers} | {', '.join(f'{r:+.2f}' for r in rhos)} | {mean:+.2f} | {worse} of {front} |")
            summary["correlation"].append({"rung": rung, "peers": peers, "rho": rhos, "worse": worse, "front": front})
    print("\n## Simulated early stopping (trials arriving in number order; pooled over the studies)\n")
    print("| rungs | peers | keep | min peers | trials stopped | final-front trials stopped | training MACs saved "
          "| hypervolume kept |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for rungs, peers, keep, min_peers in RULES:
        sims = [simulate(rows, base, rungs, peers, keep, min_peers) for rows, base in studies.values()]
        stopped, trials = sum(s["stopped"] for s in sims), sum(s["trials"] for s in sims)
        fs, front = sum(s["front_stopped"] for s in sims), sum(s["front"] for s in sims)
        saved = np.mean([s["macs_saved"] for s in sims])
        hv = [s["hv_kept"] for s in sims]
        print(f"| {rungs} | {peers} | {keep:.2f} | {min_peers} | {stopped} of {trials} | {fs} of {front} | "
              f"{100 * saved:.0f}% | {', '.join(f'{h:.3f}' for h in hv)} |")
        summary["rules"].append({"rungs": rungs, "peers": peers, "keep": keep, "min_peers": min_peers, "sims": sims})
    if args.json:
        print("\n" + json.dumps(summary, default=float))


if __name__ == "__main__":
    sys.exit(main())
