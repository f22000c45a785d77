"""A trial over several seeds: its replicates (the same trial trained again with other seeds,
`replicates.json`), the row the report shows for it (`mean_row`: each metric the mean over its seeds,
`TrialRow.seeds` its accuracy per seed) and two such trials compared across the seeds both have
(`seed_test`): McNemar's exact test on the test samples of every such seed pooled (at each seed both
were evaluated on the same samples; a seed's split may differ from another's), or where the samples
were not kept a paired t-test over the seeds' accuracies.

One seed's accuracy mixes the method with the luck of an initialisation and a data order; the spread
over seeds is what a reviewer asks for (Liu et al. 2019; Blalock et al. 2020). The study trains the
baseline and the front trials again (`search.replicates`, `adsearch replicate`); the front and the
recommendation then use the means.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass

from adsearch.correctness import SIGNIFICANCE, mcnemar_p, p_text, paired_test
from adsearch.metrics import RATIOS, finite
from adsearch.results.rows import TrialRow

MEANED = ("accuracy", "top5", "loss", "params", "macs", "train_macs", "latency_ms", "wall_s", "spent_train_macs",
          "spent_s")
"""The metrics a replicated trial shows as their mean over its seeds."""
COMPARED = (*(f"{c}_ratio" for c in RATIOS), "accuracy_drop")
"""What a trial records against the baseline: recomputed from the means where the baseline is replicated."""


def seed_results(row: TrialRow, seed: int) -> dict[int, dict]:
    """The row's complete results by seed: its own (`seed`, the study's) and each complete replicate's."""
    out = {seed: {**row.metrics, "correct": row.correct}} if row.complete and row.has("accuracy") else {}
    for s, result in sorted(row.replicates.items()):
        if result.get("state") == "COMPLETE" and finite(result.get("accuracy")):
            out[s] = result
    return out


def mean_row(row: TrialRow, seed: int, *, recompute: bool = False) -> TrialRow:
    """The row as the report shows it: with replicates, each of `MEANED` the mean over its seeds and
    `seeds` its accuracy by seed; without, the row itself. With `recompute` (the baseline is
    replicated) what it recorded against the baseline (`COMPARED`) is dropped, to be computed again
    against the baseline's means (`texts.compared`)."""
    results = seed_results(row, seed)
    if len(results) < 2 and not recompute:
        return row
    metrics = {k: v for k, v in row.metrics.items() if not (recompute and k in COMPARED)}
    if len(results) >= 2:
        for key in MEANED:
            values = [r[key] for r in results.values() if finite(r.get(key))]
            if values:
                metrics[key] = statistics.fmean(values)
    seeds = {s: r["accuracy"] for s, r in results.items()} if len(results) >= 2 else {}
    correct = {s: r["correct"] for s, r in results.items() if isinstance(r.get("correct"), str)} if seeds else {}
    return dataclasses.replace(row, metrics=metrics, seeds=seeds, seed_correct=correct)


@dataclass(frozen=True)
class SeedTest:
    """Two replicated trials, A and B, over the seeds both have: the mean and standard deviation of A's
    accuracy minus B's, and the two-sided p-value that A and B are equally accurate: McNemar's exact
    test of their test samples pooled over the seeds (`pooled`), else a paired t-test (scipy)."""

    seeds: int
    mean: float
    std: float
    p_value: float
    pooled: bool = True

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANCE

    def text(self) -> str:
        """'McNemar over 3 seeds p = 0.031, significant at 5%' ('paired t-test over 3 seeds ...')."""
        p = "< 0.001" if self.p_value < 0.001 else f"= {p_text(self.p_value)}"
        how = "McNemar" if self.pooled else "paired t-test"
        return f"{how} over {self.seeds} seeds p {p}, {'' if self.significant else 'not '}significant at 5%"


def seed_test(a: TrialRow, b: TrialRow) -> SeedTest | None:
    """A against B across the seeds both were trained with (`TrialRow.seeds`, at least 2): McNemar's
    exact test on their test samples pooled over those seeds where both kept them at each, else a paired
    t-test of the accuracies; None with fewer than 2 seeds in common, or for a t-test whose every seed
    gives the same non-zero gap (no spread to test against)."""
    common = sorted(set(a.seeds) & set(b.seeds))
    if len(common) < 2:
        return None
    diffs = [a.seeds[s] - b.seeds[s] for s in common]
    mean, std = statistics.fmean(diffs), statistics.stdev(diffs)
    tests = [paired_test(a.seed_correct.get(s), b.seed_correct.get(s)) for s in common]
    if all(t is not None for t in tests):
        return SeedTest(seeds=len(common), mean=mean, std=std,
                        p_value=mcnemar_p(sum(t.a_only for t in tests), sum(t.b_only for t in tests)))
    if std == 0:
        return SeedTest(seeds=len(common), mean=0.0, std=0.0, p_value=1.0, pooled=False) if mean == 0 else None
    from scipy.stats import ttest_rel  # scipy is heavy: imported when a test is asked for

    p = float(ttest_rel([a.seeds[s] for s in common], [b.seeds[s] for s in common]).pvalue)
    return SeedTest(seeds=len(common), mean=mean, std=std, p_value=p if math.isfinite(p) else 1.0, pooled=False)
