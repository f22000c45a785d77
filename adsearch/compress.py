"""Compression: coupled channel groups, the width plan from densities, physical removal.

The one idea: a `ChannelGroup` is a set of output channels that must be kept or removed together.
Every action is "take a group, choose the indices to keep, slice every tensor that holds them".
`producers` hold the channels on their output side (conv out-channels, BatchNorm features),
`consumers` read them on their input side (next conv's in-channels, a Linear's in-features),
`monitors` are the activation modules where the group's density is measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class ChannelGroup:
    name: str
    producers: list[str]
    consumers: list[str]
    monitors: list[str]
    prunable: bool = True
    extra: dict = field(default_factory=dict)


@dataclass
class RoundPlan:
    """What one compression round does: per group, the channels kept (None: untouched)."""

    keep: dict[str, torch.Tensor | None]
    density: dict[str, float]
    old_widths: dict[str, int]

    @property
    def new_widths(self) -> dict[str, int]:
        return {g: (self.old_widths[g] if k is None else int(k.numel())) for g, k in self.keep.items()}

    @property
    def changed(self) -> bool:
        return any(k is not None for k in self.keep.values())


def planned_width(density: float, width: int, *, min_channels: int, round_to: int) -> int:
    """`max(min_channels, ceil(density * width))` rounded up to a multiple of `round_to`, <= width."""
    wanted = max(min_channels, math.ceil(density * width - 1e-9))
    wanted = math.ceil(wanted / round_to) * round_to
    return max(1, min(width, wanted))


def kept_channels(channel_density: torch.Tensor, width: int) -> torch.Tensor:
    """Indices (ascending) of the `width` most active channels; ties go to the lower index."""
    order = torch.sort(-channel_density.double(), stable=True).indices
    return torch.sort(order[:width]).values


def plan_round(
    groups: list[ChannelGroup],
    channel_density: dict[str, torch.Tensor],
    *,
    target_density: float,
    min_channels: int,
    round_to: int,
) -> RoundPlan:
    """Per group: keep the most active channels, `planned_width` of them, if its density is low.

    A group whose layer density (mean of its channel densities) is at or above `target_density`
    is left alone, as is a group marked not prunable.
    """
    keep: dict[str, torch.Tensor | None] = {}
    density: dict[str, float] = {}
    old: dict[str, int] = {}
    for g in groups:
        cd = channel_density[g.name].detach().cpu()
        width = int(cd.numel())
        old[g.name] = width
        d = float(cd.double().mean())
        density[g.name] = d
        keep[g.name] = None
        if not g.prunable or d >= target_density:
            continue
        new = planned_width(d, width, min_channels=min_channels, round_to=round_to)
        if new < width:
            keep[g.name] = kept_channels(cd, new)
    return RoundPlan(keep=keep, density=density, old_widths=old)


# --- physical removal ---------------------------------------------------------------------------

_STATE_KEYS_SLICED = ("momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def _replace_param(module: nn.Module, attr: str, dim: int, keep: torch.Tensor, optimizer) -> None:
    old = getattr(module, attr)
    if old is None:
        return
    idx = keep.to(old.device)
    new = nn.Parameter(old.detach().index_select(dim, idx).clone(), requires_grad=old.requires_grad)
    setattr(module, attr, new)
    if optimizer is not None:
        _move_optimizer_state(optimizer, old, new, dim, idx)


def _move_optimizer_state(optimizer: torch.optim.Optimizer, old, new, dim: int, idx) -> None:
    """Point the optimizer at `new`, carrying the kept entries of `old`'s state (e.g. momentum)."""
    for group in optimizer.param_groups:
        group["params"] = [new if p is old else p for p in group["params"]]
    state = optimizer.state.pop(old, None)
    if state is None:
        return
    moved = {}
    for key, value in state.items():
        if key in _STATE_KEYS_SLICED and torch.is_tensor(value) and value.shape == old.shape:
            moved[key] = value.index_select(dim, idx).clone()
        else:
            moved[key] = value
    optimizer.state[new] = moved


def _replace_buffer(module: nn.Module, name: str, keep: torch.Tensor) -> None:
    buf = getattr(module, name, None)
    if buf is not None and buf.dim() > 0:
        setattr(module, name, buf.index_select(0, keep.to(buf.device)).clone())


def prune_output(module: nn.Module, keep: torch.Tensor, optimizer=None) -> None:
    """Keep only output channels `keep` of a conv, BatchNorm or Linear layer."""
    n = int(keep.numel())
    if isinstance(module, nn.Conv2d):
        depthwise = module.groups == module.in_channels == module.out_channels and module.groups > 1
        _replace_param(module, "weight", 0, keep, optimizer)
        _replace_param(module, "bias", 0, keep, optimizer)
        module.out_channels = n
        if depthwise:  # one input channel per output channel: they go together
            module.in_channels = module.groups = n
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        _replace_param(module, "weight", 0, keep, optimizer)
        _replace_param(module, "bias", 0, keep, optimizer)
        _replace_buffer(module, "running_mean", keep)
        _replace_buffer(module, "running_var", keep)
        module.num_features = n
    elif isinstance(module, nn.Linear):
        _replace_param(module, "weight", 0, keep, optimizer)
        _replace_param(module, "bias", 0, keep, optimizer)
        module.out_features = n
    else:
        raise TypeError(f"cannot prune the outputs of {type(module).__name__}")


def prune_input(module: nn.Module, keep: torch.Tensor, optimizer=None) -> None:
    """Keep only input channels `keep` of a conv or Linear layer."""
    n = int(keep.numel())
    if isinstance(module, nn.Conv2d):
        if module.groups != 1:
            if module.groups == module.in_channels == module.out_channels:
                return prune_output(module, keep, optimizer)
            raise TypeError(f"cannot prune the inputs of a grouped conv (groups={module.groups})")
        _replace_param(module, "weight", 1, keep, optimizer)
        module.in_channels = n
    elif isinstance(module, nn.Linear):
        _replace_param(module, "weight", 1, keep, optimizer)
        module.in_features = n
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        prune_output(module, keep, optimizer)
    else:
        raise TypeError(f"cannot prune the inputs of {type(module).__name__}")


def apply_plan(model: nn.Module, groups: list[ChannelGroup], plan: RoundPlan, optimizer=None) -> None:
    """Physically remove the channels `plan` drops, in place, keeping the rest's weights.

    The optimizer (if given) is pointed at the new parameters and keeps the kept entries' state,
    so momentum carries over; its hyper-parameters and the LR schedule are untouched.
    """
    modules = dict(model.named_modules())
    for g in groups:
        keep = plan.keep.get(g.name)
        if keep is None:
            continue
        for name in g.producers:
            prune_output(modules[name], keep, optimizer)
        for name in g.consumers:
            prune_input(modules[name], keep, optimizer)
