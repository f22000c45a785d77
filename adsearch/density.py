"""The activation-density monitor: per-channel counters of active outputs, kept on the device.

Activation density of a channel: the share of its outputs above `zero_threshold` over the
training samples seen since the last `reset()`. A layer's density is the mean over its channels
(every channel of a layer has the same number of outputs, so this is also the share of all its
outputs). The arithmetic is pure tensor functions; the hooks live in a context manager that
removes them on exit. Counting happens only while the model is in training mode.
"""

from __future__ import annotations

import torch
from torch import nn

from adsearch.compress import ChannelGroup, Slice


def active_counts(output: torch.Tensor, zero_threshold: float = 0.0) -> torch.Tensor:
    """Per channel (dim 1), how many entries of `output` are above `zero_threshold`."""
    dims = [d for d in range(output.dim()) if d != 1]
    return (output > zero_threshold).sum(dim=dims)


def outputs_per_channel(output: torch.Tensor) -> int:
    """How many entries each channel of `output` has (batch x spatial), known without a sync."""
    return output.numel() // output.shape[1]


def channel_density(counts: torch.Tensor, total: int) -> torch.Tensor:
    """Per-channel density from active counts and the number of outputs per channel."""
    return counts.double() / max(total, 1)


def layer_density(channel_densities: torch.Tensor) -> float:
    return float(channel_densities.double().mean())


AGGREGATES = ("mean", "max")
"""How a group watched at several activation sites combines their per-channel densities."""


class DensityMonitor:
    """Counts active outputs per channel at each group's monitor modules.

    Use as a context manager around training; `channel_densities()` syncs once to read them.
    A group watched at several sites (e.g. after each residual addition of a stage, or at every
    layer that reads a concatenated feature) gets, per channel, the mean of the sites' densities
    (`aggregate="mean"`, each site weighted alike) or their maximum (`"max"`: a channel busy at
    any one site counts as busy). A monitor's slice (see `ChannelGroup.slices`) picks the group's
    channels out of a wider output, and its `call` picks one call of a module that runs several
    times per forward (torchvision's BasicBlock uses one ReLU after bn1 and after the addition);
    without a `call` every call is counted.
    """

    def __init__(self, model: nn.Module, groups: list[ChannelGroup], zero_threshold: float = 0.0,
                 aggregate: str = "mean"):
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
        self.model = model
        self.groups = groups
        self.zero_threshold = zero_threshold
        self.aggregate = aggregate
        self._handles: list = []
        self._counts: dict[str, torch.Tensor] = {}
        self._totals: dict[str, int] = {}
        self._calls: dict[str, int] = {}

    def __enter__(self) -> DensityMonitor:
        modules = dict(self.model.named_modules())
        called: set[str] = set()
        for g in self.groups:
            for name in g.monitors:
                site = g.slices.get(name)
                if site is not None and site.call is not None and name not in called:
                    called.add(name)
                    self._handles.append(modules[name].register_forward_pre_hook(self._count_call(name)))
                hook = self._hook(f"{g.name}@{name}", name, site)
                self._handles.append(modules[name].register_forward_hook(hook))
        if called:  # calls are numbered within one forward of the whole model
            self._handles.append(self.model.register_forward_pre_hook(lambda *_: self._calls.clear()))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _count_call(self, name: str):
        def pre_hook(module, inputs):
            self._calls[name] = self._calls.get(name, -1) + 1

        return pre_hook

    def _hook(self, key: str, name: str, site: Slice | None):
        def hook(module, inputs, output):
            if not module.training:
                return
            if site is not None:
                if site.call is not None and self._calls.get(name) != site.call:
                    return
                output = output[:, site.offset : site.offset + site.width]
            counts = active_counts(output.detach(), self.zero_threshold)
            if key in self._counts:
                self._counts[key] += counts
            else:
                self._counts[key] = counts
            self._totals[key] = self._totals.get(key, 0) + outputs_per_channel(output)

        return hook

    def reset(self) -> None:
        self._counts.clear()
        self._totals.clear()

    def channel_densities(self) -> dict[str, torch.Tensor]:
        """Per group, the per-channel density (on the CPU) since the last reset."""
        out = {}
        for g in self.groups:
            parts = [
                channel_density(self._counts[k], self._totals[k])
                for k in (f"{g.name}@{m}" for m in g.monitors)
                if k in self._counts
            ]
            if parts:
                stacked = torch.stack(parts)
                out[g.name] = (stacked.mean(0) if self.aggregate == "mean" else stacked.amax(0)).cpu()
        return out

    def layer_densities(self) -> dict[str, float]:
        return {name: layer_density(cd) for name, cd in self.channel_densities().items()}
