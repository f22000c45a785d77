"""Checks shared by tests/models/test_resnet.py and tests/models/test_torchvision_models.py.

The reference for a compressed network: the original network with the dropped channels set to
zero at every activation site of their group (`zeroed_at_sites`). A consumer reads a group's
channels only after one of those activations, and a zero input adds nothing to a conv or Linear,
so the compressed network must compute exactly what this masked original computes: the same
output, and the same pre-activations on every kept channel.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch import nn

from adsearch.prune.compress import ChannelGroup, RoundPlan, group_widths, plan_round
from adsearch.prune.criteria import channel_scores


def random_plan(groups: list[ChannelGroup], widths: list[int], seed: int) -> RoundPlan:
    """Keep a random non-empty subset of each group; every group of width > 1 loses channels."""
    gen = torch.Generator().manual_seed(seed)
    keep = {}
    for g, w in zip(groups, widths):
        if w <= g.min_width:
            keep[g.name] = None
            continue
        n = int(torch.randint(g.min_width, w, (1,), generator=gen))
        keep[g.name] = torch.sort(torch.randperm(w, generator=gen)[:n]).values
    return RoundPlan(keep=keep, density={}, old_widths={g.name: w for g, w in zip(groups, widths)})


def criterion_plan(model: nn.Module, groups: list[ChannelGroup], criterion: str, seed: int) -> RoundPlan:
    """The plan a trial makes under `criterion` (from random channel densities): half of every
    prunable group, the channels the criterion ranks highest, its score taken over the group."""
    gen = torch.Generator().manual_seed(seed)
    densities = {g.name: torch.rand(w, generator=gen, dtype=torch.float64)
                 for g, w in zip(groups, group_widths(model, groups))}
    scores = channel_scores(model, groups, criterion, densities, seed=seed, epoch=1)
    return plan_round(groups, densities, scores=scores, widths="uniform", keep=0.5, target_density=1.0,
                      min_channels=1, round_to=1)


def keep_all_plan(groups: list[ChannelGroup], widths: list[int]) -> RoundPlan:
    """A plan that names every channel as kept: the slicing runs, nothing is removed."""
    keep = {g.name: torch.arange(w) for g, w in zip(groups, widths)}
    return RoundPlan(keep=keep, density={}, old_widths={g.name: w for g, w in zip(groups, widths)})


@contextmanager
def zeroed_at_sites(model: nn.Module, groups: list[ChannelGroup], plan: RoundPlan):
    """Within the block, `model` zeroes the channels `plan` drops at their groups' monitors."""
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    handles = [model.register_forward_pre_hook(lambda *_: calls.clear())]
    counted: set[str] = set()
    for g in groups:
        keep = plan.keep.get(g.name)
        if keep is None:
            continue
        for name in g.monitors:
            if name not in counted:
                counted.add(name)
                handles.append(modules[name].register_forward_pre_hook(
                    lambda m, i, name=name: calls.__setitem__(name, calls.get(name, -1) + 1)))
            handles.append(modules[name].register_forward_hook(_zeroing_hook(name, g, keep, calls)))
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


def _zeroing_hook(name: str, group: ChannelGroup, keep: torch.Tensor, calls: dict):
    site = group.slices.get(name)

    def hook(module, inputs, output):
        if site is not None and site.call is not None and calls[name] != site.call:
            return None
        offset = site.offset if site is not None else 0
        width = site.width if site is not None else output.shape[1]
        dropped = torch.ones(width, dtype=torch.bool)
        dropped[keep] = False
        output = output.clone()
        output[:, offset + torch.nonzero(dropped).flatten()] = 0
        return output

    return hook


def outputs_at(model: nn.Module, names: list[str], x: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The model's output on `x` and the outputs of modules `names` (first call each)."""
    modules = dict(model.named_modules())
    seen: dict[str, torch.Tensor] = {}
    handles = [modules[n].register_forward_hook(
        lambda m, i, o, n=n: seen.setdefault(n, o.detach().clone())) for n in names]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    return out, seen


def _bn_slices(groups: list[ChannelGroup], model: nn.Module) -> dict[tuple[str, str], tuple[int, int]]:
    """(group, BatchNorm) -> (offset, width) of the group's channels in that BatchNorm's output."""
    modules = dict(model.named_modules())
    found = {}
    for g in groups:
        for name in g.producers:
            if isinstance(modules[name], nn.modules.batchnorm._BatchNorm):
                site = g.slices.get(name)
                found[g.name, name] = (site.offset, site.width) if site else (0, modules[name].num_features)
    return found


def check_against_masked(model: nn.Module, groups: list[ChannelGroup], pruned: nn.Module,
                         pruned_groups: list[ChannelGroup], plan: RoundPlan, x: torch.Tensor,
                         atol: float = 1e-5) -> None:
    """The pruned network's output, and its pre-activations (BatchNorm outputs) on every kept channel
    of every cut group -- inside blocks and coupled alike -- equal the masked original's."""
    before, after = _bn_slices(groups, model), _bn_slices(pruned_groups, pruned)
    cut = {key: at for key, at in before.items() if plan.keep.get(key[0]) is not None}
    bns = sorted({bn for _, bn in cut})
    reference = copy.deepcopy(model).eval()
    with zeroed_at_sites(reference, groups, plan):
        ref_out, ref_pre = outputs_at(reference, bns, x)
    out, pre = outputs_at(pruned.eval(), bns, x)
    torch.testing.assert_close(out, ref_out, atol=atol, rtol=1e-4)
    assert any(len(g.producers) == 2 for g in groups if plan.keep.get(g.name) is not None), \
        "the plan should cut at least one group inside a block (one conv and its BatchNorm)"
    for (group, bn), (offset, width) in cut.items():
        new_offset, new_width = after[group, bn]
        kept = ref_pre[bn][:, offset + plan.keep[group]]
        torch.testing.assert_close(pre[bn][:, new_offset : new_offset + new_width], kept, atol=atol, rtol=1e-4)


def forward_backward(model: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    model.train()
    out = model(x)
    loss = nn.functional.cross_entropy(out, torch.arange(x.shape[0]) % num_classes)
    loss.backward()
    assert out.shape == (x.shape[0], num_classes)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
