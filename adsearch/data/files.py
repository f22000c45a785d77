"""The datasets read from `data.root` on disk: CIFAR-10 and CIFAR-100 (their python pickle batches,
held in memory as uint8), TinyImageNet and any tree of class folders (`imagefolder`: image files,
decoded once into the decoded-image cache, `adsearch.data.image_cache`), each given as `FileData`
(`adsearch.data.images`).

Loading a file dataset checks it (files present, labels mapped to one class index), so a study
refuses a missing or partial dataset before it writes anything; an image that cannot be decoded is
an error naming the file, when the cache is built (or, with `data.cache: false`, when training
reaches it). Each error says what is expected and how to get it (`SOURCES`).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from adsearch.data.batches import Dataset
from adsearch.data.image_cache import cached_split
from adsearch.data.images import FileData, default_workers
from adsearch.data.splits import ImageArray, ImageFiles, Split
from adsearch.data.settings import DATA_ENV, DataSettings
from adsearch.errors import DataError

_CIFAR_SIZE = 32
"""The side in pixels of CIFAR's images (both), before `data.image_size`."""
_TINY_SIZE = 64
"""The side in pixels of TinyImageNet's images, before `data.image_size`."""


# --- file datasets: layouts, and what to tell a user whose data is not there ------------------

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")
"""What counts as an image file in a dataset's folders."""


@dataclass(frozen=True)
class Source:
    """How a file dataset is laid out and obtained, for loading and for error messages."""

    folder: str  # its standard folder name under data.root
    layout: str
    get: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"

SOURCES: dict[str, Source] = {
    "cifar10": Source(
        "cifar-10-batches-py",
        "cifar-10-batches-py/ holding data_batch_1 ... data_batch_5, test_batch and batches.meta "
        "(CIFAR-10's python version)",
        f"set data.download: true (needs internet), or download {CIFAR10_URL} and extract it in data.root",
        (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": Source(
        "cifar-100-python",
        "cifar-100-python/ holding train, test and meta (CIFAR-100's python version)",
        f"set data.download: true (needs internet), or download {CIFAR100_URL} and extract it in data.root",
        (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tinyimagenet": Source(
        "tiny-imagenet-200",
        "tiny-imagenet-200/ holding wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and "
        "val/val_annotations.txt",
        f"download {TINYIMAGENET_URL} (about 240 MB) and unzip it in data.root",
        (0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)),
    "imagefolder": Source(
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
        f"  data.root is {root} (set it in the spec, with --set data.root=PATH, or with ${DATA_ENV})\n"
        f"  to get it: {source.get}"
    )


def file_data(spec: DataSettings, train: Split, test: Split, num_classes: int, native_size: int, *,
              source: Source | None = None, flip: bool = True) -> FileData:
    """A file dataset's two splits as `FileData`, limited as `spec` says (and, for image files,
    read through the decoded-image cache); `source` gives its statistics (default `SOURCES`'),
    `flip` whether augmentation mirrors its images."""
    source = source or SOURCES[spec.dataset]
    train, test = train.limited(spec.train_limit), test.limited(spec.test_limit)
    if spec.cache:  # image files: decoded once, then read from the cache by every trial and study
        workers = default_workers() if spec.workers is None else spec.workers
        train, test = (cached_split(split, dataset=spec.dataset, which=which, cache_dir=Path(spec.cache_dir),
                                    workers=workers) for which, split in (("train", train), ("test", test)))
    return FileData(spec.dataset, train, test, num_classes=num_classes,
                    mean=source.mean, std=source.std, size=spec.image_size or native_size,
                    augment=spec.augment, flip=flip, workers=spec.workers, on_device=spec.on_device)


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


def cifar10(spec: DataSettings, seed: int) -> Dataset:
    """CIFAR-10: 50,000 training and 10,000 test colour images of 32 x 32, 10 classes."""
    return _cifar(spec)


def cifar100(spec: DataSettings, seed: int) -> Dataset:
    """CIFAR-100: 50,000 training and 10,000 test colour images of 32 x 32, 100 (fine) classes."""
    return _cifar(spec)


def _cifar(spec: DataSettings) -> FileData:
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
    return file_data(spec, train, test, cifar.num_classes, native_size=_CIFAR_SIZE)


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


def tinyimagenet(spec: DataSettings, seed: int) -> Dataset:
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
    return file_data(spec, train, test, len(wnids), native_size=_TINY_SIZE)


def _tiny_train(train_dir: Path, wnids: list[str]) -> tuple[Split, list[str]]:
    paths, labels, problems = [], [], []
    for i, wnid in enumerate(wnids):
        images = train_dir / wnid / "images"
        names = _image_names(images)
        if not names:
            problems.append(f"no {'images in' if images.is_dir() else 'folder'} train/{wnid}/images")
        paths += [str(images / n) for n in names]
        labels += [i] * len(names)
    return Split(ImageFiles(paths, _TINY_SIZE), torch.tensor(labels, dtype=torch.long)), problems


def _tiny_val(val_dir: Path, index: dict[str, int]) -> tuple[Split, list[str]]:
    """val/images/*.JPEG, each labelled by its line in val/val_annotations.txt: `name<TAB>wnid<TAB>box`."""
    annotations = val_dir / "val_annotations.txt"
    if not annotations.is_file():
        return Split(ImageFiles([], _TINY_SIZE), torch.zeros(0, dtype=torch.long)), ["no file val/val_annotations.txt"]
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
    return Split(ImageFiles(paths, _TINY_SIZE), torch.tensor(labels, dtype=torch.long)), problems


def _image_names(folder: Path) -> list[str]:
    """The image files directly in `folder`, sorted by name ([] if it is not a folder)."""
    try:
        return sorted(e.name for e in os.scandir(folder) if e.name.lower().endswith(IMAGE_EXTENSIONS) and e.is_file())
    except (FileNotFoundError, NotADirectoryError):
        return []


# --- imagefolder: train/<class>/..., val/<class>/... -------------------------------------------


def imagefolder(spec: DataSettings, seed: int) -> Dataset:
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
    return file_data(spec, train, test, len(classes), native_size=size)


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


READERS = (
    (cifar10, {"files": True, "channels": 3, "size": _CIFAR_SIZE}),
    (cifar100, {"files": True, "channels": 3, "size": _CIFAR_SIZE}),
    (tinyimagenet, {"files": True, "channels": 3, "size": _TINY_SIZE}),
    (imagefolder, {"files": True, "channels": 3}),  # a size only its files tell
)
"""This module's datasets, each with what it declares to `adsearch.data.registry.register_dataset`."""
