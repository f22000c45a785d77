"""A file dataset's split (`Split`): its labels and where its uint8 images come from: pixels read
whole into memory (CIFAR's, the MNIST family's: `ImageArray`), image files decoded with PIL as they
are read (`ImageFiles`), or the decoded-image cache mapped into memory (`ImageCache`, built by
`adsearch.data.image_cache`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from adsearch.data.batches import balanced_subset
from adsearch.errors import DataError


class ImageArray:
    """Images held in memory as one uint8 tensor (N, C, H, W): CIFAR's, the MNIST family's."""

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

    def all(self) -> torch.Tensor:
        return self.pixels


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
