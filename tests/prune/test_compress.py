"""Compression (adsearch.prune.compress): the width rule, the kept channels, the plan, physical removal."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from adsearch.prune.compress import (RoundPlan, apply_plan, group_widths, kept_channels, plan_round, planned_params,
                                     planned_width)
from adsearch.prune.cost import count_params
from adsearch.models.registry import create_model

LAYERS = [8, "M", 16, 16]


def small_vgg(widths=None) -> nn.Module:
    torch.manual_seed(0)
    return create_model("vgg", layers=LAYERS, num_classes=3, in_channels=1, image_size=8, widths=widths)


def trained_a_little(model: nn.Module, optimizer=None, steps: int = 2) -> torch.optim.Optimizer:
    """A few SGD steps so BN statistics, weights and momentum buffers are not at their defaults."""
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(steps):
        x = torch.randn(6, 1, 8, 8, generator=gen)
        y = torch.arange(6) % 3
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return optimizer


def plan_for(model, keep: dict[str, list[int] | None]) -> RoundPlan:
    groups = model.channel_groups()
    old = dict(zip([g.name for g in groups], group_widths(model, groups)))
    return RoundPlan(keep={g: (None if k is None else torch.tensor(k)) for g, k in keep.items()},
                     density={}, old_widths=old)


def outputs_of(model: nn.Module, names: list[str], x: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The model's output and (cloned: the ReLU after is in-place) outputs of modules `names`."""
    modules = dict(model.named_modules())
    seen = {}
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.detach().clone()))
               for n in names]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    return out, seen


# --- the width rule and the kept channels -------------------------------------------------------


def test_planned_width_is_the_ceiling_of_density_times_width():
    assert planned_width(0.3, 10, min_channels=1, round_to=1) == 3
    assert planned_width(0.31, 10, min_channels=1, round_to=1) == 4  # ceil(3.1)
    assert planned_width(0.5, 64, min_channels=1, round_to=1) == 32


def test_planned_width_respects_min_channels_and_round_to():
    assert planned_width(0.3, 10, min_channels=4, round_to=1) == 4
    assert planned_width(0.05, 64, min_channels=4, round_to=8) == 8  # 4 rounded up to 8
    assert planned_width(0.3, 64, min_channels=1, round_to=8) == 24  # ceil(19.2) = 20 -> 24
    assert planned_width(0.0, 64, min_channels=1, round_to=1) == 1


def test_planned_width_is_never_above_the_width():
    assert planned_width(0.95, 10, min_channels=1, round_to=4) == 10  # 10 -> 12, capped at 10
    assert planned_width(0.1, 3, min_channels=4, round_to=1) == 3  # min_channels above the width
    assert planned_width(1.0, 7, min_channels=1, round_to=1) == 7


def test_kept_channels_are_the_most_active_in_ascending_order():
    density = torch.tensor([0.2, 0.9, 0.1, 0.5])
    assert kept_channels(density, 2).tolist() == [1, 3]
    assert kept_channels(density, 3).tolist() == [0, 1, 3]


def test_kept_channels_ties_go_to_the_lower_index():
    density = torch.tensor([0.2, 0.5, 0.5, 0.1, 0.5])
    assert kept_channels(density, 2).tolist() == [1, 2]
    assert kept_channels(torch.zeros(4), 1).tolist() == [0]


# --- the plan -----------------------------------------------------------------------------------


def test_plan_round_leaves_dense_groups_alone_and_cuts_the_rest():
    model = small_vgg()
    groups = model.channel_groups()
    densities = {
        "conv1": torch.tensor([1.0, 1.0, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]),  # mean 0.85 >= target 0.85
        "conv2": torch.tensor([0.5] * 8 + [0.0] * 8),  # mean 0.25 -> 4 of 16, but min_channels 5
        # mean 5/16 -> 5 channels: the two 1.0s, the two 0.75s and the first 0.5 (index 9, not 13)
        "conv3": torch.tensor([0.0] * 8 + [0.25, 0.5, 0.75, 1.0] * 2),
    }
    plan = plan_round(groups, densities, target_density=0.85, min_channels=5, round_to=1)
    assert plan.keep["conv1"] is None
    assert plan.keep["conv2"].tolist() == [0, 1, 2, 3, 4]  # equal densities: lowest indices
    assert plan.keep["conv3"].tolist() == [9, 10, 11, 14, 15]
    assert plan.new_widths == {"conv1": 8, "conv2": 5, "conv3": 5}
    assert plan.density["conv1"] == pytest.approx(0.85) and plan.density["conv2"] == pytest.approx(0.25)
    assert plan.changed


def test_plan_round_skips_groups_marked_not_prunable_and_widths_that_do_not_shrink():
    model = small_vgg()
    groups = model.channel_groups()
    groups[1].prunable = False
    densities = {"conv1": torch.full((8,), 0.95), "conv2": torch.zeros(16), "conv3": torch.zeros(16)}
    plan = plan_round(groups, densities, target_density=1.0, min_channels=2, round_to=1)
    assert plan.keep["conv1"] is None  # ceil(0.95 * 8) = 8: nothing to cut
    assert plan.keep["conv2"] is None  # not prunable
    assert plan.keep["conv3"].tolist() == [0, 1]
    no_change = plan_round(groups, {**densities, "conv3": torch.ones(16)}, target_density=0.5,
                           min_channels=2, round_to=1)
    assert not no_change.changed


def _random_densities(groups, widths, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {g.name: torch.rand(w, generator=gen) for g, w in zip(groups, widths)}


@pytest.mark.parametrize("arch", ["vgg", "resnet18"])
def test_planned_params_are_the_parameters_the_cut_leaves(arch):
    """Counted without cutting, on a plain stack and on residual groups (a block's output shared by
    its shortcut, the classifier reading it); checked against the cut itself."""
    model = small_vgg() if arch == "vgg" else create_model("resnet18", num_classes=3, in_channels=1, image_size=8,
                                                           width_mult=0.125)
    groups = model.channel_groups()
    for seed, rule in ((0, "density"), (1, "uniform"), (2, "density")):
        densities = _random_densities(groups, group_widths(model, groups), seed)
        plan = plan_round(groups, densities, widths=rule, keep=0.4, target_density=0.9, min_channels=2, round_to=1)
        assert plan.changed
        cut = copy.deepcopy(model)
        cut_groups = cut.channel_groups()
        apply_plan(cut, cut_groups, plan)
        assert planned_params(model, groups, plan) == count_params(cut) < count_params(model)
    assert planned_params(model, groups, plan_for(model, {g.name: None for g in groups})) == count_params(model)


@pytest.mark.parametrize("arch", ["vgg", "resnet18"])
def test_uniform_matched_cuts_every_layer_alike_to_the_size_density_would_keep(arch):
    model = small_vgg() if arch == "vgg" else create_model("resnet18", num_classes=3, in_channels=1, image_size=8,
                                                           width_mult=0.25)
    groups = model.channel_groups()
    widths = group_widths(model, groups)
    # density cuts a few layers deeply and leaves the rest: the matched rule spreads that over all
    densities = {g.name: torch.full((w,), 0.3 if i % 3 == 0 else 0.95) for i, (g, w) in enumerate(zip(groups, widths))}
    count = lambda plan: planned_params(model, groups, plan)  # noqa: E731
    same = dict(target_density=0.9, min_channels=2, round_to=1)
    by_density = plan_round(groups, densities, widths="density", **same)
    matched = plan_round(groups, densities, widths="uniform_matched", params=count, **same)
    goal = count(by_density)
    assert matched.new_widths != by_density.new_widths
    fractions = {round(matched.new_widths[g.name] / w, 1) for g, w in zip(groups, widths) if g.prunable}
    assert len(fractions) <= 2, fractions  # one fraction, up to each layer's rounding
    # the nearest a uniform fraction comes: no other keep gets closer to density's parameters
    others = [count(plan_round(groups, densities, widths="uniform", keep=k / 100, **same)) for k in range(1, 100)]
    assert abs(count(matched) - goal) == min(abs(o - goal) for o in others + [count(matched)])
    assert abs(count(matched) - goal) / goal < 0.1
    with pytest.raises(ValueError, match="needs params"):
        plan_round(groups, densities, widths="uniform_matched", **same)


# --- physical removal on a small VGG ------------------------------------------------------------


def test_plan_that_keeps_every_channel_leaves_outputs_unchanged():
    model = small_vgg()
    trained_a_little(model)
    model.eval()
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    before = model(x).detach()
    apply_plan(model, model.channel_groups(), plan_for(model, {"conv1": list(range(8)), "conv2": list(range(16)),
                                                              "conv3": list(range(16))}))
    torch.testing.assert_close(model(x).detach(), before, atol=1e-6, rtol=0)


def test_removed_channels_keep_the_first_pruned_layers_other_outputs():
    model = small_vgg()
    trained_a_little(model)
    model.eval()
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    names = ["features.0.0", "features.0.1", "features.2.1"]
    _, before = outputs_of(model, names, x)
    keep1, keep2 = [1, 4, 6], [0, 2, 3, 5, 8, 9, 15]
    groups = model.channel_groups()
    apply_plan(model, groups, plan_for(model, {"conv1": keep1, "conv2": keep2, "conv3": None}))
    out, after = outputs_of(model, names, x)
    assert out.shape == (4, 3)
    # conv1's input is untouched, so its kept conv and BN outputs are exactly the old ones
    torch.testing.assert_close(after["features.0.0"], before["features.0.0"][:, keep1], atol=1e-6, rtol=0)
    torch.testing.assert_close(after["features.0.1"], before["features.0.1"][:, keep1], atol=1e-6, rtol=0)
    assert after["features.2.1"].shape[1] == len(keep2)
    assert group_widths(model, groups) == [3, 7, 16]
    fresh = create_model("vgg", layers=LAYERS, num_classes=3, in_channels=1, image_size=8, widths=[3, 7, 16])
    assert count_params(model) == count_params(fresh)
    # by hand: conv 1*3*9 + BN 2*3, conv 3*7*9 + BN 2*7, conv 7*16*9 + BN 2*16, Linear 16*3 + 3
    assert count_params(model) == 27 + 6 + 189 + 14 + 1008 + 32 + 51
    assert [tuple(p.shape) for p in model.parameters()] == [tuple(p.shape) for p in fresh.parameters()]


def test_bn_running_statistics_are_sliced_with_the_channels():
    model = small_vgg()
    trained_a_little(model)
    bn = model.features[0][1]
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    apply_plan(model, model.channel_groups(), plan_for(model, {"conv1": [2, 7], "conv2": None, "conv3": None}))
    assert bn.num_features == 2 and model.features[0][0].out_channels == 2
    assert model.features[2][0].in_channels == 2
    torch.testing.assert_close(model.features[0][1].running_mean, mean[[2, 7]])
    torch.testing.assert_close(model.features[0][1].running_var, var[[2, 7]])


def test_optimizer_momentum_of_kept_entries_is_carried():
    model = small_vgg()
    optimizer = trained_a_little(model)
    conv1, conv2, fc = model.features[0][0], model.features[2][0], model.classifier
    buf = {name: optimizer.state[p]["momentum_buffer"].clone()
           for name, p in [("conv1", conv1.weight), ("conv2", conv2.weight), ("fc", fc.weight),
                           ("fc_bias", fc.bias)]}
    keep1, keep3 = torch.tensor([0, 3, 5]), torch.tensor([1, 2, 9, 14])
    apply_plan(model, model.channel_groups(),
               plan_for(model, {"conv1": keep1.tolist(), "conv2": None, "conv3": keep3.tolist()}), optimizer)
    conv1, conv2, fc = model.features[0][0], model.features[2][0], model.classifier
    state = optimizer.state
    torch.testing.assert_close(state[conv1.weight]["momentum_buffer"], buf["conv1"][keep1])  # out channels
    torch.testing.assert_close(state[conv2.weight]["momentum_buffer"], buf["conv2"][:, keep1])  # in channels
    torch.testing.assert_close(state[fc.weight]["momentum_buffer"], buf["fc"][:, keep3])
    torch.testing.assert_close(state[fc.bias]["momentum_buffer"], buf["fc_bias"])  # untouched
    params = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(params) == len(list(model.parameters()))
    assert all(a is b for a, b in zip(params, model.parameters()))
    assert len(state) == len(params)  # no state left behind for the removed tensors


def test_training_goes_on_after_pruning():
    model = small_vgg()
    optimizer = trained_a_little(model)
    apply_plan(model, model.channel_groups(), plan_for(model, {"conv1": [0, 1], "conv2": [3], "conv3": [4, 5]}),
               optimizer)
    before = [p.detach().clone() for p in model.parameters()]
    trained_a_little(model, optimizer, steps=1)
    after = list(model.parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in after)
    assert all(not torch.equal(a, b) for a, b in zip(before, after))  # every tensor was updated
    assert group_widths(model, model.channel_groups()) == [2, 1, 2]


def test_a_pruned_copy_does_not_touch_the_original():
    model = small_vgg()
    pruned = copy.deepcopy(model)
    apply_plan(pruned, pruned.channel_groups(), plan_for(pruned, {"conv1": [0], "conv2": None, "conv3": None}))
    assert model.features[0][0].out_channels == 8 and pruned.features[0][0].out_channels == 1
