"""Dataset registry: `load_data(spec.data, ...)` is the one entry.

A dataset is a function registered by name that returns a `Dataset`: train and test batches
(float, normalised, on the training device), the number of classes and the input shape. Two kinds:

- in memory (`TensorData`: `digits`, `synthetic`): tensors batched straight on the training
  device, no DataLoader.
- on disk (`FileData`: `cifar10`, `cifar100`, `tinyimagenet`, `imagefolder`): uint8 images, CIFAR's
  from its pickle batches held in memory, image files decoded once with PIL into the decoded-image
  cache (`data.cache_dir`, shared by every trial and study; an entry is keyed by the dataset, the
  split, the size and every file's path, size and modification time). When both splits fit the
  device's memory budget (`data.on_device`) they are held there whole and each batch is gathered,
  cropped, flipped and normalised there; otherwise DataLoader workers read a batch at a time,
  pinned for CUDA, copied without blocking and normalised on the device.

Loading a file dataset checks its layout (files present, labels mapped to one class index), so a
study refuses a missing or partial dataset before it writes anything; an image that cannot be
decoded is an error naming the file, when the cache is built (or, with `data.cache: false`, when
training reaches it). Every random choice of
an epoch (the order, each sample's crop and flip) is drawn in the main process from one seed taken
from the trainer's shuffle generator, so an epoch is the same with any number of workers and after
resuming from a checkpoint.
"""

from __future__ import annotations

import abc
import difflib
import hashlib
import json
import os
import pickle
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.data

from adsearch.errors import AdsearchError, DataError

if TYPE_CHECKING:  # data reads a spec's fields; the spec validates names against this registry
    from adsearch.spec import DataSpec

DATA_ENV = "ADSEARCH_DATA"
"""Environment variable holding the default `data.root` (else ~/data)."""
CACHE_ENV = "ADSEARCH_CACHE"
"""Environment variable holding the default `data.cache_dir` (else ~/.cache/adsearch)."""

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

    def limited(self, limit: int | None) -> TensorData:
        """At most `limit` samples per split (see `balanced_subset`)."""
        if limit is None or limit >= max(self.n_train, self.n_test):
            return self
        train, test = balanced_subset(self.train_y, limit), balanced_subset(self.test_y, limit)
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


# --- on disk: image sources, the epoch plan, the DataLoader ------------------------------------

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")
PAD = 4
"""Random-crop padding in pixels (training augmentation, with a horizontal flip)."""


class ImageArray:
    """Images held in memory as one uint8 tensor (N, 3, H, W): CIFAR."""

    def __init__(self, pixels: torch.Tensor):
        self.pixels = pixels

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def size(self) -> int:
        return int(self.pixels.shape[-1])

    def subset(self, idx: torch.Tensor) -> ImageArray:
        return ImageArray(self.pixels[idx])

    def read(self, idx: torch.Tensor) -> torch.Tensor:
        return self.pixels[idx]


class ImageFiles:
    """Image files decoded with PIL when read, as RGB at `size` x `size` (resized if they are not)."""

    def __init__(self, paths: list[str] | np.ndarray, size: int):
        # one numpy string array, not a list of str: workers forked from this process would
        # otherwise copy the list's pages as they touch each string's reference count
        self.paths = np.asarray(paths, dtype=str)
        self.size = size

    def __len__(self) -> int:
        return int(self.paths.shape[0])

    def subset(self, idx: torch.Tensor) -> ImageFiles:
        return ImageFiles(self.paths[idx.numpy()], self.size)

    def read(self, idx: torch.Tensor) -> torch.Tensor:
        images = np.stack([read_image(str(self.paths[i]), self.size) for i in idx.tolist()])
        return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def read_image(path: str, size: int) -> np.ndarray:
    """One image as uint8 (size, size, 3) RGB. Raises `DataError` naming the file if it is unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's errors for missing, corrupt, truncated files
        raise DataError(f"cannot read image {path}: {exc}; replace or remove the file") from None


@dataclass
class Split:
    """One split of a file dataset: its images and their labels (int64, one per image)."""

    images: ImageArray | ImageFiles | ImageCache
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def limited(self, limit: int | None) -> Split:
        idx = balanced_subset(self.labels, limit)
        return self if len(idx) == len(self) else Split(self.images.subset(idx), self.labels[idx])


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

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, augment: bool):
        self.n, self.batch_size, self.shuffle, self.augment = n, batch_size, shuffle, augment
        self.seed = 0

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __iter__(self):
        if not self.shuffle:
            for i in range(0, self.n, self.batch_size):
                yield torch.arange(i, min(i + self.batch_size, self.n)), None, None
            return
        order, shifts, flips = epoch_draws(self.n, self.seed)
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
                 workers: int | None = None, device: torch.device | str = "cpu",
                 on_device: str | bool = False):
        self.name, self.train, self.test, self.num_classes = name, train, test, num_classes
        self.mean, self.std, self.size, self.augment = mean, std, size, augment
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
        return (3, self.size, self.size)

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
                         std=self.std, size=self.size, augment=self.augment, workers=self.workers, device=device,
                         on_device=self.on_device)
        if moved._fits_on_device():
            moved._resident = {which: (moved._decoded(split).to(moved.device), split.labels.to(moved.device))
                               for which, split in (("train", self.train), ("test", self.test))}
        return moved

    def resident_bytes(self) -> int:
        """Bytes both splits take on the device as uint8, at the size their images are read."""
        return sum(len(split) * 3 * split.images.size ** 2 for split in (self.train, self.test))

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
        """A split's images as one uint8 tensor: CIFAR's as they are, image files decoded by the
        DataLoader workers, in order (an unreadable image is a `DataError` naming the file)."""
        if isinstance(split.images, ImageArray):
            return split.images.pixels
        if isinstance(split.images, ImageCache):
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
            plan = _EpochPlan(len(split), batch_size, shuffle=which == "train", augment=self.augment)
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


# --- the decoded-image cache ------------------------------------------------------------------


class ImageCache:
    """Decoded images read from a cache file (uint8, N x 3 x H x W) mapped into memory: worker
    processes share its pages; `read` copies only the rows it is asked for."""

    def __init__(self, path: Path):
        self.path = path
        self.array = np.load(path, mmap_mode="r")

    def __len__(self) -> int:
        return int(self.array.shape[0])

    @property
    def size(self) -> int:
        return int(self.array.shape[-1])

    def subset(self, idx: torch.Tensor) -> ImageArray:
        return ImageArray(torch.from_numpy(self.array[idx.numpy()]))

    def read(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.array[idx.numpy()])

    def all(self) -> torch.Tensor:
        return torch.from_numpy(np.array(self.array))  # a copy in memory: the file stays read-only


def cache_key(dataset: str, split: str, images: ImageFiles, labels: torch.Tensor) -> str:
    """What decides a split's decoded pixels: the dataset, the split, the size, and every file
    (path, size in bytes, modification time) with its label, digested."""
    h = hashlib.sha256(json.dumps([dataset, split, images.size]).encode())
    for path, label in zip(images.paths.tolist(), labels.tolist()):
        st = os.stat(path)
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{label}\n".encode())
    return h.hexdigest()[:20]


def cached_split(split: Split, *, dataset: str, which: str, cache_dir: Path, workers: int,
                 say: Callable[[str], None] | None = None) -> Split:
    """`split` with its image files replaced by their decoded pixels from the cache in `cache_dir`,
    decoded and written there first if no entry has this split's key (`cache_key`). An entry is
    written under a temporary name and renamed into place, so a reader never sees half of one and
    two trials building it at once both succeed.

    Raises:
        DataError: an image cannot be decoded (named), or the cache folder cannot be written.
    """
    if not isinstance(split.images, ImageFiles):
        return split
    images = split.images
    path = cache_dir / f"{dataset}-{which}-{images.size}px-{cache_key(dataset, which, images, split.labels)}.npy"
    if not path.is_file():
        _build_cache_entry(split, path, workers, say or _stderr)
    return Split(ImageCache(path), split.labels)


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


def _build_cache_entry(split: Split, path: Path, workers: int, say: Callable[[str], None]) -> None:
    n, size = len(split), split.images.size
    say(f"decoding {n:,} images ({path.name.split('-')[1]}) once into the image cache {path.parent} "
        f"({n * 3 * size * size / 2**20:,.0f} MiB)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npy")
        os.close(fd)
    except OSError as exc:
        raise DataError(f"cannot write the image cache in {path.parent} ({exc.strerror or exc}); set data.cache_dir "
                        f"(or ${CACHE_ENV}) to a folder you can write, or data.cache: false") from None
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 3, size, size))
        done, shown = 0, 0.0
        started = time.perf_counter()
        for chunk in decoded_in_order(split, workers):
            x = chunk.numpy()
            out[done : done + len(x)] = x
            done += len(x)
            if done == n or time.perf_counter() - shown > 10:
                shown = time.perf_counter()
                say(f"  {done:,}/{n:,} images decoded ({shown - started:.0f} s)")
        out.flush()
        del out
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- the registry ---------------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[[DataSpec, int], Dataset]] = {}
_FROM_FILES: set[str] = set()
"""The registered datasets read from `data.root` on disk (the others are built in)."""


def register_dataset(fn=None, *, files: bool = False):
    """Register `fn(spec, seed) -> Dataset` under its name, as `@register_dataset`, or as
    `@register_dataset(files=True)` for a dataset read from `data.root` on disk."""

    def register(fn):
        _REGISTRY[fn.__name__] = fn
        _FROM_FILES.discard(fn.__name__)  # registered again: the flag given now counts
        if files:
            _FROM_FILES.add(fn.__name__)
        return fn

    return register if fn is None else register(fn)


def list_datasets() -> list[str]:
    return sorted(_REGISTRY)


def file_datasets() -> list[str]:
    """The registered datasets read from `data.root` on disk, in the order registered."""
    return [name for name in _REGISTRY if name in _FROM_FILES]


def check_dataset(name: str) -> None:
    """Raise ValueError naming the registered datasets (and the closest to `name`) if `name` is not one."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown dataset {name!r};{hint} available: {', '.join(map(repr, list_datasets()))}")


def load_data(spec: DataSpec, seed: int = 0) -> Dataset:
    """Load dataset `spec.dataset` with the split fixed by `seed`.

    Raises:
        DataError: a file dataset is missing, incomplete or unreadable at `spec.root`.
    """
    try:
        check_dataset(spec.dataset)
    except ValueError as exc:  # a spec built without validation
        raise AdsearchError(str(exc)) from None
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
    return TensorData("digits", train_x, y[idx_train], test_x, y[idx_test], num_classes=10).limited(spec.limit)


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
    data = TensorData("synthetic", x[n_test:], y[n_test:], x[:n_test], y[:n_test], num_classes=k)
    return data.limited(spec.limit)


# --- file datasets: layouts, and what to tell a user whose data is not there ------------------


@dataclass(frozen=True)
class _Source:
    """How a file dataset is laid out and obtained, for loading and for error messages."""

    folder: str  # its standard folder name under data.root
    layout: str
    get: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"

SOURCES: dict[str, _Source] = {
    "cifar10": _Source(
        "cifar-10-batches-py",
        "cifar-10-batches-py/ holding data_batch_1 ... data_batch_5, test_batch and batches.meta "
        "(CIFAR-10's python version)",
        f"set data.download: true (needs internet), or download {CIFAR10_URL} and extract it in data.root",
        (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": _Source(
        "cifar-100-python",
        "cifar-100-python/ holding train, test and meta (CIFAR-100's python version)",
        f"set data.download: true (needs internet), or download {CIFAR100_URL} and extract it in data.root",
        (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tinyimagenet": _Source(
        "tiny-imagenet-200",
        "tiny-imagenet-200/ holding wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and "
        "val/val_annotations.txt",
        f"download {TINYIMAGENET_URL} (about 240 MB) and unzip it in data.root",
        (0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)),
    "imagefolder": _Source(
        "",
        "train/<class>/<image files> and val/<class>/<image files> (classes from train/; "
        "every val class must be one of them)",
        "point data.root at the folder holding train/ and val/",
        (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet's
}


def _dataset_dir(root: Path, folder: str, files: Iterable[str]) -> Path:
    """The dataset's folder: `root/folder`, or `root` itself when it already is that folder."""
    if (root / folder).is_dir() or not root.is_dir():
        return root / folder
    if root.name == folder or any((root / f).exists() for f in files):
        return root
    return root / folder


def _incomplete(dataset: str, root: str | None, where: Path, problems: list[str]) -> DataError:
    source = SOURCES[dataset]
    shown = problems[:6] + ([f"... and {len(problems) - 6} more"] if len(problems) > 6 else [])
    return DataError(
        f"dataset {dataset} is missing or incomplete at {where}:\n"
        + "".join(f"  - {p}\n" for p in shown)
        + f"  expected: {source.layout}\n"
        f"  data.root is {root} (set it in the spec, with --set data.root=PATH, or with $ADSEARCH_DATA)\n"
        f"  to get it: {source.get}"
    )


def _file_data(spec: DataSpec, train: Split, test: Split, num_classes: int, native_size: int) -> FileData:
    source = SOURCES[spec.dataset]
    train, test = train.limited(spec.limit), test.limited(spec.limit)
    if spec.cache:  # image files: decoded once, then read from the cache by every trial and study
        workers = default_workers() if spec.workers is None else spec.workers
        train, test = (cached_split(split, dataset=spec.dataset, which=which, cache_dir=Path(spec.cache_dir),
                                    workers=workers) for which, split in (("train", train), ("test", test)))
    return FileData(spec.dataset, train, test, num_classes=num_classes,
                    mean=source.mean, std=source.std, size=spec.image_size or native_size,
                    augment=spec.augment, workers=spec.workers, on_device=spec.on_device)


# --- CIFAR-10 / CIFAR-100: the python pickle batches ---------------------------------------------


@dataclass(frozen=True)
class _Cifar:
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    label_key: str
    num_classes: int


CIFARS = {
    "cifar10": _Cifar(tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "batches.meta", "labels", 10),
    "cifar100": _Cifar(("train",), ("test",), "meta", "fine_labels", 100),
}


@register_dataset(files=True)
def cifar10(spec: DataSpec, seed: int) -> Dataset:
    """CIFAR-10: 50,000 training and 10,000 test colour images of 32 x 32, 10 classes."""
    return _cifar(spec)


@register_dataset(files=True)
def cifar100(spec: DataSpec, seed: int) -> Dataset:
    """CIFAR-100: 50,000 training and 10,000 test colour images of 32 x 32, 100 (fine) classes."""
    return _cifar(spec)


def _cifar(spec: DataSpec) -> FileData:
    cifar, folder = CIFARS[spec.dataset], SOURCES[spec.dataset].folder
    files = (*cifar.train, *cifar.test, cifar.meta)
    root = Path(spec.root)
    directory = _dataset_dir(root, folder, files)
    missing = [f for f in files if not (directory / f).is_file()]
    if missing and spec.download:
        _download_cifar(spec.dataset, root.parent if root.name == folder else root)
        directory = _dataset_dir(root, folder, files)
        missing = [f for f in files if not (directory / f).is_file()]
    if missing:
        problems = [f"no file {f}" for f in missing] if directory.is_dir() else ["the folder does not exist"]
        raise _incomplete(spec.dataset, spec.root, directory, problems)
    train = _read_cifar(directory, cifar.train, cifar)
    test = _read_cifar(directory, cifar.test, cifar)
    return _file_data(spec, train, test, cifar.num_classes, native_size=32)


def _read_cifar(directory: Path, names: tuple[str, ...], cifar: _Cifar) -> Split:
    pixels, labels = [], []
    for name in names:
        x, y = _read_cifar_batch(directory / name, cifar)
        pixels.append(x)
        labels.append(y)
    return Split(ImageArray(torch.cat(pixels)), torch.cat(labels))


def _read_cifar_batch(path: Path, cifar: _Cifar) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickle batch: {b'data': uint8 N x 3072 (the red, green, blue 32 x 32 planes), b'labels'
    (CIFAR-10) or b'fine_labels' (CIFAR-100): N ints}. The files are pickles, as CIFAR ships them:
    read them only from a source you trust."""
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="bytes")
        entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
        data = np.asarray(entry["data"])
        labels = np.asarray(entry[cifar.label_key], dtype=np.int64)
    except Exception as exc:  # noqa: BLE001 - any failure here means: this file is not a CIFAR batch
        reason = f"no key {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
        raise DataError(f"cannot read CIFAR batch {path}: {reason}; download it again") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (data.shape[0],):
        shape = " x ".join(map(str, data.shape)) or "a scalar"
        raise DataError(f"{path} is not a CIFAR batch: expected data uint8 N x 3072 and N {cifar.label_key}, got "
                        f"data {data.dtype} {shape} and {labels.size} {cifar.label_key}; download it again")
    bad = np.flatnonzero((labels < 0) | (labels >= cifar.num_classes))
    if bad.size:
        raise DataError(f"{path}: {cifar.label_key} must be in 0..{cifar.num_classes - 1} ({cifar.num_classes} "
                        f"classes), got {labels[bad[0]]} in row {bad[0]} ({bad.size} of {labels.size} rows out "
                        "of range); the file is damaged or from another dataset: download it again")
    return torch.from_numpy(data).view(-1, 3, 32, 32), torch.from_numpy(labels)


def _download_cifar(dataset: str, into: Path) -> None:
    """torchvision's downloader, only to fetch and extract the archive into `into`."""
    import torchvision.datasets

    cls = torchvision.datasets.CIFAR10 if dataset == "cifar10" else torchvision.datasets.CIFAR100
    try:
        into.mkdir(parents=True, exist_ok=True)
        cls(root=str(into), train=True, download=True)
    except Exception as exc:  # noqa: BLE001 - network, disk or archive: the user's fix is the same
        url = CIFAR10_URL if dataset == "cifar10" else CIFAR100_URL
        raise DataError(f"downloading {dataset} into {into} failed ({exc}); download {url} by hand and "
                        f"extract it there, then run again") from None


# --- TinyImageNet: the tiny-imagenet-200 layout -------------------------------------------------


@register_dataset(files=True)
def tinyimagenet(spec: DataSpec, seed: int) -> Dataset:
    """TinyImageNet: 200 classes of 64 x 64 colour images, 500 per class to train, 50 held out
    (the `val` split; its labels come from val/val_annotations.txt). The class index is the order of
    wnids.txt, for both splits."""
    folder = SOURCES["tinyimagenet"].folder
    directory = _dataset_dir(Path(spec.root), folder, ["wnids.txt", "train", "val"])
    fail = lambda problems: _incomplete("tinyimagenet", spec.root, directory, problems)  # noqa: E731
    if not (directory / "wnids.txt").is_file():
        raise fail(["no file wnids.txt" if directory.is_dir() else "the folder does not exist"])
    wnids = (directory / "wnids.txt").read_text().split()
    index = {w: i for i, w in enumerate(wnids)}
    if not wnids:
        raise fail(["wnids.txt lists no class ids (wnids); expected one a line"])
    if len(index) != len(wnids):
        repeated = sorted({w for w in wnids if wnids.count(w) > 1})
        raise fail([f"wnids.txt lists {_names(repeated)} more than once; each class id (wnid) must be listed "
                    f"once ({len(wnids)} ids, {len(index)} distinct): remove the repeats"])
    missing = [f"no folder {d}/" for d in ("train", "val") if not (directory / d).is_dir()]
    if missing:
        raise fail(missing)
    train, problems = _tiny_train(directory / "train", wnids)
    test, val_problems = _tiny_val(directory / "val", index)
    if problems or val_problems:
        raise fail(problems + val_problems)
    return _file_data(spec, train, test, len(wnids), native_size=64)


def _tiny_train(train_dir: Path, wnids: list[str]) -> tuple[Split, list[str]]:
    paths, labels, problems = [], [], []
    for i, wnid in enumerate(wnids):
        images = train_dir / wnid / "images"
        names = _image_names(images)
        if not names:
            problems.append(f"no {'images in' if images.is_dir() else 'folder'} train/{wnid}/images")
        paths += [str(images / n) for n in names]
        labels += [i] * len(names)
    return Split(ImageFiles(paths, 64), torch.tensor(labels, dtype=torch.long)), problems


def _tiny_val(val_dir: Path, index: dict[str, int]) -> tuple[Split, list[str]]:
    """val/images/*.JPEG, each labelled by its line in val/val_annotations.txt: `name<TAB>wnid<TAB>box`."""
    annotations = val_dir / "val_annotations.txt"
    if not annotations.is_file():
        return Split(ImageFiles([], 64), torch.zeros(0, dtype=torch.long)), ["no file val/val_annotations.txt"]
    present = set(_image_names(val_dir / "images"))
    paths, labels, problems = [], [], []
    for number, line in enumerate(annotations.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2 or fields[1] not in index:
            what = f"class {fields[1]!r} is not in wnids.txt" if len(fields) >= 2 else "expected: image name, wnid"
            problems.append(f"val/val_annotations.txt line {number}: {what}")
        elif fields[0] not in present:
            problems.append(f"no file val/images/{fields[0]} (listed in val/val_annotations.txt line {number})")
        else:
            paths.append(str(val_dir / "images" / fields[0]))
            labels.append(index[fields[1]])
    if not paths and not problems:
        problems.append("val/val_annotations.txt lists no images")
    return Split(ImageFiles(paths, 64), torch.tensor(labels, dtype=torch.long)), problems


def _image_names(folder: Path) -> list[str]:
    """The image files directly in `folder`, sorted by name ([] if it is not a folder)."""
    try:
        return sorted(e.name for e in os.scandir(folder) if e.name.lower().endswith(IMAGE_EXTENSIONS) and e.is_file())
    except (FileNotFoundError, NotADirectoryError):
        return []


# --- imagefolder: train/<class>/..., val/<class>/... -------------------------------------------


@register_dataset(files=True)
def imagefolder(spec: DataSpec, seed: int) -> Dataset:
    """Any tree of class folders: train/<class>/ and val/<class>/ (images at any depth below). The
    class index is the sorted train folder names; val folders map through it. Images are resized
    to data.image_size, by default the size of the first training image if it is square, <= 256 px."""
    root = Path(spec.root)
    fail = lambda problems: _incomplete("imagefolder", spec.root, root, problems)  # noqa: E731
    missing = [f"no folder {d}/" for d in ("train", "val") if not (root / d).is_dir()]
    if missing:
        raise fail(missing)
    classes = sorted(d.name for d in os.scandir(root / "train") if d.is_dir())
    index = {c: i for i, c in enumerate(classes)}
    problems = [] if classes else ["no class folders in train/: make one folder per class, holding its images"]
    train_paths, train_labels = _class_images(root / "train", classes, index, problems)
    val_classes = sorted(d.name for d in os.scandir(root / "val") if d.is_dir())
    strangers = [c for c in val_classes if c not in index]
    problems += [f"val/{c} is not a class of train/ ({_names(classes) or 'it has none'})" for c in strangers]
    val_paths, val_labels = _class_images(root / "val", [c for c in val_classes if c in index], index, problems)
    if not val_paths and not strangers:
        problems.append("no images in val/")
    if problems:
        raise fail(problems)
    size = spec.image_size or _native_size(train_paths[0], root / "train")
    train = Split(ImageFiles(train_paths, size), torch.tensor(train_labels, dtype=torch.long))
    test = Split(ImageFiles(val_paths, size), torch.tensor(val_labels, dtype=torch.long))
    return _file_data(spec, train, test, len(classes), native_size=size)


def _class_images(split_dir: Path, classes: list[str], index: dict[str, int], problems: list[str]):
    paths, labels = [], []
    for name in classes:
        found = sorted(
            os.path.join(d, f) for d, _, files in os.walk(split_dir / name, followlinks=True)
            for f in files if f.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not found and split_dir.name == "train":  # an empty val/<class> is the same as none: allowed
            problems.append(f"no images in train/{name} (looked for {', '.join(IMAGE_EXTENSIONS)}): a class "
                            "cannot be learnt without training images; add images to it or remove the folder")
        paths += found
        labels += [index[name]] * len(found)
    return paths, labels


def _native_size(path: str, where: Path) -> int:
    """The side of the (square) first training image, read from its header."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {exc}; replace or remove the file") from None
    if width != height or not 8 <= width <= 256:
        raise DataError(f"images in {where} are {width} x {height} px (first: {path}); "
                        "set data.image_size (8 to 256) to resize them all to that square size")
    return width


def _names(items: list[str], most: int = 8) -> str:
    return ", ".join(items[:most]) + (f", ... ({len(items)} in all)" if len(items) > most else "")
