"""The method: coupled channel groups (hand-written or traced with torch.fx), activation density,
the channel criteria, the width plan of a cut and the physical removal, and what a network costs.

Every pruning action is "take a `ChannelGroup`, choose its kept channels, remove the rest together".
"""

from adsearch._lazy import lazy_exports

_OWNERS = {
    "ChannelGroup": "compress", "Slice": "compress", "RoundPlan": "compress", "plan_round": "compress",
    "apply_plan": "compress", "kept_channels": "compress", "group_widths": "compress", "planned_params": "compress",
    "DensityMonitor": "density", "channel_density": "density", "layer_density": "density",
    "channel_scores": "criteria", "channel_groups": "graph", "traced_channel_groups": "graph",
    "UnsupportedModel": "tracing", "count_params": "cost", "count_macs": "cost", "train_macs": "cost",
    "latency_ms": "cost",
}
__all__ = list(_OWNERS)
__getattr__, __dir__ = lazy_exports(__name__, _OWNERS)
