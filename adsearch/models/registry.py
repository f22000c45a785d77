"""Model registry: a dict filled by a decorator; `create_model(name, ...)` is the one entry.

Every registered network exposes `channel_groups()`: the prunable groups of output channels
(see `adsearch.prune.compress.ChannelGroup`), and is rebuilt at any widths by passing `widths=`.
The families (`adsearch.models.vgg`, `adsearch.models.resnet`) define their builders and this module
registers them; `torchvision:<name>` builds a model of torchvision's registry
(`adsearch.models.torchvision_models`; random weights, never downloaded), its groups from tracing.
"""

from __future__ import annotations

import difflib
import fnmatch
from typing import Callable

from torch import nn

from adsearch.models.resnet import RESNET_BUILDERS
from adsearch.models.torchvision_models import TORCHVISION, check_torchvision, torchvision_model
from adsearch.models.vgg import VGG_BUILDERS

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register `fn` (a builder taking `num_classes`, `in_channels`, `image_size`, `widths` and its own
    options) under its function name; used as a decorator."""
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """The registered names matching the shell-style `pattern`, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def check_arch(name: str) -> None:
    """Raise ValueError naming the available architectures if `name` is not one."""
    if name.startswith(TORCHVISION):
        return check_torchvision(name[len(TORCHVISION):])
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown model {name!r};{hint} available: {', '.join(map(repr, list_models()))}, "
                         f"or '{TORCHVISION}<name>' for a torchvision classification model")


def create_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int = 3,
    image_size: int = 32,
    widths: list[int] | None = None,
    **kwargs,
) -> nn.Module:
    """Build registered model `name`; `widths` overrides its per-group channel widths.

    Options left at None (e.g. `layers`, `stem`) are not passed on, so each builder sees only
    the ones set.
    """
    check_arch(name)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if name.startswith(TORCHVISION):
        return torchvision_model(name[len(TORCHVISION):], num_classes=num_classes, in_channels=in_channels,
                                 widths=widths, **kwargs)
    return _REGISTRY[name](
        num_classes=num_classes, in_channels=in_channels, image_size=image_size, widths=widths, **kwargs
    )


for _build in [*VGG_BUILDERS, *RESNET_BUILDERS]:
    register_model(_build)
