"""torchvision's classification models by name (`torchvision:<name>`): random weights, never
downloaded, the stem set to the input's channels, any widths reached through the traced channel
graph (`adsearch.prune.graph`)."""

from __future__ import annotations

import difflib

import torch
from torch import nn

from adsearch.prune.compress import RoundPlan, apply_plan, group_widths
from adsearch.prune.graph import channel_groups

TORCHVISION = "torchvision:"
"""The prefix of an arch naming a model of torchvision's registry."""


def _torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def check_torchvision(name: str) -> None:
    """Raise ValueError naming close matches (or all of torchvision's classification models) if
    `name` (without the prefix) is not one."""
    names = _torchvision_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        listed = f"close matches: {', '.join(TORCHVISION + c for c in close)}" if close else \
            f"torchvision's classification models: {', '.join(names)}"
        raise ValueError(f"unknown torchvision model {TORCHVISION + name!r}; {listed}")


def torchvision_model(name: str, *, num_classes: int, in_channels: int, widths: list[int] | None = None,
                      width_mult: float = 1.0) -> nn.Module:
    """torchvision's `name` with random weights, its stem set to `in_channels`, at the given widths.

    Widths are reached by building the full network and keeping each group's first channels,
    so the result has exactly the shapes of a network compressed to those widths.
    """
    import torchvision

    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    if in_channels != 3:
        _set_stem_channels(model, in_channels)
    if widths is None and width_mult == 1.0:
        return model
    groups = channel_groups(model)
    full = group_widths(model, groups)
    if widths is None:
        widths = [min(f, max(g.min_width, round(f * width_mult))) for g, f in zip(groups, full)]
    if len(widths) != len(groups):
        raise ValueError(f"widths has {len(widths)} entries, torchvision:{name} has {len(groups)} channel groups")
    wrong = [(g.name, w, g.min_width, f) for g, w, f in zip(groups, widths, full) if not g.min_width <= w <= f]
    if wrong:
        raise ValueError(f"widths must be between the group's min_width and its full width, got "
                         f"(group, width, min_width, full) {wrong}")
    keep = {g.name: (torch.arange(w) if w < f else None) for g, w, f in zip(groups, widths, full)}
    apply_plan(model, groups, RoundPlan(keep=keep, density={}, old_widths=dict(zip([g.name for g in groups], full))))
    return model


def _set_stem_channels(model: nn.Module, in_channels: int) -> None:
    """Replace the first conv (the stem) by one reading `in_channels` channels."""
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                new = nn.Conv2d(in_channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                                child.dilation, child.groups, child.bias is not None)
                setattr(parent, child_name, new)
                return
    raise ValueError("the model has no conv layer to read the input channels")
