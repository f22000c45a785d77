"""Dataset registry: `load_data(spec.data, ...)` is the one entry.

A dataset is a function registered by name that returns a `Dataset` bundle: train and test
splits as batch iterables, the number of classes and the input shape. Small in-memory sets
are batched straight from tensors on the training device (no DataLoader workers).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from adsearch.errors import AdsearchError
from adsearch.spec import DataSpec


@dataclass
class Dataset:
    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def n_train(self) -> int:
        return int(self.train_x.shape[0])

    def to(self, device: torch.device) -> Dataset:
        move = lambda t: t.to(device)  # noqa: E731
        return Dataset(self.name, move(self.train_x), move(self.train_y), move(self.test_x),
                       move(self.test_y), self.num_classes)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterable:
        return TensorBatches(self.train_x, self.train_y, batch_size, shuffle=True, generator=generator)

    def test_batches(self, batch_size: int) -> Iterable:
        return TensorBatches(self.test_x, self.test_y, batch_size, shuffle=False)


class TensorBatches:
    """Mini-batches straight from tensors; the shuffle permutation is made on the CPU generator."""

    def __init__(self, x, y, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.shuffle, self.generator = shuffle, generator

    def __len__(self) -> int:
        return -(-self.x.shape[0] // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.x.shape[0]
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.x.device)
            for i in range(0, n, self.batch_size):
                idx = order[i : i + self.batch_size]
                yield self.x[idx], self.y[idx]
        else:
            for i in range(0, n, self.batch_size):
                yield self.x[i : i + self.batch_size], self.y[i : i + self.batch_size]


_REGISTRY: dict[str, Callable[[DataSpec, int], Dataset]] = {}


def register_dataset(fn):
    _REGISTRY[fn.__name__] = fn
    return fn


def list_datasets() -> list[str]:
    return sorted(_REGISTRY)


def load_data(spec: DataSpec, seed: int = 0) -> Dataset:
    """Load dataset `spec.dataset` with the split fixed by `seed`."""
    if spec.dataset not in _REGISTRY:
        close = difflib.get_close_matches(spec.dataset, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise AdsearchError(f"unknown dataset {spec.dataset!r}{hint} available: {', '.join(list_datasets())}")
    return _REGISTRY[spec.dataset](spec, seed)


def _normalise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardise per channel with the training split's statistics."""
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def _resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None or size == x.shape[-1]:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


@register_dataset
def digits(spec: DataSpec, seed: int) -> Dataset:
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
    return Dataset("digits", train_x, y[idx_train], test_x, y[idx_test], num_classes=10)


@register_dataset
def synthetic(spec: DataSpec, seed: int) -> Dataset:
    """Gaussian images whose class decides a bright quadrant: learnable in an epoch, for tests."""
    g = torch.Generator().manual_seed(seed)
    size = spec.image_size or 8
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
    return Dataset("synthetic", x[n_test:], y[n_test:], x[:n_test], y[:n_test], num_classes=k)
