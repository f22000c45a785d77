"""The MNIST family, read from its IDX files: `mnist`, `fashion_mnist` and `kmnist` (28 x 28 grey
images, 60,000 to train and 10,000 to test, 10 classes), held in memory as uint8 (`FileData`).

Each is the four files torchvision's MNIST classes read (`FILES`: `train-images-idx3-ubyte`,
`train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, gzipped or not),
looked for in the dataset's folders below a folder: torchvision's layout
(`<folder>/FashionMNIST/raw/`) and a system package's (`<folder>/fashion-mnist/`). The folder is
`data.root` where the spec sets one (the files may also lie in it); else `$ADSEARCH_DATA`, ~/data
and the folders system packages put datasets in (`SYSTEM_FOLDERS`: Debian's `apt-get install dataset-fashion-mnist` puts
Fashion-MNIST in /usr/share/datasets/fashion-mnist/). A file that is not there is an error naming
every folder looked in and how to get the files; one that is not what its name says (its IDX magic
number, its dimensions, its labels) an error naming the file.

Augmentation crops (padding 4) and, for Fashion-MNIST's clothes only, mirrors: a mirrored
character is another character.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from adsearch.data.batches import Dataset
from adsearch.data.files import Source, file_data
from adsearch.data.splits import ImageArray, Split
from adsearch.data.settings import DATA_ENV, DataSettings
from adsearch.errors import DataError

SIZE = 28
"""The side in pixels of the MNIST family's images, before `data.image_size`."""
CLASSES = 10

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
"""Each split's image and label files, as their makers name them (each may end in .gz)."""

SYSTEM_FOLDERS = ("/usr/share/datasets", "/usr/local/share/datasets")
"""Where system packages put datasets (Debian's dataset-* packages: the first), looked in when the
spec sets no data.root."""


@dataclass(frozen=True)
class _Family:
    """One dataset of the family: its folder names, statistics, whether it may be mirrored, and
    where to get it."""

    torchvision: str  # torchvision's folder: <root>/<this>/raw/
    package: str  # a system package's folder: <root>/<this>/
    mean: float
    std: float
    flip: bool
    get: str


FAMILY = {
    "mnist": _Family("MNIST", "mnist", 0.1307, 0.3081, False,
                     "download the four files from https://yann.lecun.com/exdb/mnist/ (or the mirror "
                     "https://ossci-datasets.s3.amazonaws.com/mnist/)"),
    "fashion_mnist": _Family("FashionMNIST", "fashion-mnist", 0.2860, 0.3530, True,
                             "on Debian or Ubuntu: apt-get install dataset-fashion-mnist (make data); elsewhere "
                             "download the four files from https://github.com/zalandoresearch/fashion-mnist"),
    "kmnist": _Family("KMNIST", "kmnist", 0.1918, 0.3483, False,
                      "download the four files of Kuzushiji-MNIST from https://github.com/rois-codh/kmnist"),
}


def mnist(spec: DataSettings, seed: int) -> Dataset:
    """MNIST: handwritten digits, 60,000 training and 10,000 test images of 28 x 28, 10 classes."""
    return _idx_dataset(spec)


def fashion_mnist(spec: DataSettings, seed: int) -> Dataset:
    """Fashion-MNIST: Zalando's clothes, 60,000 training and 10,000 test images of 28 x 28, 10 classes."""
    return _idx_dataset(spec)


def kmnist(spec: DataSettings, seed: int) -> Dataset:
    """Kuzushiji-MNIST: cursive Japanese characters, 60,000 training and 10,000 test images of 28 x 28, 10 classes."""
    return _idx_dataset(spec)


def _idx_dataset(spec: DataSettings) -> Dataset:
    family = FAMILY[spec.dataset]
    folder = find_files(spec.dataset, spec.root)
    train, test = (_read_split(folder, *FILES[which]) for which in ("train", "test"))
    source = Source(family.package, "", family.get, (family.mean,), (family.std,))
    return file_data(spec, train, test, CLASSES, SIZE, source=source, flip=family.flip)


def places(dataset: str, root: str | None) -> list[Path]:
    """The folders looked in for `dataset`'s files, in order: `root` and the dataset's folders below
    it; with no `root`, the dataset's folders below each default folder (files loose there could be
    any of the family)."""
    family = FAMILY[dataset]
    below = lambda base: [base / family.torchvision / "raw", base / family.package]  # noqa: E731
    if root is not None:
        return [Path(root), *below(Path(root))]
    bases = [p for p in (os.environ.get(DATA_ENV), os.path.expanduser("~/data"), *SYSTEM_FOLDERS) if p]
    return [folder for base in bases for folder in below(Path(base))]


def _file(folder: Path, name: str) -> Path | None:
    """`name` in `folder`, as it is or gzipped (None: neither)."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_files(dataset: str, root: str | None) -> Path:
    """The first folder of `places` holding all four files. Raises `DataError` naming every folder
    looked in (and what a folder holding some of them lacks) and how to get them."""
    looked = places(dataset, root)
    names = [name for pair in FILES.values() for name in pair]
    partial = []
    for folder in looked:
        found = [name for name in names if _file(folder, name) is not None]
        if len(found) == len(names):
            return folder
        if found:
            partial.append(f"  {folder} has {len(found)} of them, not {', '.join(n for n in names if n not in found)}")
    where = ("data.root" if root is not None else
             f"data.root is not set: ${DATA_ENV}, ~/data and the system datasets folders")
    raise DataError(
        f"dataset {dataset} not found: no folder holds all four of {', '.join(names)} (each may end in .gz).\n"
        f"  looked in ({where}):\n" + "".join(f"    {folder}\n" for folder in looked)
        + "".join(p + "\n" for p in partial)
        + f"  to get it: {FAMILY[dataset].get}; or point data.root (--set data.root=PATH, ${DATA_ENV}) at "
        "the folder holding the files")


def _read_split(folder: Path, images_name: str, labels_name: str) -> Split:
    images_path, labels_path = _file(folder, images_name), _file(folder, labels_name)
    images = read_idx(images_path, dims=3)
    labels = read_idx(labels_path, dims=1)
    if images.shape[1:] != (SIZE, SIZE):
        raise DataError(f"{images_path} holds images of {images.shape[1]} x {images.shape[2]} pixels, not "
                        f"{SIZE} x {SIZE}: it is not an MNIST-family file; get the dataset again")
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{labels_path} holds {labels.shape[0]} labels for the {images.shape[0]} images of "
                        f"{images_path}: the two files do not belong together; get the dataset again")
    bad = np.flatnonzero(labels >= CLASSES)
    if bad.size:
        raise DataError(f"{labels_path}: labels must be in 0..{CLASSES - 1}, got {labels[bad[0]]} at {bad[0]} "
                        f"({bad.size} of {labels.size} out of range); the file is damaged or from another "
                        "dataset: get the dataset again")
    pixels = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, 28, 28), uint8
    return Split(ImageArray(pixels), torch.from_numpy(labels.astype(np.int64)))


def read_idx(path: Path, dims: int) -> np.ndarray:
    """An IDX file of unsigned bytes with `dims` dimensions (gzipped if its name ends in .gz): its
    array. The format: two zero bytes, 0x08 (unsigned bytes), the number of dimensions, each
    dimension as a big-endian 32-bit count, then the bytes. Raises `DataError` naming the file if
    it is not that."""
    try:
        with (gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read {path}: {exc or type(exc).__name__}; get the dataset again") from None
    magic = 0x0800 + dims
    if len(raw) < 4 + 4 * dims or int.from_bytes(raw[:4], "big") != magic:
        got = raw[:4].hex() if len(raw) >= 4 else f"{len(raw)} bytes in all"
        raise DataError(f"{path} is not an IDX file of {'images' if dims == 3 else 'labels'}: its magic number is "
                        f"0x{got}, expected 0x{magic:08x} (unsigned bytes in {dims} dimension(s)); get the "
                        "dataset again")
    shape = struct.unpack(f">{dims}I", raw[4 : 4 + 4 * dims])
    expected = 4 + 4 * dims + math.prod(shape)
    if len(raw) != expected:
        raise DataError(f"{path} holds {len(raw)} bytes, but its header ({' x '.join(map(str, shape))}) says "
                        f"{expected}: it is truncated or damaged; get the dataset again")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


READERS = tuple((reader, {"files": True, "channels": 1, "size": SIZE, "root_optional": True})
                for reader in (mnist, fashion_mnist, kmnist))
"""This module's datasets, each with what it declares to `adsearch.data.registry.register_dataset`."""
