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

from adsearch.prune.compress import ChannelGroup


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

    Use as a context manager around training, or `attach()` and `detach()`. The hooks do nothing
    but count: each call of a watched module in training mode appends its per-channel counts to a
    pending list (tensor work only, no host sync, no Python state read), so `torch.compile` traces
    them into the step's graph and CUDA graphs replay them. `collect()` folds the pending counts into the running sums (one
    batched add on the device); the trainer calls it after every step, before a CUDA graph's
    outputs are overwritten, and `channel_densities()` calls it too, then syncs once to read them.

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
        self._pending: list[tuple[str | None, torch.Tensor | None, int]] = []  # appended to by the hooks
        self._counts: dict[tuple[str, int], torch.Tensor] = {}  # (module, call) -> per-channel counts
        self._totals: dict[tuple[str, int], int] = {}  # (module, call) -> outputs per channel seen

    def __enter__(self) -> DensityMonitor:
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def attach(self) -> DensityMonitor:
        """Register the hooks (the trainer keeps them for as long as the network keeps its widths)."""
        modules = dict(self.model.named_modules())
        watched = {name for g in self.groups for name in g.monitors}
        # a marker at each forward of the whole model: calls of a module are numbered within one
        self._handles.append(self.model.register_forward_pre_hook(self._forward_started))
        for name in sorted(watched):
            self._handles.append(modules[name].register_forward_hook(self._hook(name)))
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _forward_started(self, module, inputs) -> None:
        if module.training:
            self._pending.append((None, None, 0))

    def _hook(self, name: str):
        def hook(module, inputs, output):
            if module.training:
                detached = output.detach()
                self._pending.append((name, active_counts(detached, self.zero_threshold),
                                      outputs_per_channel(detached)))

        return hook

    def collect(self) -> None:
        """Add the counts of the forwards since the last call to the running sums."""
        sums: list[torch.Tensor] = []
        adds: list[torch.Tensor] = []
        calls: dict[str, int] = {}
        for name, counts, total in self._pending:
            if name is None:  # a new forward: its calls are numbered from 0, its keys are new to `sums`
                self._add(sums, adds)
                calls.clear()
                continue
            call = calls[name] = calls.get(name, -1) + 1
            key = (name, call)
            if key not in self._counts:
                self._counts[key] = torch.zeros_like(counts)
                self._totals[key] = 0
            sums.append(self._counts[key])
            adds.append(counts)
            self._totals[key] += total
        self._add(sums, adds)
        self._pending.clear()

    @staticmethod
    def _add(sums: list[torch.Tensor], adds: list[torch.Tensor]) -> None:
        if sums:
            torch._foreach_add_(sums, adds)
        sums.clear()
        adds.clear()

    def reset(self) -> None:
        self._pending.clear()
        self._counts.clear()
        self._totals.clear()

    def _site(self, group: ChannelGroup, name: str) -> torch.Tensor | None:
        """The per-channel density of `group` at monitor module `name`, or None if never seen."""
        site = group.slices.get(name)
        keys = [k for k in self._counts if k[0] == name
                and (site is None or site.call is None or k[1] == site.call)]
        if not keys:
            return None
        counts = sum(self._counts[k] for k in keys)
        if site is not None:
            counts = counts[site.offset : site.offset + site.width]
        return channel_density(counts, sum(self._totals[k] for k in keys))

    def channel_densities(self) -> dict[str, torch.Tensor]:
        """Per group, the per-channel density (on the CPU) since the last reset."""
        self.collect()
        out = {}
        for g in self.groups:
            parts = [d for d in (self._site(g, m) for m in g.monitors) if d is not None]
            if parts:
                stacked = torch.stack(parts)
                out[g.name] = (stacked.mean(0) if self.aggregate == "mean" else stacked.amax(0)).cpu()
        return out

    def layer_densities(self) -> dict[str, float]:
        return {name: layer_density(cd) for name, cd in self.channel_densities().items()}
