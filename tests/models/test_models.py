"""The model registry and VGG (adsearch.models.registry, adsearch.models.vgg): any input size, reference
counts, widths, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adsearch.prune.cost import count_macs, count_params
from adsearch.models.registry import check_arch, create_model, list_models


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
