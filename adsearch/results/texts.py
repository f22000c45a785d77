"""How the report says a trial against the baseline: its ratios (`compared`), 'x fewer' and cost
texts, its searched settings; and when it calls an accuracy gap a difference (`differs`: McNemar's
paired test on the test samples where both trials kept them, else `CLEAR_GAP`)."""

from __future__ import annotations

from collections.abc import Sequence

from adsearch.correctness import Paired, paired_test
from adsearch.results.seeds import SeedTest, seed_test
from adsearch.metrics import count, finite, percent, percent_interval, points, times_fewer, value, with_ratios
from adsearch.results.rows import TrialRow

CLEAR_GAP = 0.005
"""The accuracy gap (a fraction: 0.5 points) the report calls a difference; a smaller one is "no clear
winner" (arms at equal parameters) or a match (a trial against its scratch control)."""


def accuracy_text(row: TrialRow) -> str:
    """The row's accuracy with its 95% interval from its test samples: '87.8% (87.1-88.4)' (the
    accuracy alone for a study recorded without them); over several seeds (`TrialRow.seeds`) the
    mean, its standard deviation in points and how many: '87.8% ± 0.4 (3 seeds)'."""
    if row.accuracy_std is not None:
        return f"{percent(row.metric('accuracy'))} ± {points(row.accuracy_std)} ({len(row.seeds)} seeds)"
    return percent_interval(row.metric("accuracy"), row.metric("test_samples"))


def is_clear_gap(gap: float) -> bool:
    """Whether an accuracy gap is a difference the report names (see `CLEAR_GAP`), as it is written."""
    return round(100 * abs(gap), 1) >= round(100 * CLEAR_GAP, 1)


def paired(a: str | None, b: str | None) -> Paired | None:
    """McNemar's exact test of two trials' correct test samples (`TrialRow.correct`, a control's
    `correct`); None when either has none or they are of different test samples."""
    return paired_test(a, b)


def compare(a: TrialRow, b: TrialRow) -> Paired | SeedTest | None:
    """Trial A against trial B: across the seeds both were trained with where they share two or more
    (`seeds.seed_test`, a paired t-test of their accuracies), else paired on the test samples of their
    first seed (McNemar, `paired`); None when neither is possible."""
    return seed_test(a, b) or paired(a.correct, b.correct)


def differs(gap: float, test: Paired | SeedTest | None) -> bool:
    """Whether the report names an accuracy gap a difference: with a paired test, when it is significant at
    5% (a gap inside the noise is never a winner); without one (a study recorded before trials kept
    their test samples), when it is at least `CLEAR_GAP`."""
    return test.significant if test is not None else is_clear_gap(gap)


def compared(row: TrialRow, key: str, baseline: TrialRow | None) -> float | None:
    """The row's `key` against the baseline (`<cost>_ratio`, trial / baseline, or `accuracy_drop`,
    baseline minus trial): as the trial recorded it, else computed from its metrics and the
    baseline's (`metrics.with_ratios`); None when neither gives a finite number."""
    v = row.metric(key)
    if v is None and baseline is not None and row is not baseline:
        v = with_ratios(row.metrics, baseline.metrics).get(key)
    return v if finite(v) else None


def fewer(row: TrialRow, cost: str, baseline: TrialRow | None) -> str:
    """'50.0x fewer' (or '1.50x more') for the row's `cost` against the baseline; '' for the
    baseline itself and when unknown."""
    return "" if row.is_baseline else times_fewer(compared(row, f"{cost}_ratio", baseline))


def cost_text(row: TrialRow, cost: str, baseline: TrialRow | None) -> str:
    """The row's `cost` with how many times fewer than the baseline: '23.0k (50.0x fewer)'."""
    f = fewer(row, cost, baseline)
    return count(row.metric(cost)) + (f" ({f})" if f else "")


def settings_text(row: TrialRow, paths: Sequence[str], quote: str = "") -> str:
    """The row's values of the searched `paths`: 'pruning.target_density = 0.3, ...' ('' for none);
    each path between `quote`s."""
    return ", ".join(f"{quote}{p}{quote} = {value(row.settings.get(p))}" for p in paths)


def short_settings(settings: dict) -> str:
    """Searched values by the last part of their path, as a progress line says them:
    {'pruning.target_density': 0.5, 'pruning.compress_at': [5, 10]} -> 'target_density=0.5, compress_at=[5, 10]'."""
    return ", ".join(f"{path.rsplit('.', 1)[-1]}={value(v)}" for path, v in settings.items())
