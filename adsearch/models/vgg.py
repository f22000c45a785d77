"""VGG (CIFAR style: Conv-BN-ReLU blocks, max-pools, global average pool, one Linear): the network,
its channel groups, and the builders the model registry lists (`vgg`, `vgg11` ... `vgg19`)."""

from __future__ import annotations

import torch
from torch import nn

from adsearch.models.weight_init import init_weights
from adsearch.prune.compress import ChannelGroup

VGG_LAYERS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),  # BN follows: a conv bias is redundant
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class VGG(nn.Module):
    """VGG from a layer list. Conv layers carry no bias (BatchNorm follows each).

    A max-pool is skipped where the feature map is already 1 px, so any input from 8 to 64 px
    works with any list.
    """

    def __init__(self, layers: list[int | str], *, num_classes: int, in_channels: int, image_size: int):
        super().__init__()
        self.layers = list(layers)
        blocks: list[nn.Module] = []
        cin, size = in_channels, image_size
        for item in layers:
            if item == "M":
                if size >= 2:
                    blocks.append(nn.MaxPool2d(2))
                    size //= 2
            else:
                blocks.append(ConvBNReLU(cin, int(item)))
                cin = int(item)
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))

    def channel_groups(self) -> list[ChannelGroup]:
        names = [f"features.{i}" for i, m in enumerate(self.features) if isinstance(m, ConvBNReLU)]
        groups = []
        for k, name in enumerate(names):
            consumer = f"{names[k + 1]}.0" if k + 1 < len(names) else "classifier"
            groups.append(
                ChannelGroup(
                    name=f"conv{k + 1}",
                    producers=[f"{name}.0", f"{name}.1"],
                    consumers=[consumer],
                    monitors=[f"{name}.2"],
                )
            )
        return groups


def _vgg_layers(base: list, widths: list[int] | None, width_mult: float, layers: list | None) -> list:
    layers = list(layers) if layers is not None else list(base)
    convs = [i for i, x in enumerate(layers) if x != "M"]
    if widths is not None:
        if len(widths) != len(convs):
            raise ValueError(f"widths has {len(widths)} entries, the network has {len(convs)} convs")
        for i, w in zip(convs, widths):
            layers[i] = int(w)
    elif width_mult != 1.0:
        for i in convs:
            layers[i] = max(1, round(int(layers[i]) * width_mult))
    return layers


def _make_vgg(base_name: str | None):
    def build(*, num_classes, in_channels, image_size, widths=None, width_mult=1.0, layers=None):
        base = VGG_LAYERS[base_name] if base_name else []
        if not base and layers is None:
            raise ValueError("arch 'vgg' needs model.layers")
        return VGG(
            _vgg_layers(base, widths, width_mult, layers),
            num_classes=num_classes, in_channels=in_channels, image_size=image_size,
        )

    build.__name__ = base_name or "vgg"
    return build


VGG_BUILDERS = [_make_vgg(name) for name in [None, *VGG_LAYERS]]
"""The registry's VGGs: `vgg` (its layers from `model.layers`) and one per list of `VGG_LAYERS`."""
