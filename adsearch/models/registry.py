"""Model registry: a dict filled by a decorator; `create_model(name, ...)` is the one entry.

Every registered network exposes `channel_groups()`: the prunable groups of output channels
(see `adsearch.prune.compress.ChannelGroup`), and is rebuilt at any widths by passing `widths=`.
`torchvision:<name>` builds a model of torchvision's registry (random weights, never downloaded);
its groups come from tracing (`adsearch.prune.graph`). `save_compressed` / `load_compressed` store a
compressed network with its widths, so it reloads without the original ones.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from adsearch.prune.compress import ChannelGroup, RoundPlan, apply_plan, group_widths
from adsearch.errors import AdsearchError
from adsearch.prune.graph import TRACE_SIZE, UnsupportedModel, channel_groups

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


TORCHVISION = "torchvision:"


def check_arch(name: str) -> None:
    """Raise ValueError naming the available architectures if `name` is not one."""
    if name.startswith(TORCHVISION):
        return _check_torchvision(name[len(TORCHVISION):])
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
        return _torchvision_model(name[len(TORCHVISION):], num_classes=num_classes, in_channels=in_channels,
                                  widths=widths, **kwargs)
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


# --- ResNet (basic blocks for 18/34, bottlenecks for 50; CIFAR or ImageNet stem) -----------------

RESNETS: dict[str, tuple[str, tuple[int, ...]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}
RESNET_STAGE_WIDTHS = (64, 128, 256, 512)
CIFAR_STEM_MAX_SIZE = 64
"""Inputs up to this many pixels get the CIFAR stem (3x3 conv, no max-pool) by default."""


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False)  # BN follows: no bias


class BasicBlock(nn.Module):
    """3x3 conv-BN-ReLU, 3x3 conv-BN, plus the shortcut, then ReLU.

    Each ReLU is its own module (one per use), so a hook on it sees one activation.
    """

    expansion = 1
    inner = (("conv1", "bn1", "relu1"),)  # (conv, BN, ReLU) whose channels stay inside the block
    last = ("conv2", "bn2", "relu2")  # the conv and BN that write the residual channels, the ReLU after the add

    def __init__(self, cin: int, mids: list[int], cout: int, stride: int, project: bool):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = _conv(cin, mids[0], 3, stride), nn.BatchNorm2d(mids[0]), nn.ReLU(True)
        self.conv2, self.bn2 = _conv(mids[0], cout, 3), nn.BatchNorm2d(cout)
        self.downsample = nn.Sequential(_conv(cin, cout, 1, stride), nn.BatchNorm2d(cout)) if project else nn.Identity()
        self.relu2 = nn.ReLU(True)
        self.projects = project

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + self.downsample(x))


class Bottleneck(nn.Module):
    """1x1 conv-BN-ReLU, 3x3 conv (stride here, as torchvision's v1.5)-BN-ReLU, 1x1 conv-BN, add, ReLU."""

    expansion = 4
    inner = (("conv1", "bn1", "relu1"), ("conv2", "bn2", "relu2"))
    last = ("conv3", "bn3", "relu3")

    def __init__(self, cin: int, mids: list[int], cout: int, stride: int, project: bool):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = _conv(cin, mids[0], 1), nn.BatchNorm2d(mids[0]), nn.ReLU(True)
        self.conv2, self.bn2, self.relu2 = _conv(mids[0], mids[1], 3, stride), nn.BatchNorm2d(mids[1]), nn.ReLU(True)
        self.conv3, self.bn3 = _conv(mids[1], cout, 1), nn.BatchNorm2d(cout)
        self.downsample = nn.Sequential(_conv(cin, cout, 1, stride), nn.BatchNorm2d(cout)) if project else nn.Identity()
        self.relu3 = nn.ReLU(True)
        self.projects = project

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        return self.relu3(self.bn3(self.conv3(out)) + self.downsample(x))


_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def resnet_slots(block: str, depths: tuple[int, ...]) -> list[tuple[str, int]]:
    """The channel groups of a ResNet, in `channel_groups()` order, with their full widths.

    `stem`: the stem's channels, shared by stage 1's residual additions when it has no projection;
    `layerN`: the residual channels of stage N, started by its first block's projection;
    `layerN.B.convK`: the channels inside block B (pruned on their own).
    """
    cls = _BLOCKS[block]
    slots = [("stem", RESNET_STAGE_WIDTHS[0])]
    for s, depth in enumerate(depths):
        width = RESNET_STAGE_WIDTHS[s]
        for b in range(depth):
            if b == 0 and (s > 0 or cls.expansion != 1):
                slots.append((f"layer{s + 1}", width * cls.expansion))
            slots += [(f"layer{s + 1}.{b}.{conv}", width) for conv, _, _ in cls.inner]
    return slots


class ResNet(nn.Module):
    """ResNet with a CIFAR stem (3x3 conv, stride 1, no max-pool) or an ImageNet stem (7x7 conv,
    stride 2, 3x3 max-pool), four stages, global average pool and one Linear.

    `widths` maps every slot of `resnet_slots` to its width. A stage's first block projects its
    shortcut (1x1 conv + BN) when it changes stride or width in the full network, so a network
    rebuilt at any widths has the same layers.
    """

    def __init__(self, block: str, depths: tuple[int, ...], widths: dict[str, int], *,
                 num_classes: int, in_channels: int, stem: str):
        super().__init__()
        cls = _BLOCKS[block]
        self.stem = stem
        if stem == "cifar":
            self.conv1 = _conv(in_channels, widths["stem"], 3)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = _conv(in_channels, widths["stem"], 7, stride=2)
            self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        self.bn1, self.relu = nn.BatchNorm2d(widths["stem"]), nn.ReLU(True)
        cin = widths["stem"]
        for s, depth in enumerate(depths):
            blocks = []
            for b in range(depth):
                project = b == 0 and (s > 0 or cls.expansion != 1)
                cout = widths[f"layer{s + 1}"] if project else cin
                mids = [widths[f"layer{s + 1}.{b}.{conv}"] for conv, _, _ in cls.inner]
                blocks.append(cls(cin, mids, cout, 2 if (b == 0 and s > 0) else 1, project))
                cin = cout
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.num_stages = len(depths)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for s in range(self.num_stages):
            x = getattr(self, f"layer{s + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def channel_groups(self) -> list[ChannelGroup]:
        """Residual groups (the stem, then each projecting stage) and one group per inner conv.

        A residual group holds the conv + BN that start it (stem or projection), every block's
        last conv + BN that adds into it, and is read by every block's first conv, the next
        stage's projection and finally `fc`; its density is counted after each of its ReLUs
        (the stem's and every block's after-addition ReLU).
        """
        stream = ChannelGroup("stem", producers=["conv1", "bn1"], consumers=[], monitors=["relu"])
        groups = [stream]
        for s in range(self.num_stages):
            for b, block in enumerate(getattr(self, f"layer{s + 1}")):
                at = f"layer{s + 1}.{b}"
                stream.consumers.append(f"{at}.conv1")
                if block.projects:
                    stream.consumers.append(f"{at}.downsample.0")
                    stream = ChannelGroup(f"layer{s + 1}", producers=[f"{at}.downsample.0", f"{at}.downsample.1"],
                                          consumers=[], monitors=[])
                    groups.append(stream)
                convs = [c for c, _, _ in block.inner] + [block.last[0]]
                for k, (conv, bn, relu) in enumerate(block.inner):
                    groups.append(ChannelGroup(f"{at}.{conv}", producers=[f"{at}.{conv}", f"{at}.{bn}"],
                                               consumers=[f"{at}.{convs[k + 1]}"], monitors=[f"{at}.{relu}"]))
                stream.producers += [f"{at}.{block.last[0]}", f"{at}.{block.last[1]}"]
                stream.monitors.append(f"{at}.{block.last[2]}")
        stream.consumers.append("fc")
        return groups


def _make_resnet(name: str):
    block, depths = RESNETS[name]

    def build(*, num_classes, in_channels, image_size, widths=None, width_mult=1.0, stem=None):
        slots = resnet_slots(block, depths)
        if widths is not None:
            if len(widths) != len(slots):
                raise ValueError(f"widths has {len(widths)} entries, {name} has {len(slots)} channel groups")
            chosen = {slot: int(w) for (slot, _), w in zip(slots, widths)}
        else:
            chosen = {slot: max(1, round(full * width_mult)) for slot, full in slots}
        if stem is None:
            stem = "cifar" if image_size <= CIFAR_STEM_MAX_SIZE else "imagenet"
        return ResNet(block, depths, chosen, num_classes=num_classes, in_channels=in_channels, stem=stem)

    build.__name__ = name
    return build


for _name in RESNETS:
    register_model(_make_resnet(_name))


# --- torchvision models by name (random weights; compressed through the traced channel graph) ----


def _torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _check_torchvision(name: str) -> None:
    names = _torchvision_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        listed = f"close matches: {', '.join(TORCHVISION + c for c in close)}" if close else \
            f"torchvision's classification models: {', '.join(names)}"
        raise ValueError(f"unknown torchvision model {TORCHVISION + name!r}; {listed}")


def _torchvision_model(name: str, *, num_classes: int, in_channels: int, widths: list[int] | None = None,
                       width_mult: float = 1.0) -> nn.Module:
    """torchvision's `name` with random weights, its stem set to `in_channels`, at the given widths.

    Widths are reached by building the full network and keeping each group's first channels,
    so the result has exactly the shapes of a network compressed to those widths.
    """
    import torchvision

    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    if in_channels != 3:
        _set_stem_channels(model, in_channels)
    if widths is None and width_mult == 1.0:
        return model
    groups = channel_groups(model)
    full = group_widths(model, groups)
    if widths is None:
        widths = [min(f, max(g.min_width, round(f * width_mult))) for g, f in zip(groups, full)]
    if len(widths) != len(groups):
        raise ValueError(f"widths has {len(widths)} entries, torchvision:{name} has {len(groups)} channel groups")
    wrong = [(g.name, w, g.min_width, f) for g, w, f in zip(groups, widths, full) if not g.min_width <= w <= f]
    if wrong:
        raise ValueError(f"widths must be between the group's min_width and its full width, got "
                         f"(group, width, min_width, full) {wrong}")
    keep = {g.name: (torch.arange(w) if w < f else None) for g, w, f in zip(groups, widths, full)}
    apply_plan(model, groups, RoundPlan(keep=keep, density={}, old_widths=dict(zip([g.name for g in groups], full))))
    return model


def _set_stem_channels(model: nn.Module, in_channels: int) -> None:
    """Replace the first conv (the stem) by one reading `in_channels` channels."""
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                new = nn.Conv2d(in_channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                                child.dilation, child.groups, child.bias is not None)
                setattr(parent, child_name, new)
                return
    raise ValueError("the model has no conv layer to read the input channels")


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


# --- saved compressed models --------------------------------------------------------------------

SAVE_FORMAT = 1


def save_compressed(model: nn.Module, path: str | Path, *, arch: str, num_classes: int, in_channels: int = 3,
                    image_size: int = 32, width_mult: float = 1.0, layers: list | None = None,
                    stem: str | None = None) -> None:
    """Write `model` (possibly compressed) with what rebuilds it: its arch arguments and group widths.

    The file is one plain dict (loadable with `torch.load(weights_only=True)`).
    """
    widths = group_widths(model, channel_groups(model))
    args = {"name": arch, "num_classes": num_classes, "in_channels": in_channels, "image_size": image_size,
            "width_mult": width_mult, "layers": layers, "stem": stem}
    torch.save({"format": SAVE_FORMAT, "arch": args, "widths": widths, "state_dict": model.state_dict()}, path)


def load_compressed(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a network written by `save_compressed` at its stored widths and load its weights."""
    blob = torch.load(path, map_location=map_location, weights_only=True)
    if blob.get("format") != SAVE_FORMAT:
        raise AdsearchError(f"{path}: saved-model format {blob.get('format')} is not {SAVE_FORMAT}")
    args = dict(blob["arch"])
    model = create_model(args.pop("name"), widths=list(blob["widths"]), **args)
    model.load_state_dict(blob["state_dict"])
    return model
