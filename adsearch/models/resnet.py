"""ResNet (basic blocks for 18/34, bottlenecks for 50; CIFAR or ImageNet stem): the blocks, the
network, its channel groups (`resnet_slots`), and the builders the model registry lists."""

from __future__ import annotations

import torch
from torch import nn

from adsearch.models.weight_init import init_weights
from adsearch.prune.compress import ChannelGroup

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
        init_weights(self)

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


RESNET_BUILDERS = [_make_resnet(name) for name in RESNETS]
"""The registry's ResNets: one per entry of `RESNETS`."""
