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

from adsearch.compress import ChannelGroup


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


class DensityMonitor:
    """Counts active outputs per channel at each group's monitor modules.

    Use as a context manager around training; `channel_densities()` syncs once to read them.
    A group watched at several modules (e.g. after each residual addition) gets the mean of
    their per-channel densities. A module that runs twice per forward is counted at each call,
    which is the right thing when each call's output is a separate activation of the group.
    """

    def __init__(self, model: nn.Module, groups: list[ChannelGroup], zero_threshold: float = 0.0):
        self.model = model
        self.groups = groups
        self.zero_threshold = zero_threshold
        self._handles: list = []
        self._counts: dict[str, torch.Tensor] = {}
        self._totals: dict[str, int] = {}

    def __enter__(self) -> DensityMonitor:
        modules = dict(self.model.named_modules())
        for g in self.groups:
            for name in g.monitors:
                self._handles.append(modules[name].register_forward_hook(self._hook(f"{g.name}@{name}")))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, key: str):
        def hook(module, inputs, output):
            if not module.training:
                return
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
                out[g.name] = torch.stack(parts).mean(0).cpu()
        return out

    def layer_densities(self) -> dict[str, float]:
        return {name: layer_density(cd) for name, cd in self.channel_densities().items()}
