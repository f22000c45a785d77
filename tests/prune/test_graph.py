"""Coupled channel groups of a traced network (`adsearch.prune.graph`): residual additions, concatenations,
depthwise convolutions, and the message for a network that cannot be traced or pruned."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pruning_checks import random_plan

from adsearch.prune.compress import ChannelGroup, apply_plan, group_widths
from adsearch.prune.graph import channel_groups, traced_channel_groups
from adsearch.prune.tracing import UnsupportedModel
from adsearch.models.registry import create_model
from adsearch.spec.loading import SpecError, parse_spec


def test_a_residual_add_couples_both_inputs_and_a_concatenation_places_each_at_its_offset():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
            self.c = nn.Conv2d(4, 6, 1)
            self.d = nn.Conv2d(10, 5, 1)
            self.fc = nn.Linear(5, 2)

        def forward(self, x):
            x = torch.relu(self.a(x))
            y = torch.relu(self.b(x) + x)  # a and b write the same 4 channels
            z = torch.cat([y, torch.relu(self.c(y))], 1)  # 4 + 6 channels read by d
            return self.fc(torch.relu(self.d(z)).mean((2, 3)))

    groups = {g.name: g for g in channel_groups(Net())}
    assert sorted(groups) == ["a", "c", "d"]
    assert set(groups["a"].producers) == {"a", "b"}
    assert (groups["a"].slices["d"].offset, groups["a"].slices["d"].width) == (0, 4)
    assert (groups["c"].slices["d"].offset, groups["c"].slices["d"].width) == (4, 6)
    assert groups["d"].consumers == ["fc"]


def _as_sets(groups: list[ChannelGroup]) -> set:
    return {(frozenset(g.producers), frozenset(g.consumers), frozenset(g.monitors)) for g in groups}


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_hand_written_groups_equal_the_traced_channel_graph(arch):
    model = create_model(arch, num_classes=10, width_mult=0.25)
    assert _as_sets(model.channel_groups()) == _as_sets(traced_channel_groups(model))


def test_depthwise_convs_keep_inputs_and_outputs_together():
    model = create_model("torchvision:mobilenet_v2", num_classes=10)
    groups = channel_groups(model)
    apply_plan(model, groups, random_plan(groups, group_widths(model, groups), seed=3))
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert depthwise and all(m.groups == m.in_channels == m.out_channels for m in depthwise)
    assert all(m.weight.shape[1] == 1 for m in depthwise)


def test_densenet_concatenated_groups_sit_at_offsets():
    model = create_model("torchvision:densenet121", num_classes=10)
    groups = {g.name: g for g in channel_groups(model)}
    growth = groups["features.denseblock1.denselayer1.conv2"]  # 32 new channels after the 64 of the stem
    assert growth.slices["features.denseblock1.denselayer2.norm1"].offset == 64
    assert growth.slices["features.denseblock1.denselayer2.conv1"].offset == 64
    assert "features.denseblock1.denselayer6.relu1" in growth.monitors
    last = groups["features.denseblock4.denselayer16.conv2"]  # the last 32 of norm5's 1024 channels
    assert "features.norm5" in last.monitors  # counted where the functional ReLU reads norm5
    assert (last.slices["features.norm5"].offset, last.slices["features.norm5"].width) == (992, 32)


def test_unsupported_op_names_module_and_op_and_suggests_method_none():
    with pytest.raises(SpecError) as err:
        parse_spec("name: s\nmodel: {arch: 'torchvision:convnext_tiny'}")
    assert "module 'features.0.1': op permute" in str(err.value)
    assert "pruning.method: none" in str(err.value)
    assert parse_spec("name: s\nmodel: {arch: 'torchvision:convnext_tiny'}\ndata: {image_size: 32}\npruning: {method: none}")


def test_untraceable_model_names_the_module():
    class Gate(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x  # data-dependent control flow

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), Gate(), nn.Flatten(), nn.LazyLinear(2))
    with pytest.raises(UnsupportedModel, match=r"module '2' \(Gate\) cannot be traced.*pruning.method: none"):
        channel_groups(model)
