"""Our ResNets (adsearch.models.resnet): reference counts, stems, coupled residual groups, exact removal,
save and reload, and a short compressing trial."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pruning_checks import check_against_masked, criterion_plan, forward_backward, keep_all_plan, random_plan

from adsearch.prune.compress import ChannelGroup, apply_plan, group_widths
from adsearch.prune.cost import count_macs, count_params
from adsearch.data.registry import load_data
from adsearch.prune.density import DensityMonitor
from adsearch.models.registry import create_model
from adsearch.models.resnet import resnet_slots
from adsearch.models.saving import load_compressed, save_compressed
from adsearch.spec.loading import SpecError, parse_spec
from adsearch.spec.pruning import CRITERIA
from adsearch.train.trainer import build_model, run_trial

torch.set_num_threads(2)


# --- reference counts ---------------------------------------------------------------------------


def test_cifar_vgg19_reference_counts():
    # Convention: no conv bias (BatchNorm follows every conv) -> 20,035,018, not 20,040,522
    model = create_model("vgg19", num_classes=10)
    assert count_params(model) == 20_035_018
    assert count_macs(model, (3, 32, 32)) == pytest.approx(0.398e9, rel=0.01)


def test_cifar_resnet18_reference_counts():
    model = create_model("resnet18", num_classes=10, image_size=32)
    assert count_params(model) == 11_173_962
    assert count_macs(model, (3, 32, 32)) == pytest.approx(0.556e9, rel=0.01)
    assert count_macs(model, (3, 64, 64)) == pytest.approx(2.22e9, rel=0.01)


def test_resnet34_and_50_match_the_usual_cifar_counts():
    assert count_params(create_model("resnet34", num_classes=10)) == 21_282_122
    assert count_params(create_model("resnet50", num_classes=10)) == 23_520_842


# --- stems and widths ---------------------------------------------------------------------------


def test_stem_is_cifar_up_to_64_px_and_imagenet_above_unless_set():
    small = create_model("resnet18", num_classes=10, image_size=64)
    assert small.stem == "cifar" and small.conv1.kernel_size == (3, 3) and isinstance(small.maxpool, nn.Identity)
    large = create_model("resnet18", num_classes=10, image_size=96)
    assert large.stem == "imagenet" and large.conv1.kernel_size == (7, 7) and large.conv1.stride == (2, 2)
    assert isinstance(large.maxpool, nn.MaxPool2d)
    forced = create_model("resnet18", num_classes=10, image_size=32, stem="imagenet")
    assert forced.stem == "imagenet"
    assert parse_spec("name: s\nmodel: {arch: resnet18, stem: imagenet}").model.stem == "imagenet"
    spec = parse_spec("name: s\nmodel: {arch: resnet18, width_mult: 0.125}\ndata: {dataset: digits, image_size: 96}")
    data = load_data(spec.data, spec.seed)  # a spec reaches the ImageNet stem by its image size
    assert data.input_shape == (1, 96, 96) and build_model(spec, data).stem == "imagenet"


def test_width_mult_scales_every_group_and_widths_rebuild_exactly():
    model = create_model("resnet18", num_classes=10, width_mult=0.25)
    widths = group_widths(model, model.channel_groups())
    assert widths == [max(1, round(w * 0.25)) for _, w in resnet_slots("basic", (2, 2, 2, 2))]
    assert widths[:4] == [16, 16, 16, 32]  # stem, layer1.0.conv1, layer1.1.conv1, layer2
    again = create_model("resnet18", num_classes=10, widths=widths)
    assert count_params(again) == count_params(model)


def test_spec_rejects_options_of_another_arch():
    with pytest.raises(SpecError, match="model.stem applies to resnet18/34/50 only"):
        parse_spec("name: s\nmodel: {arch: vgg11, stem: cifar}")
    with pytest.raises(SpecError, match="model.layers applies to VGG archs only"):
        parse_spec("name: s\nmodel: {arch: resnet18, layers: [8, M]}")


# --- coupled groups -----------------------------------------------------------------------------


def test_resnet18_groups_couple_each_stage_and_keep_inner_convs_alone():
    model = create_model("resnet18", num_classes=10)
    groups = {g.name: g for g in model.channel_groups()}
    assert list(groups)[:5] == ["stem", "layer1.0.conv1", "layer1.1.conv1", "layer2", "layer2.0.conv1"]
    stem = groups["stem"]  # stage 1 has no projection: its additions share the stem's channels
    assert stem.producers == ["conv1", "bn1", "layer1.0.conv2", "layer1.0.bn2", "layer1.1.conv2", "layer1.1.bn2"]
    assert stem.consumers == ["layer1.0.conv1", "layer1.1.conv1", "layer2.0.conv1", "layer2.0.downsample.0"]
    assert stem.monitors == ["relu", "layer1.0.relu2", "layer1.1.relu2"]  # including the ReLUs after each add
    layer4 = groups["layer4"]  # a projection starts a new group, read last by the classifier
    assert layer4.producers[:2] == ["layer4.0.downsample.0", "layer4.0.downsample.1"]
    assert layer4.consumers == ["layer4.1.conv1", "fc"]
    inner = groups["layer3.1.conv1"]
    assert (inner.producers, inner.consumers, inner.monitors) == (
        ["layer3.1.conv1", "layer3.1.bn1"], ["layer3.1.conv2"], ["layer3.1.relu1"])
    assert len(groups) == len(resnet_slots("basic", (2, 2, 2, 2))) == 12




def test_group_density_is_the_mean_or_max_over_its_activation_sites():
    class TwoSites(nn.Module):  # one group of 2 channels, watched after two ReLUs
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.ReLU(), nn.ReLU()

        def forward(self, x):
            return self.a(x) + self.b(-x)

    group = ChannelGroup("g", producers=[], consumers=[], monitors=["a", "b"])
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0]])[:, :, None, None]  # channel 0 always > 0, channel 1 half
    densities = {}
    for aggregate in ("mean", "max"):
        net = TwoSites().train()
        with DensityMonitor(net, [group], aggregate=aggregate) as monitor:
            net(x)
            densities[aggregate] = monitor.channel_densities()["g"].tolist()
    assert densities["mean"] == [0.5, 0.5]  # channel 0: (1 + 0) / 2; channel 1: (0.5 + 0.5) / 2
    assert densities["max"] == [1.0, 0.5]
    assert parse_spec("name: s\npruning: {group_density: max}").pruning.group_density == "max"


# --- removal is exact ---------------------------------------------------------------------------

ARCHS = [("resnet18", 0.25), ("resnet34", 0.125), ("resnet50", 0.125)]


@pytest.mark.parametrize("arch,mult", ARCHS)
def test_removing_nothing_leaves_the_output_unchanged(arch, mult):
    model = create_model(arch, num_classes=10, width_mult=mult).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
    groups = model.channel_groups()
    apply_plan(model, groups, keep_all_plan(groups, group_widths(model, groups)))
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch,mult", ARCHS)
def test_random_plan_gives_the_planned_network(arch, mult, tmp_path):
    torch.manual_seed(0)
    model = create_model(arch, num_classes=10, width_mult=mult)
    _randomise_bn(model)
    groups = model.channel_groups()
    plan = random_plan(groups, group_widths(model, groups), seed=1)
    pruned = copy.deepcopy(model)
    pruned_groups = pruned.channel_groups()
    apply_plan(pruned, pruned_groups, plan)
    x = torch.randn(2, 3, 32, 32)

    # the same network as one built at the planned widths: parameters and MACs
    widths = [plan.new_widths[g.name] for g in groups]
    built = create_model(arch, num_classes=10, widths=widths)
    assert count_params(pruned) == count_params(built) < count_params(model)
    assert count_macs(pruned, (3, 32, 32)) == count_macs(built, (3, 32, 32))
    # the masked original's output, and unchanged pre-activations on the kept inner channels
    check_against_masked(model, groups, pruned, pruned_groups, plan, x)
    forward_backward(copy.deepcopy(pruned), x, 10)

    # saved with its widths, reloaded without knowing them: the same outputs
    path = tmp_path / "model.pt"
    save_compressed(pruned, path, arch=arch, num_classes=10, in_channels=3, image_size=32, width_mult=mult)
    reloaded = load_compressed(path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), pruned.eval()(x), atol=0, rtol=0)


def _randomise_bn(model: nn.Module) -> None:
    """Non-trivial running statistics and affine terms, so a wrong slice shows in eval outputs."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)


# --- a short trial ------------------------------------------------------------------------------

TRIAL = """
name: resnet-digits
model: {{arch: resnet18, width_mult: 0.25}}
data: {{dataset: digits}}
train: {{epochs: 2, batch_size: 64, optimizer: {{name: sgd, lr: 0.05}}, device: cpu}}
pruning: {{compress_at: [1], max_rounds: 1, target_density: 0.95, min_channels: 4, weights: {weights}}}
"""


@pytest.mark.parametrize("criterion", CRITERIA)
def test_coupled_groups_stay_consistent_under_every_criterion(criterion):
    """Each criterion scores a coupled group over all its members: the cut keeps one index set per
    group, so the pruned ResNet computes what the masked original computes."""
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, width_mult=0.25)
    _randomise_bn(model)
    groups = model.channel_groups()
    plan = criterion_plan(model, groups, criterion, seed=1)
    assert any(len(g.producers) > 2 and plan.keep[g.name] is not None for g in groups)  # a coupled group is cut
    pruned = copy.deepcopy(model)
    pruned_groups = pruned.channel_groups()
    apply_plan(pruned, pruned_groups, plan)
    check_against_masked(model, groups, pruned, pruned_groups, plan, torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize("weights", ["inherit", "reinit"])
def test_two_epoch_resnet_trial_on_digits_compresses_once_and_resumes(weights):
    spec = parse_spec(TRIAL.format(weights=weights))
    checkpoints = []
    metrics = run_trial(spec, report=lambda m, ckpt: checkpoints.append(copy.deepcopy(ckpt)))
    assert metrics["rounds"] == 1 and len(metrics["compressions"]) == 1
    assert len(metrics["widths"]) == len(metrics["base_widths"]) == 12
    assert all(w <= b for w, b in zip(metrics["widths"], metrics["base_widths"]))
    assert metrics["params"] < metrics["history"][0]["params"]
    assert metrics["accuracy"] > 0.3  # 10 classes: well above chance after one compressed epoch
    # resumed after the compression: rebuilt at the stored widths, same end
    resumed = run_trial(spec, checkpoint=checkpoints[0])
    assert resumed["widths"] == metrics["widths"] and resumed["params"] == metrics["params"]
    assert resumed["accuracy"] == metrics["accuracy"]
