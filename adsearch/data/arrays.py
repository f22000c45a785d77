"""The datasets held in memory as tensors (`TensorData`) and batched straight on the training device:
`digits` (scikit-learn's bundled handwritten digits) and `synthetic` (generated, for tests)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from adsearch.data.batches import Dataset, TensorData
from adsearch.data.settings import DataSettings

_SYNTHETIC_SIZE = 8
"""The side in pixels of `synthetic`'s images unless `data.image_size` sets it."""


def _normalise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardise per channel with the training split's statistics."""
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def _resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None or size == x.shape[-1]:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def digits(spec: DataSettings, seed: int) -> Dataset:
    """scikit-learn's bundled handwritten digits: 1,797 grey 8x8 images, 10 classes."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0
    idx_train, idx_test = train_test_split(
        np.arange(len(images)), test_size=spec.test_fraction, random_state=seed, stratify=bunch.target
    )
    x = torch.from_numpy(images).unsqueeze(1)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    train_x, test_x = _normalise(_resize(x[idx_train], spec.image_size), _resize(x[idx_test], spec.image_size))
    data = TensorData("digits", train_x, y[idx_train], test_x, y[idx_test], num_classes=10)
    return data.limited(spec.train_limit, spec.test_limit)


def synthetic(spec: DataSettings, seed: int) -> Dataset:
    """Gaussian images whose class decides a bright quadrant: learnable in an epoch, for tests."""
    g = torch.Generator().manual_seed(seed)
    size = spec.image_size or _SYNTHETIC_SIZE
    n, k = spec.num_samples, spec.num_classes
    y = torch.arange(n) % k
    x = torch.randn(n, 3, size, size, generator=g) * 0.5
    half = size // 2
    for c in range(k):
        r, col = divmod(c % 4, 2)
        x[y == c, c % 3, r * half : (r + 1) * half, col * half : (col + 1) * half] += 1.0 + c // 4
    perm = torch.randperm(n, generator=g)
    x, y = x[perm], y[perm]
    n_test = max(k, int(n * spec.test_fraction))
    data = TensorData("synthetic", x[n_test:], y[n_test:], x[:n_test], y[:n_test], num_classes=k)
    return data.limited(spec.train_limit, spec.test_limit)


READERS = ((digits, {"channels": 1, "size": 8}), (synthetic, {"channels": 3, "size": _SYNTHETIC_SIZE}))
"""This module's datasets, each with what it declares to `adsearch.data.registry.register_dataset`."""
