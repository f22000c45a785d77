"""Benchmark: training steps of torchvision's ResNet-18 on the CPU in the default layout (NCHW) or
channels_last (NHWC), the question behind `adsearch.train.step.CHANNELS_LAST_DEVICES` (the CPU
keeps the default layout). Time it as two arms side by side, one process each:

    python benchmarks/bench_channels_last_cpu.py --layout channels_last
    python benchmarks/bench_channels_last_cpu.py --layout default

Prints the median step time of the timed steps. With `--narrow` the network's 1x1 stride-2
shortcuts get 4 input channels (a pruned ResNet's): under oneDNN's AVX2 kernels
(`ONEDNN_MAX_CPU_ISA=AVX2`) channels_last then corrupts the heap or the gradient (oneDNN issue
6035), which is the other half of the question.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", choices=["default", "channels_last"], required=True)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--narrow", action="store_true", help="4-channel inputs to the 1x1 stride-2 shortcuts")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    if args.narrow:
        for block in (model.layer2[0], model.layer3[0], model.layer4[0]):
            conv = block.downsample[0]
            block.downsample[0] = torch.nn.Conv2d(4, conv.out_channels, 1, stride=2, bias=False)
    x, y = torch.randn(args.batch, 3, args.size, args.size), torch.randint(0, 10, (args.batch,))
    fmt = torch.channels_last if args.layout == "channels_last" else torch.contiguous_format
    model, x = model.to(memory_format=fmt), x.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for step in range(args.steps + 3):  # 3 warm-up steps
        start = time.perf_counter()
        opt.zero_grad()
        if args.narrow:  # the shortcut convs' weight gradient alone, on 4-channel inputs
            for block in (model.layer2[0], model.layer3[0], model.layer4[0]):
                conv = block.downsample[0]
                inp = torch.randn(args.batch, 4, args.size, args.size).to(memory_format=fmt)
                conv(inp).sum().backward()
        else:
            F.cross_entropy(model(x), y).backward()
        opt.step()
        if step >= 3:
            times.append(time.perf_counter() - start)
    print(f"{args.layout}: {statistics.median(times) * 1000:.1f} ms a step (median of {args.steps}), "
          f"batch {args.batch}, {args.size} px, {args.threads} thread(s)")


if __name__ == "__main__":
    main()
