"""What a model cannot do, found before a trial (adsearch.models.checks): the input sizes a network takes."""

from __future__ import annotations

from torch import nn

from adsearch.models import registry
from adsearch.models.checks import input_problem


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
    monkeypatch.setitem(registry._REGISTRY, "only40", _Only40px)
    problem = input_problem("only40", in_channels=3, image_size=32)
    assert problem.startswith("only40 cannot take 32x32 inputs (RuntimeError: mat1 and mat2 shapes cannot be")
    assert problem.endswith("nor any of 64, 128, 224, 256 px: choose another model.arch or data.image_size")
    assert input_problem("only40", in_channels=3, image_size=20).endswith(
        "the smallest size it takes is 40: set data.image_size: 40")
