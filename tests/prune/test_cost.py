"""Cost of a network (adsearch.prune.cost): parameters, inference MACs, training MACs, latency."""

from __future__ import annotations

import torch
from torch import nn

from adsearch.prune.cost import count_macs, count_params, latency_ms, train_macs


def hand_net() -> nn.Module:
    """Conv 1->2 (3x3, pad 1, no bias) on 4x4, BN, ReLU, flatten (2*16 = 32 features), Linear 32->5."""
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, bias=False),
        nn.BatchNorm2d(2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32, 5),
    )


def test_macs_of_a_hand_computable_net():
    # conv: 1 in x 2 out x 9 taps x 16 positions = 288; Linear: 32 x 5 = 160; BN and ReLU count 0
    assert count_macs(hand_net(), (1, 4, 4)) == 288 + 160


def test_macs_scale_with_the_input_size_and_are_per_sample():
    conv = nn.Conv2d(3, 4, 1, bias=False)
    assert count_macs(conv, (3, 5, 5)) == 3 * 4 * 25
    assert count_macs(conv, (3, 10, 10)) == 3 * 4 * 100


def test_count_macs_keeps_the_training_mode_and_needs_no_grad():
    model = hand_net().train()
    count_macs(model, (1, 4, 4))
    assert model.training
    model.eval()
    count_macs(model, (1, 4, 4))
    assert not model.training


def test_count_params():
    # conv 1*2*9 = 18, BN 2 weights + 2 biases = 4 (running stats are buffers), Linear 32*5 + 5 = 165
    assert count_params(hand_net()) == 18 + 4 + 165


def test_train_macs_is_three_forwards_per_sample_seen():
    assert train_macs(448, 10) == 3 * 448 * 10
    assert train_macs(448, 0) == 0


def test_latency_is_a_positive_time_and_keeps_the_mode():
    model = hand_net().train()
    ms = latency_ms(model, (1, 4, 4), repeats=3)
    assert 0 < ms < 1000
    assert model.training
