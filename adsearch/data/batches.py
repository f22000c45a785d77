"""What a trial reads of a dataset, and the datasets held in memory.

`Dataset` is the contract every registered dataset honours (`adsearch.data.registry` builds them): train
and test batches (float, normalised, on the training device), the number of classes and the
input shape. `TensorData` is the in-memory kind (`digits`, `synthetic`): tensors batched straight
on the training device by `TensorBatches`, no DataLoader. `balanced_subset` is how `data.limit`
takes a deterministic, class-balanced share of a split, for every kind of dataset.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch

Batch = tuple[torch.Tensor, torch.Tensor]


class Dataset(abc.ABC):
    """What a trial needs of a dataset: batches, the number of classes and the input shape."""

    name: str
    num_classes: int

    @property
    @abc.abstractmethod
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one sample as the network sees it."""

    @property
    @abc.abstractmethod
    def n_train(self) -> int: ...

    @property
    @abc.abstractmethod
    def n_test(self) -> int: ...

    @abc.abstractmethod
    def to(self, device: torch.device) -> Dataset:
        """The same data, batched onto `device`."""

    @abc.abstractmethod
    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterable[Batch]:
        """One epoch of shuffled (and for file datasets augmented) batches, drawn from `generator`."""

    @abc.abstractmethod
    def test_batches(self, batch_size: int) -> Iterable[Batch]:
        """The held-out split in order."""

    def close(self) -> None:
        """Stop worker processes, if any."""



# --- in memory: digits, synthetic ---------------------------------------------------------------


@dataclass
class TensorData(Dataset):
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

    @property
    def n_test(self) -> int:
        return int(self.test_x.shape[0])

    def to(self, device: torch.device) -> TensorData:
        move = lambda t: t.to(device)  # noqa: E731
        return TensorData(self.name, move(self.train_x), move(self.train_y), move(self.test_x),
                          move(self.test_y), self.num_classes)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterable[Batch]:
        return TensorBatches(self.train_x, self.train_y, batch_size, shuffle=True, generator=generator)

    def test_batches(self, batch_size: int) -> Iterable[Batch]:
        return TensorBatches(self.test_x, self.test_y, batch_size, shuffle=False)

    def limited(self, train_limit: int | None, test_limit: int | None) -> TensorData:
        """At most `train_limit` training and `test_limit` test samples (see `balanced_subset`)."""
        train, test = balanced_subset(self.train_y, train_limit), balanced_subset(self.test_y, test_limit)
        if len(train) == self.n_train and len(test) == self.n_test:
            return self
        return TensorData(self.name, self.train_x[train], self.train_y[train], self.test_x[test],
                          self.test_y[test], self.num_classes)


class TensorBatches:
    """Mini-batches straight from tensors; the shuffle permutation is made on the CPU generator."""

    def __init__(self, x, y, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.shuffle, self.generator = shuffle, generator

    def __len__(self) -> int:
        return -(-self.x.shape[0] // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n = self.x.shape[0]
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.x.device)
            for i in range(0, n, self.batch_size):
                idx = order[i : i + self.batch_size]
                yield self.x[idx], self.y[idx]
        else:
            for i in range(0, n, self.batch_size):
                yield self.x[i : i + self.batch_size], self.y[i : i + self.batch_size]


def balanced_subset(labels: torch.Tensor, limit: int | None) -> torch.Tensor:
    """Indices of at most `limit` samples, taken round-robin over the classes in index order (the
    first sample of every class, then the second, ...): deterministic and class-balanced. All
    indices, in order, when `limit` is None or not below the number of samples."""
    n = int(labels.shape[0])
    if limit is None or limit >= n:
        return torch.arange(n)
    labels = labels.cpu()
    order = torch.argsort(labels, stable=True)  # grouped by class, each class in index order
    counts = torch.bincount(labels)
    first = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.long)
    rank[order] = torch.arange(n) - first[labels[order]]  # a sample's place within its class
    key = rank * counts.numel() + labels
    return torch.argsort(key, stable=True)[:limit].sort().values
