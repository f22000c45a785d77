"""The one table of metrics: names, which way is better, units, labels and how each is written.

Every module that names a metric (the trainer's results, the spec's objectives, the study's
records, the report, `show`, `ls` and export) takes it from `METRICS`; ratios against the baseline
are computed only by `with_ratios`. Numbers are written for people only by the functions here
(`count`, `percent`, `seconds`, ...), so a value reads the same in every view.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable


def finite(value) -> bool:
    """Whether `value` is a real, finite number (not a bool, not None, not NaN)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


# --- writing numbers for people --------------------------------------------------------------


def count(n) -> str:
    """1150000 -> '1.15M', 9.5e6 -> '9.50M', 4.1e10 -> '41.0G', 512 -> '512'."""
    if not finite(n):
        return "—"
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return _three_digits(n / size) + unit
    return str(int(n)) if float(n).is_integer() else _three_digits(n)


def _three_digits(x: float) -> str:
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}" if abs(x) < 100 else f"{x:.0f}"


def percent(x) -> str:
    """0.9861 -> '98.6%'."""
    return f"{100 * x:.1f}%" if finite(x) else "—"


def points(x) -> str:
    """An accuracy difference in percentage points: 0.004 -> '0.4', -0.002 -> '-0.2'."""
    return f"{100 * x:.1f}" if finite(x) else "—"


def accuracy_interval(accuracy, samples, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of an accuracy measured on `samples` test samples (scipy's
    `binomtest(...).proportion_ci(method="wilson")`): (low, high) as fractions, NaNs when either is
    unknown. The accuracy is k / samples; k is recovered by rounding."""
    if not (finite(accuracy) and finite(samples) and samples >= 1 and 0 <= accuracy <= 1):
        return math.nan, math.nan
    from scipy.stats import binomtest  # scipy is heavy: imported when an interval is asked for

    n = int(samples)
    ci = binomtest(int(round(accuracy * n)), n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def percent_interval(accuracy, samples) -> str:
    """An accuracy with its 95% Wilson interval: 0.878 on 10,000 -> '87.8% (87.1-88.4)'; without
    the number of samples, the accuracy alone."""
    low, high = accuracy_interval(accuracy, samples)
    if not finite(low):
        return percent(accuracy)
    return f"{percent(accuracy)} ({100 * low:.1f}-{100 * high:.1f})"


def against_baseline(drop, unit: str = "points") -> str:
    """An accuracy drop said the right way round: 0.003 -> '0.3 points below', -0.003 -> '0.3 points above'."""
    if not finite(drop):
        return "—"
    if round(100 * drop, 1) == 0:
        return "level with"
    return f"{points(abs(drop))} {unit} {'below' if drop > 0 else 'above'}"


def seconds(s) -> str:
    """12.3 -> '12.3 s', 185 -> '3m 05s', 3725 -> '1h 02m'."""
    if not finite(s):
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    minutes, sec = divmod(int(round(s)), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    return f"{minutes // 60}h {minutes % 60:02d}m"


def value(v) -> str:
    """A searched parameter's (or any plain) value: lists as [5, 10], floats to 3 significant digits."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v)
    return str(v)


def widths(ws) -> str:
    """[8, 16, 32] -> '8/16/32'."""
    return "/".join(str(w) for w in ws) if isinstance(ws, (list, tuple)) and ws else "—"


def times_fewer(ratio) -> str:
    """A ratio trial / baseline as people say it: 0.02 -> '50.0x fewer', 1.5 -> '1.50x more'; '' if unknown."""
    if not finite(ratio) or ratio <= 0:
        return ""
    return f"{1 / ratio:.1f}x fewer" if ratio <= 1 else f"{ratio:.2f}x more"


# --- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """A metric of a trial: its name in specs and tables, which way is better (None: neither),
    its unit, the label a person reads, and how its value is written."""

    name: str
    better: str | None
    unit: str
    label: str
    format: Callable[[Any], str]
    objective: bool = True
    """Whether a spec may name it in `search.objectives`."""

    def text(self, v) -> str:
        return self.format(v)


def _ms(v) -> str:
    return f"{v:.3g} ms" if finite(v) else "—"


def _ratio(v) -> str:
    return f"{v:.3g}" if finite(v) else "—"


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", "max", "fraction", "accuracy", percent),
    Metric("top5", "max", "fraction", "top-5 accuracy", percent),
    Metric("loss", "min", "nats", "loss", value, objective=False),
    Metric("params", "min", "parameters", "params", count),
    Metric("macs", "min", "MACs per sample", "MACs", count),
    Metric("train_macs", "min", "MACs", "train MACs", count),
    Metric("latency_ms", "min", "ms", "latency", _ms),
    Metric("wall_s", "min", "s", "wall time", seconds),
    Metric("params_ratio", "min", "trial / baseline", "params ratio", _ratio),
    Metric("macs_ratio", "min", "trial / baseline", "MACs ratio", _ratio),
    Metric("train_macs_ratio", "min", "trial / baseline", "train MACs ratio", _ratio),
    Metric("accuracy_drop", "min", "fraction", "drop (pts)", points),
    Metric("test_samples", None, "samples", "test samples", count, objective=False),
    Metric("epoch", None, "epochs", "epoch", value, objective=False),
    Metric("rounds", None, "rounds", "rounds", value, objective=False),
    # what the study actually ran for the trial, with the prefix cache (adsearch.train.prefixes)
    Metric("spent_train_macs", "min", "MACs", "train MACs run", count, objective=False),
    Metric("spent_s", "min", "s", "time run", seconds, objective=False),
    Metric("shared_epochs", None, "epochs", "shared epochs", value, objective=False),
    Metric("shared_from", None, "trial", "shared from", value, objective=False),
    Metric("repeat_of", None, "trial", "repeat of", value, objective=False),
)}
"""Every metric a trial records, in table order."""

SPENDING = ("spent_train_macs", "spent_s", "shared_epochs", "shared_from", "repeat_of")
"""What the study spent on a trial, not what the trial's network or schedule is."""

OBJECTIVES: dict[str, str] = {m.name: m.better for m in METRICS.values() if m.objective}
"""Metric names usable as objectives, with the direction that is better."""

RATIOS = ("params", "macs", "train_macs")
"""Costs compared with the baseline as `<name>_ratio` (trial / baseline)."""

COSTS = {"params": "parameters", "macs": "inference MACs", "train_macs": "training MACs"}
"""Costs plotted against accuracy, with their axis labels."""


def with_ratios(metrics: dict, baseline: dict | None) -> dict:
    """`metrics` plus the `RATIOS` as `<name>_ratio` (trial / baseline) and the accuracy drop.

    Without a baseline a trial is its own reference (ratios 1, drop 0); a baseline value of zero
    or a missing value gives NaN.
    """
    out = dict(metrics)
    if baseline:
        for key in RATIOS:
            out[f"{key}_ratio"] = ratio(metrics.get(key), baseline.get(key))
        out["accuracy_drop"] = (baseline["accuracy"] - metrics["accuracy"]
                                if finite(baseline.get("accuracy")) and finite(metrics.get("accuracy")) else math.nan)
    else:
        out.update({f"{key}_ratio": 1.0 for key in RATIOS}, accuracy_drop=0.0)
    return out


def ratio(value, base) -> float:
    """value / base, or NaN when either is missing or the base is zero."""
    return value / base if finite(value) and finite(base) and base else math.nan
