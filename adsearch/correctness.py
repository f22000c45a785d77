"""Which test samples a trial got right, and two trials compared on them.

Each finished trial records one bit per test sample (`record`: one string, 'samples:split:bits', the
number of samples, a fingerprint of the split and the bits packed and base64-encoded; one string, as
Ray Tune flattens a nested result before a searcher sees it). Two trials evaluated on the same test
split are then compared *paired*: only the samples one got right and the other wrong tell them apart,
and McNemar's exact test asks whether those split evenly (`paired_test`). On 10,000 test images a
0.5-point gap may be significant or not depending on how many samples the two disagree on, which
no pair of intervals shows.

The split's fingerprint is a hash of its labels in evaluation order: the same samples give the same
hash, and a split drawn with another seed (digits' test split follows `seed`) gives another, so
trials on different samples are never paired.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import numpy as np

SIGNIFICANCE = 0.05
"""The level at which a paired difference is called significant."""


def record(correct, labels) -> str:
    """What a trial keeps of its evaluation, 'samples:split:bits': the number of samples, the
    fingerprint of the split (`labels`, in evaluation order) and `correct` (one bool per test sample,
    in the same order) packed into bits, base64. A plain string: JSON, Optuna user attributes, Ray's
    results and checkpoints keep it as it is."""
    hits = np.asarray(correct, dtype=bool).reshape(-1)
    ys = np.asarray(labels, dtype=np.int64).reshape(-1)
    if hits.shape != ys.shape:
        raise ValueError(f"{hits.size} correctness bits for {ys.size} labels")
    return f"{hits.size}:{split_fingerprint(ys)}:{base64.b64encode(np.packbits(hits).tobytes()).decode('ascii')}"


def _parts(rec) -> tuple[int, str, str] | None:
    """(samples, split, bits) of a `record`, or None when `rec` is not one."""
    parts = rec.split(":") if isinstance(rec, str) else []
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1], parts[2]


def split_fingerprint(labels) -> str:
    """A short hash of a test split's labels in evaluation order."""
    return hashlib.sha256(np.asarray(labels, dtype=np.int64).tobytes()).hexdigest()[:16]


def bits(rec: str) -> np.ndarray:
    """The correctness bits of a `record`, one bool per test sample.

    Raises:
        ValueError: the record is not one `record` wrote (a torn or edited file)."""
    parts = _parts(rec)
    if parts is None:
        raise ValueError(f"not a record of correct test samples (samples:split:bits): {str(rec)[:40]!r}")
    n = parts[0]
    try:
        packed = np.frombuffer(base64.b64decode(parts[2], validate=True), dtype=np.uint8)
    except ValueError as exc:
        raise ValueError(f"not a record of correct test samples: {exc}") from None
    if packed.size != -(-n // 8):
        raise ValueError(f"{packed.size} bytes of bits for {n} samples")
    return np.unpackbits(packed, count=n).astype(bool)


def samples(rec) -> int | None:
    """The number of test samples of a `record` (None: not one)."""
    parts = _parts(rec)
    return parts[0] if parts else None


def accuracy(rec: str) -> float:
    """The accuracy a `record` holds: the fraction of its bits set."""
    return float(bits(rec).mean())


def comparable(a: str | None, b: str | None) -> bool:
    """Whether two records are of the same test samples (so can be paired)."""
    pa, pb = _parts(a), _parts(b)
    return pa is not None and pb is not None and pa[:2] == pb[:2]


@dataclass(frozen=True)
class Paired:
    """Two trials, A and B, on the same test samples: how many only A got right (`a_only`), only B
    (`b_only`), and McNemar's exact two-sided p-value that A and B are equally accurate."""

    samples: int
    a_only: int
    b_only: int
    p_value: float

    @property
    def significant(self) -> bool:
        """Whether the difference is significant at `SIGNIFICANCE` (5%)."""
        return self.p_value < SIGNIFICANCE

    @property
    def gap(self) -> float:
        """A's accuracy minus B's (a fraction)."""
        return (self.a_only - self.b_only) / self.samples

    def text(self) -> str:
        """'McNemar p = 0.031, significant at 5%', 'McNemar p = 0.42, not significant at 5%', 'McNemar
        p < 0.001, significant at 5%'."""
        p = "< 0.001" if self.p_value < 0.001 else f"= {p_text(self.p_value)}"
        return f"McNemar p {p}, {'' if self.significant else 'not '}significant at 5%"


def p_text(p: float) -> str:
    """A p-value as the report writes it, to two significant digits: 0.0312 -> '0.031', 0.42 -> '0.42',
    1.0 -> '1', 3e-6 -> '<0.001'."""
    return "<0.001" if p < 0.001 else f"{p:.2g}"


def paired_test(a: str | None, b: str | None) -> Paired | None:
    """McNemar's exact test of records `a` and `b` (`record`): a two-sided binomial test (scipy) of the
    samples only one of them got right, split evenly under equal accuracy. None when either is
    missing or they are not of the same test samples (`comparable`)."""
    if not comparable(a, b):
        return None
    try:
        x, y = bits(a), bits(b)
    except ValueError:
        return None
    a_only, b_only = int((x & ~y).sum()), int((~x & y).sum())
    return Paired(samples=int(x.size), a_only=a_only, b_only=b_only, p_value=mcnemar_p(a_only, b_only))


def mcnemar_p(a_only: int, b_only: int) -> float:
    """McNemar's exact two-sided p-value from the discordant counts (1.0 when there are none)."""
    if a_only + b_only == 0:
        return 1.0
    from scipy.stats import binomtest  # scipy is heavy: imported when a test is asked for

    return float(binomtest(a_only, a_only + b_only, 0.5).pvalue)
