"""Cost of a network: parameters, inference MACs, training MACs, measured latency.

MACs come from `torch.utils.flop_counter.FlopCounterMode` (2 FLOPs per multiply-accumulate;
conv and matmul counted, BatchNorm, ReLU and pooling not). Training MACs for a sample are taken
as 3x its forward MACs (forward, plus backward for activations and for weights).
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

TRAIN_FACTOR = 3


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Inference MACs for one sample of shape `input_shape` (C, H, W)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def train_macs(forward_macs: int, samples: int) -> int:
    """Training MACs for `samples` samples through a network of `forward_macs` per sample."""
    return TRAIN_FACTOR * forward_macs * samples


def latency_ms(model: nn.Module, input_shape: tuple[int, ...], repeats: int = 20) -> float:
    """Median wall time of one single-sample forward pass, in milliseconds."""
    device = next(model.parameters()).device
    x = torch.zeros(1, *input_shape, device=device)
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.no_grad():
            for i in range(repeats + 3):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                model(x)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i >= 3:  # warm-up runs are not counted
                    times.append((time.perf_counter() - t0) * 1e3)
    finally:
        model.train(was_training)
    return statistics.median(times)
