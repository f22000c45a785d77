"""Channel criteria (adsearch/prune/criteria.py) and the width rules of `compress.plan_round`: each
criterion keeps the channels its score ranks highest (on a network with known weights and
densities), `random` repeats by seed, `uniform` keeps the asked fraction, a criterion that cannot
score a group says so, and a trial prunes under each of them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adsearch.prune.compress import ChannelGroup, plan_round
from adsearch.prune.criteria import channel_scores
from adsearch.errors import AdsearchError
from adsearch.models.registry import create_model
from adsearch.spec.loading import parse_spec
from adsearch.spec.pruning import CRITERIA
from adsearch.train.trainer import run_trial


def known_vgg():
    """A two-conv VGG (8 and 6 channels) whose filters, BatchNorm scales and densities each rank
    the channels differently: L1 norm by index, |gamma| by reversed index, density as given."""
    model = create_model("vgg", num_classes=3, in_channels=1, image_size=8, layers=[8, "M", 6])
    groups = model.channel_groups()
    modules = dict(model.named_modules())
    densities = {}
    with torch.no_grad():
        for g in groups:
            conv, bn = (modules[p] for p in g.producers)
            width = conv.out_channels
            for c in range(width):
                conv.weight[c] = (c + 1) / conv.weight[c].numel()  # L1 norm c + 1
                bn.weight[c] = -(width - c) if c % 2 else (width - c)  # |gamma| width - c, signs mixed
            densities[g.name] = torch.tensor([0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4][:width], dtype=torch.float64)
    return model, groups, densities


def uniform_half(model, groups, densities, criterion, *, seed=0, epoch=1):
    scores = channel_scores(model, groups, criterion, densities, seed=seed, epoch=epoch)
    plan = plan_round(groups, densities, scores=scores, widths="uniform", keep=0.5, target_density=1.0,
                      min_channels=1, round_to=1)
    return {name: k.tolist() for name, k in plan.keep.items()}


def test_every_criterion_of_the_spec_is_scored():
    model, groups, densities = known_vgg()
    for criterion in CRITERIA:
        scores = channel_scores(model, groups, criterion, densities, seed=0, epoch=1)
        assert [scores[g.name].numel() for g in groups] == [8, 6]
    with pytest.raises(ValueError, match="unknown criterion"):
        channel_scores(model, groups, "taylor", densities, seed=0, epoch=1)


def test_each_criterion_keeps_the_channels_its_score_ranks_highest():
    model, groups, densities = known_vgg()
    first, second = (g.name for g in groups)
    assert uniform_half(model, groups, densities, "activation_density") == {first: [0, 2, 4, 6], second: [0, 2, 4]}
    assert uniform_half(model, groups, densities, "l1_norm") == {first: [4, 5, 6, 7], second: [3, 4, 5]}
    assert uniform_half(model, groups, densities, "bn_scale") == {first: [0, 1, 2, 3], second: [0, 1, 2]}


def test_random_is_reproducible_by_seed_and_differs_by_seed_and_epoch():
    model, groups, densities = known_vgg()
    once = uniform_half(model, groups, densities, "random", seed=3, epoch=2)
    assert uniform_half(model, groups, densities, "random", seed=3, epoch=2) == once
    assert [len(k) for k in once.values()] == [4, 3]
    others = [uniform_half(model, groups, densities, "random", seed=s, epoch=e) for s, e in ((4, 2), (3, 5), (5, 7))]
    assert any(o != once for o in others)
    before = torch.get_rng_state()
    channel_scores(model, groups, "random", densities, seed=3, epoch=2)
    assert torch.equal(torch.get_rng_state(), before)  # training's random stream is untouched


@pytest.mark.parametrize("keep,round_to,min_channels,expected", [
    (0.5, 1, 1, [5, 3]),  # ceil(0.5 x 10), ceil(0.5 x 6)
    (0.3, 1, 1, [3, 2]),
    (0.3, 4, 1, [4, 4]),  # rounded up to a multiple of 4
    (0.1, 1, 3, [3, 3]),  # never below min_channels
    (0.9, 4, 1, [10, 6]),  # rounding up past the width leaves the group whole
])
def test_uniform_keeps_the_asked_fraction_of_every_group_whatever_its_density(keep, round_to, min_channels, expected):
    groups = [ChannelGroup("a", ["a"], [], ["a"]), ChannelGroup("b", ["b"], [], ["b"])]
    densities = {"a": torch.full((10,), 0.99), "b": torch.full((6,), 0.05)}
    plan = plan_round(groups, densities, widths="uniform", keep=keep, target_density=0.5,
                      min_channels=min_channels, round_to=round_to)
    assert [plan.new_widths[g] for g in ("a", "b")] == expected


def test_density_widths_leave_dense_groups_alone_and_uniform_does_not():
    groups = [ChannelGroup("a", ["a"], [], ["a"]), ChannelGroup("b", ["b"], [], ["b"], prunable=False)]
    densities = {"a": torch.full((10,), 0.9), "b": torch.full((6,), 0.1)}
    common = dict(target_density=0.8, min_channels=1, round_to=1)
    assert plan_round(groups, densities, widths="density", **common).new_widths == {"a": 10, "b": 6}
    assert plan_round(groups, densities, widths="uniform", keep=0.5, **common).new_widths == {"a": 5, "b": 6}
    with pytest.raises(ValueError, match="widths must be density, uniform or uniform_matched"):
        plan_round(groups, densities, widths="half", **common)


def test_a_criterion_without_the_layers_it_reads_says_so():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
    groups = [ChannelGroup("0", producers=["0"], consumers=["2"], monitors=["1"])]
    densities = {"0": torch.rand(4)}
    with pytest.raises(AdsearchError, match="no BatchNorm with a scale \\(affine\\) writes the channels of group '0'"):
        channel_scores(model, groups, "bn_scale", densities, seed=0, epoch=1)
    assert channel_scores(model, groups, "l1_norm", densities, seed=0, epoch=1)["0"].shape == (4,)


TRIAL = """\
name: c
model: {arch: vgg, layers: [8, M, 16]}
data: {dataset: synthetic, num_samples: 128, image_size: 8}
train: {epochs: 2, batch_size: 32, device: cpu}
pruning: {compress_at: [1], min_channels: 2, widths: uniform, keep: 0.5}
"""


@pytest.mark.parametrize("criterion", CRITERIA)
def test_a_trial_prunes_under_each_criterion_to_the_uniform_widths(criterion):
    spec = parse_spec(TRIAL, overrides={"pruning.criterion": criterion})
    result = run_trial(spec)
    assert result["base_widths"] == [8, 16]
    assert result["widths"] == [4, 8]
    assert result["rounds"] == 1 and result["compressions"][0]["epoch"] == 1
