"""Compression: coupled channel groups, the width plan from densities, physical removal.

The one idea: a `ChannelGroup` is a set of output channels that must be kept or removed together.
Every action is "take a group, choose the indices to keep, slice every tensor that holds them".
`producers` hold the channels on their output side (conv out-channels, BatchNorm features),
`consumers` read them on their input side (next conv's in-channels, a Linear's in-features),
`monitors` are the activation modules where the group's density is measured.

A member named in `slices` holds the group's channels only in part of its channel dim (a
concatenation puts several groups side by side in one BatchNorm or conv input; a flatten spreads
each channel over `repeat` features; a module called several times per forward is watched at one
call). Members not named there hold exactly the group's channels. `apply_plan` keeps the slices
true after it removes channels, so a group list stays valid across rounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
from torch import nn


@dataclass(frozen=True)
class Slice:
    """Where a group's channels sit in one member's channel dim.

    `offset`: the first channel; `width`: how many; `repeat`: features per channel in a
    flattened input (channel c is features `c*repeat .. c*repeat+repeat-1` after `offset`);
    `call`: for a monitor run several times per forward, which call (0-based) is this group's.
    """

    offset: int
    width: int
    repeat: int = 1
    call: int | None = None


@dataclass
class ChannelGroup:
    name: str
    producers: list[str]
    consumers: list[str]
    monitors: list[str]
    prunable: bool = True
    slices: dict[str, Slice] = field(default_factory=dict)
    min_width: int = 1
    """The fewest channels the group may keep (a depthwise conv cut to 1 channel would look dense)."""


def group_widths(model: nn.Module, groups: list[ChannelGroup]) -> list[int]:
    """Each group's width: its slice of the first producer, or that producer's output channels."""
    modules = dict(model.named_modules())
    widths = []
    for g in groups:
        first = g.producers[0]
        site = g.slices.get(first)
        widths.append(site.width if site is not None else _channel_dim(modules[first], "out"))
    return widths


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


def kept_channels(scores: torch.Tensor, width: int) -> torch.Tensor:
    """Indices (ascending) of the `width` highest-scoring channels (e.g. the most active); ties go
    to the lower index."""
    order = torch.sort(-scores.double(), stable=True).indices
    return torch.sort(order[:width]).values


def plan_round(
    groups: list[ChannelGroup],
    channel_density: dict[str, torch.Tensor],
    *,
    target_density: float,
    min_channels: int,
    round_to: int,
    scores: dict[str, torch.Tensor] | None = None,
    widths: str = "density",
    keep: float = 0.5,
    params: Callable[[RoundPlan], int] | None = None,
) -> RoundPlan:
    """Per group: how many channels survive (the width rule) and which (the highest `scores`).

    `widths="density"`: a group whose layer density (the mean of its channel densities) is below
    `target_density` keeps `planned_width(density)` channels, the others are left alone.
    `widths="uniform"`: every group keeps `planned_width(keep)`, whatever its density.
    `widths="uniform_matched"`: every group keeps the same fraction, the one at which the network
    keeps as many parameters as `density` would leave it (`params`: a plan's parameter count, as
    `planned_params`; the nearest the integer widths allow): the width-rule ablation at equal size.
    Groups marked not prunable are left alone. `scores` (per group, one per channel; default: the
    densities, the `activation_density` criterion) rank the channels: the highest are kept.
    """
    if widths not in ("density", "uniform", "uniform_matched"):  # spec.WIDTH_RULES
        raise ValueError(f"widths must be density, uniform or uniform_matched, got {widths!r}")
    if widths == "uniform_matched":
        if params is None:
            raise ValueError("widths uniform_matched needs params (a plan's parameter count)")
        same = dict(target_density=target_density, min_channels=min_channels, round_to=round_to, scores=scores)
        goal = params(plan_round(groups, channel_density, widths="density", **same))
        return _matched_uniform(lambda f: plan_round(groups, channel_density, widths="uniform", keep=f, **same),
                                params, goal)
    keep_idx: dict[str, torch.Tensor | None] = {}
    density: dict[str, float] = {}
    old: dict[str, int] = {}
    for g in groups:
        cd = channel_density[g.name].detach().cpu()
        width = int(cd.numel())
        old[g.name] = width
        d = float(cd.double().mean())
        density[g.name] = d
        keep_idx[g.name] = None
        if not g.prunable or (widths == "density" and d >= target_density):
            continue
        fraction = d if widths == "density" else keep
        new = planned_width(fraction, width, min_channels=max(min_channels, g.min_width), round_to=round_to)
        if new < width:
            score = cd if scores is None else scores[g.name]
            if score.numel() != width:
                raise ValueError(f"group {g.name!r}: {score.numel()} scores for {width} channels")
            keep_idx[g.name] = kept_channels(score, new)
    return RoundPlan(keep=keep_idx, density=density, old_widths=old)


def _matched_uniform(plan_at: Callable[[float], RoundPlan], params: Callable[[RoundPlan], int],
                     goal: int) -> RoundPlan:
    """The uniform plan whose parameter count is nearest `goal` (the larger on a tie): parameters
    grow with the kept fraction, so bisect it for the smallest plan at or above the goal and
    compare it with the largest below."""
    low, high = 0.0, 1.0  # params(plan_at(high)) >= goal: keeping everything is never smaller
    for _ in range(40):
        middle = (low + high) / 2
        if params(plan_at(middle)) >= goal:
            high = middle
        else:
            low = middle
    above, below = plan_at(high), plan_at(low)
    return below if goal - params(below) < params(above) - goal else above


def planned_params(model: nn.Module, groups: list[ChannelGroup], plan: RoundPlan) -> int:
    """The parameters `model` would have after `apply_plan(model, groups, plan)`, counted without
    cutting anything (each module dim as `apply_plan` would cut it)."""
    modules = dict(model.named_modules())
    cut: dict[tuple[str, str], int] = {}  # (module, side) -> width after the plan
    for (name, side, call), members in _member_dims(groups).items():
        if call is None and any(name in (g.producers if side == "out" else g.consumers) for g in members):
            keep = _dim_keep(modules[name], name, side, members, plan)
            if keep is not None:
                cut[name, side] = int(keep.numel())
    total = 0
    for name, module in modules.items():
        out, inp = cut.get((name, "out")), cut.get((name, "in"))
        tied = isinstance(module, nn.modules.batchnorm._BatchNorm) or (
            isinstance(module, nn.Conv2d) and module.groups == module.in_channels == module.out_channels > 1)
        if tied:  # one width for both sides (prune_input cuts these as outputs)
            out = out if out is not None else inp
        for attr, p in module.named_parameters(recurse=False):
            shape = list(p.shape)
            if out is not None and shape:
                shape[0] = out
            if inp is not None and not tied and attr == "weight" and len(shape) > 1:
                shape[1] = inp
            total += math.prod(shape)
    return total


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

    Each module dim is cut once, with the kept channels of every group that lives in it (channels
    of groups not in `groups` are kept). The optimizer (if given) is pointed at the new parameters
    and keeps the kept entries' state, so momentum carries over; its hyper-parameters and the LR
    schedule are untouched. The groups' slices are moved to the new layout.
    """
    modules = dict(model.named_modules())
    dims = _member_dims(groups)
    for (name, side, call), members in dims.items():
        if call is not None:
            continue  # one call of a monitor run several times: nothing to cut, only its slices move
        if not any(name in (g.producers if side == "out" else g.consumers) for g in members):
            continue  # a monitor
        keep = _dim_keep(modules[name], name, side, members, plan)
        if keep is not None:
            (prune_output if side == "out" else prune_input)(modules[name], keep, optimizer)
    moved: set[tuple[str, str]] = set()
    for (name, _side, _call), members in dims.items():
        _shift_slices(name, [g for g in members if (g.name, name) not in moved], plan)
        moved.update((g.name, name) for g in members)


def _member_dims(groups: list[ChannelGroup]) -> dict[tuple[str, str, int | None], list[ChannelGroup]]:
    """For each (module, side, call) the groups that live in that channel dim, each once.

    Side 'out' is a producer's or a monitor's output, 'in' a consumer's input; `call` tells apart
    the outputs of a monitor called several times per forward (each is a different tensor).
    """
    dims: dict[tuple[str, str, int | None], list[ChannelGroup]] = {}
    for g in groups:
        keys = [(n, "out", None) for n in g.producers] + [(n, "in", None) for n in g.consumers]
        keys += [(n, "out", g.slices[n].call if n in g.slices else None) for n in g.monitors]
        for key in dict.fromkeys(keys):
            dims.setdefault(key, []).append(g)
    return dims


def _channel_dim(module: nn.Module, side: str) -> int | None:
    if isinstance(module, nn.Conv2d):
        return module.out_channels if side == "out" else module.in_channels
    if isinstance(module, nn.Linear):
        return module.out_features if side == "out" else module.in_features
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.num_features
    return None


def _dim_keep(module: nn.Module, name: str, side: str, members: list[ChannelGroup],
              plan: RoundPlan) -> torch.Tensor | None:
    """The kept indices of one module dim, or None if no group living there loses channels."""
    if all(plan.keep.get(g.name) is None for g in members):
        return None
    if all(name not in g.slices for g in members):
        if len(members) > 1:
            raise ValueError(f"groups {[g.name for g in members]} each claim the whole of {name!r} ({side})")
        return plan.keep[members[0].name]
    if any(name not in g.slices for g in members):
        raise ValueError(f"{name!r} ({side}) is claimed whole by one group and in part by others")
    size = _channel_dim(module, side)
    pieces, at = [], 0
    for g in sorted(members, key=lambda g: g.slices[name].offset):
        site = g.slices[name]
        pieces.append(torch.arange(at, site.offset))  # channels of groups not listed: kept
        kept = plan.keep.get(g.name)
        kept = torch.arange(site.width) if kept is None else kept.cpu()
        features = (kept[:, None] * site.repeat + torch.arange(site.repeat)).flatten()
        pieces.append(site.offset + features)
        at = site.offset + site.width * site.repeat
    pieces.append(torch.arange(at, size))
    return torch.cat(pieces)


def _shift_slices(name: str, members: list[ChannelGroup], plan: RoundPlan) -> None:
    """Move the slices of one module dim to the layout left after the plan's cut."""
    removed = 0
    for g in sorted((g for g in members if name in g.slices), key=lambda g: g.slices[name].offset):
        site = g.slices[name]
        kept = plan.keep.get(g.name)
        width = site.width if kept is None else int(kept.numel())
        g.slices[name] = replace(site, offset=site.offset - removed, width=width)
        removed += (site.width - width) * site.repeat
