"""What a spec's model cannot do, found before any trial runs: a network that cannot be compressed,
a criterion that cannot score its groups, an input size it cannot take (with the smallest it takes)."""

from __future__ import annotations

import functools

import torch
from torch import nn

from adsearch.models.registry import create_model
from adsearch.models.torchvision_models import TORCHVISION
from adsearch.prune.graph import channel_groups
from adsearch.prune.tracing import TRACE_SIZE, UnsupportedModel


@functools.lru_cache(maxsize=None)
def compression_problem(arch: str) -> str | None:
    """Why `arch` cannot be compressed (an untraceable model or an unsupported op), or None."""
    if not arch.startswith(TORCHVISION):
        return None
    try:
        channel_groups(create_model(arch, num_classes=10))
    except UnsupportedModel as exc:
        return f"{arch} cannot be compressed: {exc}"
    return None


@functools.lru_cache(maxsize=None)
def criterion_problem(arch: str, criterion: str) -> str | None:
    """Why `criterion` cannot choose the channels of `arch` (a group no layer it reads writes), or
    None. The registered VGGs and ResNets put a conv and a BatchNorm in every group."""
    if criterion not in ("bn_scale", "l1_norm") or not arch.startswith(TORCHVISION) or compression_problem(arch):
        return None
    from adsearch.prune.criteria import unscorable

    model = create_model(arch, num_classes=10, width_mult=0.25)  # the same groups at any width
    missing = unscorable(model, channel_groups(model), criterion)
    if not missing:
        return None
    reads = {"bn_scale": "a BatchNorm with a scale", "l1_norm": "a conv or Linear"}[criterion]
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    return (f"{criterion} needs {reads} writing each pruned group, and {arch} has {len(missing)} without: "
            f"{shown}; use another criterion for it")


# --- the input sizes a network takes ------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def input_problem(arch: str, *, in_channels: int, image_size: int, layers: tuple | None = None,
                  stem: str | None = None, largest: int = 256) -> str | None:
    """Why `arch` cannot train on square inputs of `image_size` px and `in_channels` channels (a
    feature map that shrinks to nothing, a fixed input size), with the smallest size up to `largest`
    that it takes; None if it takes them.

    Sizes are tried by a training-mode forward pass of two samples on the CPU (0.07 s for the default
    VGG at 8 px, network built included). Not on the meta device: its batch-norm and pooling
    kernels import TorchDynamo, a second per process that every `adsearch` command would pay.
    """
    failure = _input_failure(arch, in_channels, image_size, layers, stem)
    if failure is None:
        return None
    smallest = _smallest_input(arch, in_channels, image_size, layers, stem, largest)
    given = f"{arch} cannot take {image_size}x{image_size} inputs ({failure})"
    if smallest is None:
        tried = ", ".join(map(str, _candidates(image_size, largest)))
        return f"{given}, nor any of {tried} px: choose another model.arch or data.image_size"
    return f"{given}; the smallest size it takes is {smallest}: set data.image_size: {smallest}"


def _smallest_input(arch: str, in_channels: int, image_size: int, layers: tuple | None, stem: str | None,
                    largest: int) -> int | None:
    """The smallest size above `image_size` (which fails) and up to `largest` that `arch` takes: the
    first that works of the doublings, torchvision's 224 and `largest`, then bisection below it."""
    takes = lambda size: _input_failure(arch, in_channels, size, layers, stem) is None  # noqa: E731
    low = image_size
    for high in _candidates(image_size, largest):
        if takes(high):
            break
        low = high
    else:
        return None
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if takes(mid) else (mid, high)
    return high


def _candidates(image_size: int, largest: int) -> list[int]:
    """The sizes `_smallest_input` tries first: doublings of `image_size`, torchvision's 224, `largest`."""
    doublings = {image_size * 2 ** k for k in range(1, 10)} | {TRACE_SIZE, largest}
    return sorted(size for size in doublings if image_size < size <= largest)


@functools.lru_cache(maxsize=None)
def _input_failure(arch: str, in_channels: int, size: int, layers: tuple | None, stem: str | None) -> str | None:
    """Why a training step's forward pass of `arch` fails on a batch of two `size` px inputs (two:
    batch norm needs more than one value per channel), or None."""
    model = create_model(arch, num_classes=10, in_channels=in_channels, image_size=size,
                         layers=None if layers is None else list(layers), stem=stem)
    model.train()
    with torch.no_grad():
        entered: list[tuple[str, nn.Module, tuple]] = []
        hooks = [m.register_forward_pre_hook(lambda m, args, name=name: entered.append((name, m, args)))
                 for name, m in model.named_modules() if not any(m.children())]
        try:
            model(torch.zeros(2, in_channels, size, size))
        except Exception as exc:  # noqa: BLE001 - whatever stops the forward pass stops the training
            return _shrunk(entered[-1] if entered else None, exc)
        finally:
            for hook in hooks:
                hook.remove()
    return None


def _shrunk(last: tuple[str, nn.Module, tuple] | None, exc: Exception) -> str:
    """The reason a forward pass failed: the layer whose window outgrew its input, or the error."""
    text = (str(exc).strip().splitlines() or [""])[0]
    shrinks = "too small" in text or "can't be greater than actual input size" in text
    if not shrinks:
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if last is None or not last[2] or not isinstance(last[2][0], torch.Tensor):
        return f"its feature maps shrink to nothing: {text}"
    name, module, (x, *_) = last
    return f"its feature maps shrink to nothing: {name} ({type(module).__name__}) gets {x.shape[-2]}x{x.shape[-1]}"
