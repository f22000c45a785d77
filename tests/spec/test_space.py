"""The search space (adsearch/spec/space.py): dimensions, choices as Optuna carries them, dotted paths."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from adsearch.spec.space import DistributionDim, ValuesDim, decode_choice, encode_choice, probe_values, set_path


def test_list_and_mapping_choices_travel_as_json_text_and_come_back_as_written():
    dim = ValuesDim(values=[[5], [5, 10], {"a": 1}, 0.5])
    assert [encode_choice(v) for v in dim.values] == ["[5]", "[5, 10]", '{"a": 1}', 0.5]
    assert [decode_choice(dim, encode_choice(v)) for v in dim.values] == [[5], [5, 10], {"a": 1}, 0.5]
    assert decode_choice(DistributionDim(distribution="int_uniform", low=1, high=4), 3.0) == 3  # an int again


def test_set_path_makes_a_copy_with_the_value_and_the_sections_it_needs():
    data = {"train": {"epochs": 5}}
    assert set_path(data, "train.optimizer.lr", 0.1) == {"train": {"epochs": 5, "optimizer": {"lr": 0.1}}}
    assert data == {"train": {"epochs": 5}}  # left as it was
    with pytest.raises(KeyError, match="'epochs' is a value, not a section"):
        set_path(data, "train.epochs.x", 1)


def test_a_range_is_probed_at_its_bounds_and_at_a_value_between():
    assert probe_values(DistributionDim(distribution="uniform", low=0.5, high=0.9)) == [0.5, 0.9, pytest.approx(0.7)]
    assert probe_values(DistributionDim(distribution="int_uniform", low=1, high=3)) == [1, 3, 2]
    assert probe_values(DistributionDim(distribution="uniform", low=0.0, high=1.0, step=0.25)) == [0.0, 1.0, 0.25]


@pytest.mark.parametrize("bad, message", [
    ({"distribution": "uniform", "low": 1, "high": 1}, "low must be < high"),
    ({"distribution": "log_uniform", "low": 0, "high": 1}, "log_uniform needs low > 0"),
    ({"distribution": "int_uniform", "low": 1, "high": 5, "step": 0.5}, "int_uniform needs an integer step"),
    ({"distribution": "uniform", "low": 0, "high": 1, "step": 2}, "step must be at most high - low"),
])
def test_a_range_that_cannot_be_drawn_is_refused_with_why(bad, message):
    with pytest.raises(ValidationError, match=message):
        DistributionDim(**bad)
