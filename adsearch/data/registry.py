"""Dataset registry: `load_data(spec.data, ...)` is the one entry.

A dataset is a function registered by name that returns a `Dataset` (`adsearch.data.batches`): train
and test batches (float, normalised, on the training device), the number of classes and the input
shape. Two kinds:

- in memory (`TensorData`, `adsearch.data.batches`: `digits`, `synthetic`): tensors batched straight
  on the training device, no DataLoader.
- on disk (`FileData`, `adsearch.data.images`: `cifar10`, `cifar100`, `tinyimagenet`, `imagefolder`,
  `mnist`, `fashion_mnist`, `kmnist`): uint8 images, CIFAR's from its pickle batches and the MNIST
  family's from its IDX files held in memory, image files decoded once with PIL into the
  decoded-image cache (`adsearch.data.image_cache`, in `data.cache_dir`), then held whole on the
  device where they fit (`data.on_device`) or read by DataLoader workers.

The readers live in `adsearch.data.arrays` (in memory), `adsearch.data.files` and
`adsearch.data.idx` (on disk), each listing its datasets in `READERS`; this module registers them
when it is imported, so every lookup finds them, and a dataset of one's own is one function
decorated with `register_dataset`.
"""

from __future__ import annotations

import difflib
from typing import Callable

from adsearch.data.arrays import READERS as _IN_MEMORY
from adsearch.data.batches import Dataset
from adsearch.data.files import READERS as _ON_DISK
from adsearch.data.idx import READERS as _IDX
from adsearch.data.settings import DataSettings
from adsearch.errors import AdsearchError


# --- the registry ---------------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[[DataSettings, int], Dataset]] = {}
_FROM_FILES: set[str] = set()
"""The registered datasets read from `data.root` on disk (the others are built in)."""
_ROOT_OPTIONAL: set[str] = set()
"""The file datasets whose reader looks in default places when the spec sets no `data.root`."""
_IMAGES: dict[str, tuple[int, int | None]] = {}
"""(channels, native side in pixels) of the images of the datasets that declare them; a side of
None: only the files tell."""


def register_dataset(fn=None, *, files: bool = False, channels: int | None = None, size: int | None = None,
                     root_optional: bool = False):
    """Register `fn(spec, seed) -> Dataset` under its name, as `@register_dataset`, or as
    `@register_dataset(files=True)` for a dataset read from `data.root` on disk (`root_optional`:
    with no `data.root` set, it is given None and looks in places of its own). `channels` and
    `size` declare its images (size: their native side, before `data.image_size`), so that a spec
    is checked against its network without loading it (`input_shape`)."""

    def register(fn):
        _REGISTRY[fn.__name__] = fn
        _FROM_FILES.discard(fn.__name__)  # registered again: the flags given now count
        _ROOT_OPTIONAL.discard(fn.__name__)
        _IMAGES.pop(fn.__name__, None)
        if files:
            _FROM_FILES.add(fn.__name__)
        if files and root_optional:
            _ROOT_OPTIONAL.add(fn.__name__)
        if channels is not None:
            _IMAGES[fn.__name__] = (channels, size)
        return fn

    return register if fn is None else register(fn)


def list_datasets() -> list[str]:
    return sorted(_REGISTRY)


def file_datasets() -> list[str]:
    """The registered datasets read from `data.root` on disk, in the order registered."""
    return [name for name in _REGISTRY if name in _FROM_FILES]


def root_optional(name: str) -> bool:
    """Whether file dataset `name` looks in places of its own when the spec sets no `data.root`."""
    return name in _ROOT_OPTIONAL


def check_dataset(name: str) -> None:
    """Raise ValueError naming the registered datasets (and the closest to `name`) if `name` is not one."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown dataset {name!r};{hint} available: {', '.join(map(repr, list_datasets()))}")


def _declared_size(dataset: str) -> int | None:
    """The side in pixels of `dataset`'s images before `data.image_size` resizes them (None: not
    declared, or known only from its files)."""
    return _IMAGES.get(dataset, (None, None))[1]


def input_shape(spec: DataSettings) -> tuple[int, int, int] | None:
    """(channels, height, width) of the samples `load_data(spec)` gives, known without loading them;
    None where only the files tell (imagefolder without `data.image_size`) or the dataset did not
    declare its images."""
    if spec.dataset not in _IMAGES:
        return None
    channels = _IMAGES[spec.dataset][0]
    size = spec.image_size or _declared_size(spec.dataset)
    return None if size is None else (channels, size, size)


def load_data(spec: DataSettings, seed: int = 0) -> Dataset:
    """Load dataset `spec.dataset` with the split fixed by `seed`.

    Raises:
        DataError: a file dataset is missing, incomplete or unreadable at `spec.root`.
    """
    try:
        check_dataset(spec.dataset)
    except ValueError as exc:  # a spec built without validation
        raise AdsearchError(str(exc)) from None
    return _REGISTRY[spec.dataset](spec, seed)


# --- the built-in datasets: registered on import, in this order (`file_datasets` keeps it) -------

for _reader, _declared in (*_IN_MEMORY, *_ON_DISK, *_IDX):
    register_dataset(_reader, **_declared)
