"""Model registry: a dict filled by a decorator; `create_model(name, ...)` is the one entry.

Every registered network exposes `channel_groups()`: the prunable groups of output channels
(see `adsearch.compress.ChannelGroup`), and is rebuilt at any widths by passing `widths=`.
"""

from __future__ import annotations

import difflib
import fnmatch
from typing import Callable

import torch
from torch import nn

from adsearch.compress import ChannelGroup

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def check_arch(name: str) -> None:
    """Raise ValueError naming the available architectures if `name` is not one."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} available: {', '.join(list_models())}")


def create_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int = 3,
    image_size: int = 32,
    widths: list[int] | None = None,
    **kwargs,
) -> nn.Module:
    """Build registered model `name`; `widths` overrides its per-group channel widths."""
    check_arch(name)
    return _REGISTRY[name](
        num_classes=num_classes, in_channels=in_channels, image_size=image_size, widths=widths, **kwargs
    )


# --- VGG (CIFAR style: Conv-BN-ReLU blocks, max-pools, global average pool, one Linear) -----------

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
        _init_weights(self)

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


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


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


for _name in [None, *VGG_LAYERS]:
    register_model(_make_vgg(_name))
