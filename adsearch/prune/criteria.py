"""Channel criteria: which channels of a group survive a cut (`pruning.criterion`).

A criterion scores every channel of a group; a cut keeps the highest scores (`compress.kept_channels`,
ties to the lower index). How many survive is the width rule's to say (`compress.plan_round`), so a
criterion and a width rule combine freely: the study can ask whether density-driven *selection*,
density-driven *sizing*, both or neither make the difference.

- `activation_density`: the channel's share of non-zero outputs since the last reset (the monitor's).
- `l1_norm`: the L1 norm of the channel's filter in each conv or Linear that writes it (as Li et al.,
  "Pruning Filters for Efficient ConvNets").
- `bn_scale`: |gamma| of the channel in each BatchNorm that writes it (as Network Slimming).
- `random`: a draw from a generator seeded by the study seed, the epoch and the group's name, so a
  trial repeats it exactly and its training's random stream is untouched.

A coupled group (channels joined by a residual add, or by a concatenation) is scored over the group,
as its density is: the mean of its members' scores per channel. Scores are computed once per round,
on the CPU (a cut already syncs).
"""

from __future__ import annotations

import zlib

import torch
from torch import nn

from adsearch.prune.compress import ChannelGroup, group_widths
from adsearch.errors import AdsearchError


def channel_scores(model: nn.Module, groups: list[ChannelGroup], criterion: str,
                   channel_density: dict[str, torch.Tensor], *, seed: int, epoch: int) -> dict[str, torch.Tensor]:
    """Per group, one score per channel (float64, CPU) under `criterion`; higher survives.

    Raises:
        AdsearchError: `bn_scale` on a prunable group that no BatchNorm writes.
    """
    if criterion == "activation_density":
        return {name: d.detach().double().cpu() for name, d in channel_density.items()}
    modules = dict(model.named_modules())
    scores: dict[str, torch.Tensor] = {}
    for g, width in zip(groups, group_widths(model, groups)):
        if criterion == "random":
            scores[g.name] = _random_scores(g.name, width, seed, epoch)
        elif criterion == "l1_norm":
            scores[g.name] = _mean(g, [_filter_l1(modules[p], g, p) for p in g.producers
                                       if isinstance(modules[p], (nn.Conv2d, nn.Linear))], "conv or Linear")
        elif criterion == "bn_scale":
            scores[g.name] = _mean(g, [_bn_scale(modules[p], g, p) for p in g.producers
                                       if isinstance(modules[p], nn.modules.batchnorm._BatchNorm)
                                       and modules[p].weight is not None], "BatchNorm with a scale (affine)")
        else:
            raise ValueError(f"unknown criterion {criterion!r}")
    return scores


def unscorable(model: nn.Module, groups: list[ChannelGroup], criterion: str) -> list[str]:
    """The prunable groups `criterion` cannot score in `model` (no layer of the kind it reads)."""
    modules = dict(model.named_modules())
    kinds = {"l1_norm": (nn.Conv2d, nn.Linear), "bn_scale": (nn.modules.batchnorm._BatchNorm,)}.get(criterion)
    if kinds is None:
        return []
    return [g.name for g in groups if g.prunable and not any(
        isinstance(modules[p], kinds) and getattr(modules[p], "weight", None) is not None for p in g.producers)]


def _mean(group: ChannelGroup, parts: list[torch.Tensor], what: str) -> torch.Tensor:
    if not parts:
        if not group.prunable:  # never cut: its score is never read
            return torch.zeros(0, dtype=torch.float64)
        raise AdsearchError(f"pruning.criterion: no {what} writes the channels of group {group.name!r}, so this "
                            "criterion cannot score them; use activation_density, l1_norm or random for this model")
    return torch.stack(parts).mean(0)


def _channels(tensor: torch.Tensor, group: ChannelGroup, name: str) -> torch.Tensor:
    """The group's channels of a producer's parameter (dim 0), as float64 on the CPU."""
    site = group.slices.get(name)
    t = tensor.detach()
    if site is not None:
        t = t[site.offset : site.offset + site.width]
    return t.double().cpu()


def _filter_l1(module: nn.Module, group: ChannelGroup, name: str) -> torch.Tensor:
    return _channels(module.weight, group, name).abs().flatten(1).sum(1)


def _bn_scale(module: nn.Module, group: ChannelGroup, name: str) -> torch.Tensor:
    return _channels(module.weight, group, name).abs()


def _random_scores(group: str, width: int, seed: int, epoch: int) -> torch.Tensor:
    key = zlib.crc32(f"{seed}:{epoch}:{group}".encode())
    return torch.rand(width, generator=torch.Generator().manual_seed(key), dtype=torch.float64)

