"""The decoded-image cache: image files decoded once, then read as uint8 pixels by every trial.

An entry is one `.npy` file in `data.cache_dir` (shared by every trial and study), named and keyed
by the dataset, the split, the size and every file's path, size and modification time
(`cache_key`); `cached_split` builds a missing entry and reads the split from it (`splits.ImageCache`).
An image that cannot be decoded is an error naming the file, when the entry is built.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from adsearch.errors import DataError, DiskError
from adsearch.data.images import decoded_in_order
from adsearch.data.splits import ImageCache, ImageFiles, Split

CACHE_ENV = "ADSEARCH_CACHE"
"""Environment variable holding the default `data.cache_dir` (else ~/.cache/adsearch)."""


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
        _reserve(Path(tmp), path)
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


def _reserve(tmp: Path, path: Path) -> None:
    """Claim the blocks of the entry being written at `tmp` now: a full disk is then one error here,
    not a SIGBUS as the memory-mapped copy reaches the missing space.

    Raises:
        DiskError: there is no room for it (or the folder cannot be written).
    """
    if not hasattr(os, "posix_fallocate"):  # macOS: the copy finds out
        return
    need = tmp.stat().st_size
    try:
        with open(tmp, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, need)
    except OSError as exc:
        free = shutil.disk_usage(path.parent).free
        raise DiskError(f"cannot write the image cache entry {path} ({need / 1e6:,.1f} MB): {exc.strerror or exc} "
                        f"({free / 1e6:,.1f} MB free in {path.parent}); make room there, set data.cache_dir (or "
                        f"${CACHE_ENV}) to a folder with room, or data.cache: false") from None


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
