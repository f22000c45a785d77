"""The metrics table (adsearch/metrics.py): directions, ratios against the baseline, and numbers
written the same way in every view."""

from __future__ import annotations

import math

import pytest

from adsearch.metrics import (METRICS, OBJECTIVES, RATIOS, against_baseline, count, percent, ratio, seconds,
                              times_fewer, value, widths, with_ratios)


def test_numbers_read_well():
    assert (count(1_150_000), count(9.5e6), count(41.0e9), count(512), count(None)) == \
        ("1.15M", "9.50M", "41.0G", "512", "—")
    assert (percent(0.9861), seconds(12.34), seconds(185), seconds(3725)) == ("98.6%", "12.3 s", "3m 05s", "1h 02m")
    assert [against_baseline(d) for d in (0.0028, -0.0028, 0.0004)] == ["0.3 points below", "0.3 points above",
                                                                         "level with"]
    assert (value(0.123456), value([5, 10]), value(float("nan")), widths([8, 16]), widths([])) == \
        ("0.123", "[5, 10]", "—", "8/16", "—")
    assert (times_fewer(0.02), times_fewer(1.5), times_fewer(None), times_fewer(0)) == ("50.0x fewer", "1.50x more", "", "")


def test_every_objective_has_a_direction_and_every_metric_a_label_and_format():
    assert OBJECTIVES["accuracy"] == "max" and OBJECTIVES["params"] == "min" and OBJECTIVES["accuracy_drop"] == "min"
    assert "loss" not in OBJECTIVES and "epoch" not in OBJECTIVES  # recorded, not searched for
    assert all(f"{cost}_ratio" in OBJECTIVES for cost in RATIOS)
    assert METRICS["params"].text(16_028) == "16.0k" and METRICS["accuracy"].text(0.9917) == "99.2%"
    assert METRICS["wall_s"].text(185) == "3m 05s" and METRICS["latency_ms"].text(1.234) == "1.23 ms"


def test_ratios_against_the_baseline_by_hand():
    base = {"accuracy": 0.98, "params": 1000, "macs": 2e6, "train_macs": 4e9}
    trial = {"accuracy": 0.97, "params": 20, "macs": 1e6, "train_macs": 1e9}
    out = with_ratios(trial, base)
    assert (out["params_ratio"], out["macs_ratio"], out["train_macs_ratio"]) == (0.02, 0.5, 0.25)
    assert math.isclose(out["accuracy_drop"], 0.01) and out["params"] == 20  # the metrics themselves kept
    assert with_ratios(trial, None) == {**trial, "params_ratio": 1.0, "macs_ratio": 1.0, "train_macs_ratio": 1.0,
                                        "accuracy_drop": 0.0}
    assert math.isnan(with_ratios(trial, {**base, "macs": 0})["macs_ratio"])  # no ratio to a zero
    assert math.isnan(ratio(None, 10)) and ratio(5, 10) == 0.5


def test_wilson_intervals_against_values_worked_by_hand():
    from adsearch.metrics import accuracy_interval, percent_interval

    z2 = 1.959963984540054 ** 2
    # 5 of 10: centre (0.5 + z2/20) / (1 + z2/10) = 0.5, half-width z/(1 + z2/10) * sqrt(0.025 + z2/400)
    half = 1.959963984540054 / (1 + z2 / 10) * (0.025 + z2 / 400) ** 0.5
    assert accuracy_interval(0.5, 10) == pytest.approx((0.5 - half, 0.5 + half), abs=1e-12)
    assert accuracy_interval(0.5, 10) == pytest.approx((0.236593, 0.763407), abs=1e-6)
    assert accuracy_interval(1.0, 360) == pytest.approx((360 / (360 + z2), 1.0), abs=1e-12)  # all right
    assert accuracy_interval(0.0, 360) == pytest.approx((0.0, z2 / (360 + z2)), abs=1e-12)  # all wrong
    assert accuracy_interval(355 / 360, 360)[0] < 355 / 360 < accuracy_interval(355 / 360, 360)[1]
    assert all(math.isnan(v) for v in accuracy_interval(0.9, None) + accuracy_interval(None, 100))
    assert percent_interval(0.878, 10_000) == "87.8% (87.1-88.4)" and percent_interval(0.878, None) == "87.8%"
