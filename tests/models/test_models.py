"""The model registry and VGG (adsearch.models.registry): any input size, reference counts, widths, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adsearch.models import registry as models
from adsearch.prune.cost import count_macs, count_params
from adsearch.models.registry import check_arch, create_model, input_problem, list_models


@pytest.mark.parametrize("size", [8, 9, 13, 32, 64])
def test_vgg11_runs_on_any_input_from_8_to_64_px(size):
    model = create_model("vgg11", num_classes=7, in_channels=3, image_size=size).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, size, size)).shape == (2, 7)
    pools = sum(isinstance(m, nn.MaxPool2d) for m in model.features)
    # a pool is skipped once the map is 1 px: 8 -> 4 -> 2 -> 1 keeps 3 of vgg11's 5 pools
    assert pools == (3 if size < 16 else 5)


def test_cifar_vgg19_reference_counts():
    # The convention: no conv bias (BatchNorm follows each conv): 20,035,018 parameters, not the
    # 20,040,522 of a VGG-19 with conv biases; 0.398 G MACs at 32 x 32
    model = create_model("vgg19", num_classes=10)
    assert count_params(model) == 20_035_018
    assert count_macs(model, (3, 32, 32)) == pytest.approx(0.398e9, rel=0.01)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 16 and all(c.bias is None for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 16


def test_custom_vgg_layers_and_counts_by_hand():
    model = create_model("vgg", layers=[4, "M", 6], num_classes=2, in_channels=1, image_size=8)
    # conv 1*4*9 + BN 8, conv 4*6*9 + BN 12, Linear 6*2 + 2
    assert count_params(model) == 36 + 8 + 216 + 12 + 14
    # MACs: conv1 on 8x8: 36 * 64 = 2304; conv2 on 4x4: 216 * 16 = 3456; Linear 12
    assert count_macs(model, (1, 8, 8)) == 2304 + 3456 + 12


def test_widths_override_the_layer_list():
    model = create_model("vgg11", num_classes=10, image_size=32, widths=[3, 4, 5, 5, 6, 6, 7, 7])
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [3, 4, 5, 5, 6, 6, 7, 7]
    assert model.classifier.in_features == 7
    with pytest.raises(ValueError, match="widths has 2 entries, the network has 8 convs"):
        create_model("vgg11", num_classes=10, widths=[3, 4])


def test_width_mult_scales_every_conv():
    model = create_model("vgg11", num_classes=10, width_mult=0.5)
    assert [c.out_channels for c in model.modules() if isinstance(c, nn.Conv2d)] == [32, 64, 128, 128, 256, 256,
                                                                                      256, 256]


def test_channel_groups_of_vgg_chain_each_conv_to_the_next():
    model = create_model("vgg", layers=[8, "M", 16], num_classes=3, in_channels=1, image_size=8)
    first, second = model.channel_groups()
    assert first.producers == ["features.0.0", "features.0.1"] and first.consumers == ["features.2.0"]
    assert first.monitors == ["features.0.2"]
    assert second.consumers == ["classifier"]


def test_unknown_arch_lists_the_available_names():
    assert {"vgg", "vgg11", "vgg13", "vgg16", "vgg19"} <= set(list_models())
    assert list_models("vgg1*") == ["vgg11", "vgg13", "vgg16", "vgg19"]
    with pytest.raises(ValueError, match=r"unknown model 'vgg99'; did you mean 'vgg19'.*\? available: .*'vgg11', "
                                         r"'vgg13', 'vgg16', 'vgg19'"):
        check_arch("vgg99")
    with pytest.raises(ValueError, match="unknown model 'alexnet'"):
        create_model("alexnet", num_classes=10)


def test_arch_vgg_needs_a_layer_list():
    with pytest.raises(ValueError, match="arch 'vgg' needs model.layers"):
        create_model("vgg", num_classes=10)


# --- the input sizes a network takes ------------------------------------------------------------


def test_densenet121_cannot_take_8_px_and_names_the_smallest_size_it_takes():
    # 7x7/2 conv, 3x3/2 max-pool, then a 2x2/2 avg-pool in each of 3 transitions: 8 -> 4 -> 2 -> 1 -> 0
    # at transition2; 28 -> 14 -> 7 -> 3 -> 1 -> 0 at transition3; 29 -> 15 -> 8 -> 4 -> 2 -> 1
    problem = input_problem("torchvision:densenet121", in_channels=1, image_size=8)
    assert problem == ("torchvision:densenet121 cannot take 8x8 inputs (its feature maps shrink to nothing: "
                       "features.transition2.pool (AvgPool2d) gets 1x1); the smallest size it takes is 29: "
                       "set data.image_size: 29")
    assert "transition3.pool (AvgPool2d) gets 1x1" in input_problem("torchvision:densenet121", in_channels=1,
                                                                    image_size=28)
    assert input_problem("torchvision:densenet121", in_channels=1, image_size=29) is None


def test_a_network_that_takes_no_size_up_to_the_largest_says_so():
    # squeezenet1_1: a 3x3/2 conv, then 3x3/2 max-pools (ceil mode) at features.2, .5 and .8:
    # 8 -> 3 -> 1 -> 0 at features.5; 16 -> 7 -> 3 -> 1 -> 0 at features.8; 17 -> 8 -> 4 -> 2 -> 1
    assert input_problem("torchvision:squeezenet1_1", in_channels=3, image_size=8, largest=16) == (
        "torchvision:squeezenet1_1 cannot take 8x8 inputs (its feature maps shrink to nothing: features.5 "
        "(MaxPool2d) gets 1x1), nor any of 16 px: choose another model.arch or data.image_size")
    assert input_problem("torchvision:squeezenet1_1", in_channels=3, image_size=16).endswith(
        "the smallest size it takes is 17: set data.image_size: 17")


def test_the_default_model_and_resnets_take_small_inputs():
    assert input_problem("vgg11", in_channels=1, image_size=8) is None  # the default study: digits, 8 px
    assert input_problem("vgg", in_channels=1, image_size=8, layers=(8, "M", 16, "M", 32, "M", 64, "M")) is None
    assert input_problem("resnet18", in_channels=3, image_size=32) is None
    assert input_problem("resnet18", in_channels=3, image_size=8, stem="imagenet") is None
    assert input_problem("torchvision:resnet18", in_channels=3, image_size=32) is None


class _Only40px(nn.Module):
    """A head that flattens a 40x40 map: it takes that size and no other (as a ViT takes 224)."""

    def __init__(self, num_classes: int, in_channels: int, **_):
        super().__init__()
        self.fc = nn.Linear(in_channels * 40 * 40, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_a_network_made_for_one_size_names_it(monkeypatch):
    monkeypatch.setitem(models._REGISTRY, "only40", _Only40px)
    problem = input_problem("only40", in_channels=3, image_size=32)
    assert problem.startswith("only40 cannot take 32x32 inputs (RuntimeError: mat1 and mat2 shapes cannot be")
    assert problem.endswith("nor any of 64, 128, 224, 256 px: choose another model.arch or data.image_size")
    assert input_problem("only40", in_channels=3, image_size=20).endswith(
        "the smallest size it takes is 40: set data.image_size: 40")
