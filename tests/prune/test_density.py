"""The activation-density arithmetic and monitor (adsearch.prune.density)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adsearch.prune.compress import ChannelGroup
from adsearch.prune.density import DensityMonitor, active_counts, channel_density, layer_density, outputs_per_channel


def hand_made_output() -> torch.Tensor:
    """Shape (2, 3, 2, 2): 8 entries per channel. Positives: channel 0 has 2, channel 1 has 8,
    channel 2 has 0 (its entries are 0 or negative); channel 0 also holds two small values 0.05."""
    out = torch.zeros(2, 3, 2, 2)
    out[0, 0, 0, 0] = 1.0
    out[1, 0, 1, 1] = 0.05
    out[:, 1] = 2.0
    out[0, 2] = -1.0
    return out


def test_active_counts_per_channel():
    out = hand_made_output()
    assert active_counts(out).tolist() == [2, 8, 0]
    assert outputs_per_channel(out) == 8


def test_zero_threshold_counts_only_outputs_above_it():
    out = hand_made_output()
    assert active_counts(out, zero_threshold=0.1).tolist() == [1, 8, 0]
    assert active_counts(out, zero_threshold=2.0).tolist() == [0, 0, 0]  # strictly above


def test_channel_and_layer_density():
    cd = channel_density(active_counts(hand_made_output()), 8)
    assert cd.tolist() == [0.25, 1.0, 0.0]
    assert layer_density(cd) == pytest.approx((0.25 + 1.0 + 0.0) / 3)


def test_density_of_a_2d_output_counts_over_the_batch():
    out = torch.tensor([[1.0, 0.0], [1.0, -3.0], [0.0, 5.0], [2.0, 0.0]])  # (batch 4, 2 features)
    assert active_counts(out).tolist() == [3, 1]
    assert outputs_per_channel(out) == 4


# --- the monitor on a tiny network ---------------------------------------------------------------


class Tiny(nn.Module):
    """A 1x1 conv with fixed weights +1 and -1 on one input channel, then ReLU.

    For an input of all ones, channel 0 is 1 (active) and channel 1 is -1 (inactive) everywhere.
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x))


def tiny_group() -> list[ChannelGroup]:
    return [ChannelGroup("conv", producers=["conv"], consumers=[], monitors=["relu"])]


def test_monitor_counts_per_channel_in_training_mode():
    model = Tiny().train()
    x = torch.ones(3, 1, 2, 2)
    x[0] = -1.0  # the first sample flips the signs: channel 1 is active on it, channel 0 not
    with DensityMonitor(model, tiny_group()) as monitor:
        model(x)
        densities = monitor.channel_densities()
    # channel 0 is active on samples 1 and 2 (8 of 12 entries), channel 1 on sample 0 (4 of 12)
    assert densities["conv"].tolist() == pytest.approx([8 / 12, 4 / 12])
    assert monitor.layer_densities()["conv"] == pytest.approx(0.5)


def test_monitor_ignores_eval_mode_and_accumulates_over_batches():
    model = Tiny()
    with DensityMonitor(model, tiny_group()) as monitor:
        model.eval()
        model(-torch.ones(5, 1, 2, 2))  # not counted
        assert monitor.channel_densities() == {}
        model.train()
        model(torch.ones(1, 1, 2, 2))  # channel 0 active: 4 of 4
        model(-torch.ones(1, 1, 2, 2))  # channel 1 active: 4 of 4
        assert monitor.channel_densities()["conv"].tolist() == [0.5, 0.5]


def test_reset_starts_counting_afresh():
    model = Tiny().train()
    with DensityMonitor(model, tiny_group()) as monitor:
        model(-torch.ones(2, 1, 2, 2))
        monitor.reset()
        assert monitor.channel_densities() == {}
        model(torch.ones(2, 1, 2, 2))
        assert monitor.channel_densities()["conv"].tolist() == [1.0, 0.0]


def test_hooks_are_removed_on_exit_even_after_an_error():
    model = Tiny().train()
    with pytest.raises(RuntimeError):
        with DensityMonitor(model, tiny_group()):
            assert len(model.relu._forward_hooks) == 1
            raise RuntimeError("boom")
    assert len(model.relu._forward_hooks) == 0
    assert len(model.relu._forward_pre_hooks) == 0 and len(model._forward_pre_hooks) == 0


def test_zero_threshold_applies_in_the_monitor():
    model = Tiny().train()
    with DensityMonitor(model, tiny_group(), zero_threshold=1.5) as monitor:
        model(torch.ones(1, 1, 2, 2))  # channel 0 outputs 1.0: not above 1.5
        model(2 * torch.ones(1, 1, 2, 2))  # channel 0 outputs 2.0: above
        assert monitor.channel_densities()["conv"].tolist() == [0.5, 0.0]


class TwiceRelu(Tiny):
    """Runs its one ReLU module twice per forward: on the conv output and on its negation."""

    def forward(self, x):
        return self.relu(self.conv(x)) + self.relu(-self.conv(x))


def test_a_module_run_twice_per_forward_is_counted_at_both_calls():
    # Documented behaviour: without a `Slice.call`, every call of a monitored module counts, so a
    # ReLU shared by two places (torchvision's BasicBlock) mixes both activations in one density.
    model = TwiceRelu().train()
    with DensityMonitor(model, tiny_group()) as monitor:
        model(torch.ones(1, 1, 2, 2))
        densities = monitor.channel_densities()["conv"]
    # first call: channel 0 active (4 of 4), channel 1 not; second call: the reverse -> 4 of 8 each
    assert densities.tolist() == [0.5, 0.5]


def test_a_monitor_slice_picks_one_call_and_a_channel_range():
    from adsearch.prune.compress import Slice

    model = TwiceRelu().train()
    second_call = ChannelGroup("conv", producers=["conv"], consumers=[], monitors=["relu"],
                               slices={"relu": Slice(offset=1, width=1, call=1)})
    with DensityMonitor(model, [second_call]) as monitor:
        model(torch.ones(1, 1, 2, 2))
        model(torch.ones(1, 1, 2, 2))
        densities = monitor.channel_densities()["conv"]
    # the second call sees relu(-conv(x)) = [0, 1] per position: channel 1 is active everywhere
    assert densities.tolist() == [1.0]


def test_group_watched_at_two_sites_mean_or_max():
    class Neg(nn.Module):
        def forward(self, x):
            return -x

    model = nn.Sequential(nn.ReLU(), Neg(), nn.ReLU()).train()
    group = [ChannelGroup("g", producers=[], consumers=[], monitors=["0", "2"])]
    x = torch.tensor([[1.0, -1.0]]).view(1, 2, 1, 1)
    # site "0" sees [1, 0] active on channel 0; site "2" sees relu(-relu(x)) = [0, 0]
    with DensityMonitor(model, group, aggregate="mean") as monitor:
        model(x)
        assert monitor.channel_densities()["g"].tolist() == [0.5, 0.0]
    with DensityMonitor(model, group, aggregate="max") as monitor:
        model(x)
        assert monitor.channel_densities()["g"].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="aggregate must be one of mean, max"):
        DensityMonitor(model, group, aggregate="median")


def test_counting_is_traced_into_a_compiled_forward_and_matches_eager():
    """The hooks hold no Python state a compile would freeze: `torch.compile(fullgraph=True)` (a
    graph break raises) counts each call and slice as the eager forward does, step after step."""
    from adsearch.prune.compress import Slice

    groups = [ChannelGroup(f"call{c}", producers=["conv"], consumers=[], monitors=["relu"],
                           slices={"relu": Slice(offset=c, width=1, call=c)}) for c in (0, 1)]
    groups.append(ChannelGroup("both", producers=["conv"], consumers=[], monitors=["relu"]))
    inputs = [torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    densities = {}
    for compiled in (False, True):
        model = TwiceRelu().train()
        forward = torch.compile(model, fullgraph=True) if compiled else model
        with DensityMonitor(model, groups) as monitor:
            for x in inputs:
                forward(x)
                monitor.collect()
            densities[compiled] = {k: v.tolist() for k, v in monitor.channel_densities().items()}
    assert densities[True] == densities[False]
    assert set(densities[False]) == {"call0", "call1", "both"} and len(densities[False]["both"]) == 2
