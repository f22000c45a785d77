"""One step and one pass (adsearch.train.step): the learning-rate factor of each schedule."""

from __future__ import annotations

import pytest

from adsearch.spec.training import ScheduleSpec
from adsearch.train.step import lr_factor


def test_lr_schedules():
    assert lr_factor(ScheduleSpec(name="constant"), 5, 10) == 1.0
    assert lr_factor(ScheduleSpec(name="cosine"), 0, 10) == 1.0
    assert lr_factor(ScheduleSpec(name="cosine"), 5, 10) == pytest.approx(0.5)
    assert lr_factor(ScheduleSpec(name="step", step_size=2, gamma=0.1), 3, 10) == pytest.approx(0.1)
    assert lr_factor(ScheduleSpec(name="step", step_size=2, gamma=0.1), 4, 10) == pytest.approx(0.01)
