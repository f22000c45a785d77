"""Image datasets on disk (`FileData`): uint8 images served as normalised batches on the device.

A split's images come from one of three sources (`adsearch.data.splits`): CIFAR's pixels held in
memory, image files decoded with PIL as they are read, or the decoded-image cache. When both splits
fit the device's memory budget (`data.on_device`) they are held there whole and each batch is
gathered, cropped, flipped and normalised there; otherwise DataLoader workers read a batch at a
time, pinned for CUDA, copied without blocking and normalised on the device. Every random choice
of an epoch (the order, each sample's crop and flip) is drawn in the main process from one seed
taken from the trainer's shuffle generator, so an epoch is the same with any number of workers and
after resuming from a checkpoint.
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
import torch.utils.data

from adsearch.data.batches import Batch, Dataset
from adsearch.data.splits import ImageFiles, Split
from adsearch.errors import DataError


# --- an epoch: its draws, the plan of batches, the worker's reader --------------------------------

PAD = 4
"""Random-crop padding in pixels (training augmentation, with a horizontal flip where the dataset
allows one: `FileData.flip`)."""


def crop_and_flip(x: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor, pad: int) -> torch.Tensor:
    """Per sample of `x` (B, C, H, W): the H x W crop at offset `shifts[b]` (row, column) of `x[b]`
    zero-padded by `pad` on every side, mirrored left-right where `flips[b]`."""
    b, c, h, w = x.shape
    at = dict(device=x.device)
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = shifts[:, 0, None] + torch.arange(h, **at)  # (B, H)
    cols = shifts[:, 1, None] + torch.arange(w, **at)  # (B, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    return padded[torch.arange(b, **at)[:, None, None, None], torch.arange(c, **at)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def epoch_draws(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every random choice of a training epoch over `n` samples, from `seed`: the order, each
    sample's crop offset (row, column) and whether it is flipped (indexed by sample)."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    shifts = torch.randint(0, 2 * PAD + 1, (n, 2), generator=g)
    flips = torch.rand(n, generator=g) < 0.5
    return order, shifts, flips


class _EpochPlan(torch.utils.data.Sampler):
    """Yields one ticket per batch: (indices, crop offsets, flips), or (indices, None, None) in
    order for evaluation. Iterated in the main process; `seed` fixes the whole epoch."""

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, augment: bool, flip: bool = True):
        self.n, self.batch_size, self.shuffle, self.augment, self.flip = n, batch_size, shuffle, augment, flip
        self.seed = 0

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __iter__(self):
        if not self.shuffle:
            for i in range(0, self.n, self.batch_size):
                yield torch.arange(i, min(i + self.batch_size, self.n)), None, None
            return
        order, shifts, flips = epoch_draws(self.n, self.seed)
        flips &= self.flip  # drawn all the same: a dataset without flips crops as one with them
        for i in range(0, self.n, self.batch_size):
            idx = order[i : i + self.batch_size]
            if self.augment:
                yield idx, shifts[idx], flips[idx]
            else:
                yield idx, None, None


class _BatchReader(torch.utils.data.Dataset):
    """Turns a ticket into a uint8 batch (in a worker process); an unreadable image becomes
    {"error": message}, raised in the main process as a `DataError` without a worker traceback."""

    def __init__(self, split: Split):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, ticket):
        idx, shifts, flips = ticket
        try:
            x = self.split.images.read(idx)
        except DataError as exc:
            return {"error": str(exc)}
        if shifts is not None:
            x = crop_and_flip(x, shifts, flips, PAD)
        return x, self.split.labels[idx]


def decoded_in_order(split: Split, workers: int, batch: int = 256) -> Iterator[torch.Tensor]:
    """A split's images as uint8 chunks (B, 3, H, W), in order, decoded by `workers` DataLoader
    processes. Raises `DataError` naming the first image that cannot be decoded."""
    plan = _EpochPlan(len(split), batch, shuffle=False, augment=False)
    loader = torch.utils.data.DataLoader(_BatchReader(split), batch_size=None, sampler=plan,
                                         num_workers=workers, generator=torch.Generator())
    for item in loader:
        if isinstance(item, dict):
            raise DataError(item["error"])
        yield item[0]


# --- batches on the device: from the workers, or from the splits held there whole -----------------


class _DeviceBatches:
    """The loader's uint8 batches on `device`: copied without blocking, normalised there."""

    def __init__(self, loader, device: torch.device, scale: torch.Tensor, shift: torch.Tensor, size: int):
        self.loader, self.device, self.scale, self.shift, self.size = loader, device, scale, shift, size

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.loader:
            if isinstance(batch, dict):
                raise DataError(batch["error"])
            x, y = batch
            x = x.to(self.device, non_blocking=True).float().mul_(self.scale).add_(self.shift)
            if x.shape[-1] != self.size:
                x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                  antialias=x.shape[-1] > self.size)
            yield x, y.to(self.device, non_blocking=True)


class _ResidentBatches:
    """One pass over a split held whole on the device as uint8: the worker path's draws
    (`epoch_draws`, moved to the device once per epoch), then per batch a gather, the crop and
    flip, and the normalisation, each one batched op there; no worker, no host copy, no sync."""

    def __init__(self, pixels: torch.Tensor, labels: torch.Tensor, batch_size: int, data: FileData,
                 seed: int | None):
        self.pixels, self.labels, self.batch_size, self.data, self.seed = pixels, labels, batch_size, data, seed

    def __len__(self) -> int:
        return -(-int(self.labels.shape[0]) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n, device = int(self.labels.shape[0]), self.pixels.device
        if self.seed is None:  # evaluation: in order
            for i in range(0, n, self.batch_size):
                yield self._finish(self.pixels[i : i + self.batch_size]), self.labels[i : i + self.batch_size]
            return
        order, shifts, flips = (t.to(device) for t in epoch_draws(n, self.seed))
        flips &= self.data.flip
        for i in range(0, n, self.batch_size):
            idx = order[i : i + self.batch_size]
            x = self.pixels[idx]
            if self.data.augment:
                x = crop_and_flip(x, shifts[idx], flips[idx], PAD)
            yield self._finish(x), self.labels[idx]

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        d = self.data
        x = x.float().mul_(d._scale).add_(d._shift)
        if x.shape[-1] != d.size:
            x = F.interpolate(x, size=(d.size, d.size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > d.size)
        return x


# --- the dataset ----------------------------------------------------------------------------------

RESIDENT_SHARE = 0.5
"""`data.on_device: auto` keeps a dataset on the device when both splits, as uint8, take at most
this share of the device's free memory (the rest is for the network, its activations and the
optimizer)."""


def free_memory(device: torch.device) -> int:
    """Bytes free on `device`: CUDA's own count, or the host's available memory for the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def default_workers() -> int:
    """DataLoader workers when `data.workers` is unset: min(4, the CPUs this process may use)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(4, cpus)


class FileData(Dataset):
    """A dataset on disk: train and test `Split`s read by DataLoader workers (see the module doc)."""

    def __init__(self, name: str, train: Split, test: Split, *, num_classes: int,
                 mean: tuple[float, ...], std: tuple[float, ...], size: int, augment: bool = True,
                 flip: bool = True, workers: int | None = None, device: torch.device | str = "cpu",
                 on_device: str | bool = False):
        """`mean` and `std` per channel (their length is the images' channels); `flip`: whether
        augmentation mirrors images left-right (not for written characters)."""
        self.name, self.train, self.test, self.num_classes = name, train, test, num_classes
        self.mean, self.std, self.size, self.augment, self.flip = mean, std, size, augment, flip
        self.workers = default_workers() if workers is None else workers
        self.device = torch.device(device)
        self.on_device = on_device
        self._loaders: dict[tuple[str, int], torch.utils.data.DataLoader] = {}
        self._resident: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
        # (x / 255 - mean) / std as one multiply-add on the device
        std_t = torch.tensor(std).view(1, -1, 1, 1)
        self._scale = (1 / (255 * std_t)).to(self.device)
        self._shift = (-torch.tensor(mean).view(1, -1, 1, 1) / std_t).to(self.device)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (len(self.mean), self.size, self.size)

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def n_test(self) -> int:
        return len(self.test)

    @property
    def resident(self) -> bool:
        """Whether both splits are held whole on the device (`data.on_device`)."""
        return self._resident is not None

    def to(self, device: torch.device | str) -> FileData:
        """The same data batched onto `device`: held there whole when `on_device` says so (see
        `resident_bytes`), else read by DataLoader workers.

        Raises:
            DataError: `on_device` is true and the splits do not fit, or an image cannot be decoded.
        """
        moved = FileData(self.name, self.train, self.test, num_classes=self.num_classes, mean=self.mean,
                         std=self.std, size=self.size, augment=self.augment, flip=self.flip, workers=self.workers,
                         device=device, on_device=self.on_device)
        if moved._fits_on_device():
            moved._resident = {which: (moved._decoded(split).to(moved.device), split.labels.to(moved.device))
                               for which, split in (("train", self.train), ("test", self.test))}
        return moved

    def resident_bytes(self) -> int:
        """Bytes both splits take on the device as uint8, at the size their images are read."""
        return sum(len(split) * len(self.mean) * split.images.size ** 2 for split in (self.train, self.test))

    def _fits_on_device(self) -> bool:
        if self.on_device is False:
            return False
        need, free = self.resident_bytes(), free_memory(self.device)
        if need <= RESIDENT_SHARE * free:
            return True
        if self.on_device is True:
            raise DataError(
                f"data.on_device is true, but {self.name} needs {_gib(need)} as uint8 on {self.device}, over the "
                f"budget of {_gib(int(RESIDENT_SHARE * free))} ({RESIDENT_SHARE:.0%} of its {_gib(free)} free); "
                "set data.on_device: auto (DataLoader workers when it does not fit) or false, or make it smaller "
                "(data.limit, data.image_size)")
        return False

    def _decoded(self, split: Split) -> torch.Tensor:
        """A split's images as one uint8 tensor: CIFAR's as they are, the cache's read whole, image
        files decoded by the DataLoader workers, in order (an unreadable image is a `DataError`
        naming the file)."""
        if not isinstance(split.images, ImageFiles):  # in memory or in the cache: all there already
            return split.images.all()
        chunks = list(decoded_in_order(split, self.workers))
        return torch.cat(chunks) if chunks else torch.zeros(0, 3, split.images.size, split.images.size,
                                                            dtype=torch.uint8)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterable[Batch]:
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        if self._resident is not None:
            return _ResidentBatches(*self._resident["train"], batch_size, self, seed)
        loader = self._loader("train", batch_size)
        loader.sampler.seed = seed
        return _DeviceBatches(loader, self.device, self._scale, self._shift, self.size)

    def test_batches(self, batch_size: int) -> Iterable[Batch]:
        if self._resident is not None:
            return _ResidentBatches(*self._resident["test"], batch_size, self, None)
        return _DeviceBatches(self._loader("test", batch_size), self.device, self._scale, self._shift, self.size)

    def _loader(self, which: str, batch_size: int) -> torch.utils.data.DataLoader:
        """One loader per split and batch size, kept: its workers persist from epoch to epoch."""
        key = (which, batch_size)
        if key not in self._loaders:
            split = self.train if which == "train" else self.test
            plan = _EpochPlan(len(split), batch_size, shuffle=which == "train", augment=self.augment, flip=self.flip)
            self._loaders[key] = torch.utils.data.DataLoader(
                _BatchReader(split), batch_size=None, sampler=plan, num_workers=self.workers,
                pin_memory=self.device.type == "cuda", persistent_workers=self.workers > 0,
                generator=torch.Generator(),  # the loader's own seed draws leave the global RNG alone
            )
        return self._loaders[key]

    def close(self) -> None:
        """Stop the worker processes now: an epoch cut short by an error leaves its iterator
        referenced from the traceback, and its workers would otherwise linger until collected."""
        for loader in self._loaders.values():
            if loader._iterator is not None:  # torch has no public way to end persistent workers
                loader._iterator._shutdown_workers()
        self._loaders.clear()
