"""Small copies of the real dataset formats, written to disk by the tests that read them.

Every class has its own solid colour (`colour(c)`), so a sample's pixels tell which class it was
written as: a label mapped through the wrong index shows up as a pixel/label mismatch.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

TINY_WNIDS = ["n09999999", "n01443537", "n04067472"]
"""wnids.txt order, deliberately not sorted: index 0 is the last wnid in sorted order."""
TINY_VAL = [("val_0.JPEG", "n04067472"), ("val_1.JPEG", "n09999999"), ("val_2.JPEG", "n01443537"),
            ("val_3.JPEG", "n04067472"), ("val_4.JPEG", "n01443537"), ("val_5.JPEG", "n09999999")]
"""val/val_annotations.txt, in its file order: image name and wnid (two of each class)."""
TINY_TRAIN_PER_CLASS = 4


def colour(c: int) -> tuple[int, int, int]:
    """The RGB colour every image of class `c` is painted with (distinct for c < 12, JPEG-safe)."""
    return (20 + 18 * c) % 256, (230 - 16 * c) % 256, (60 + 90 * c) % 256


def solid(c: int, size: int) -> np.ndarray:
    """A size x size x 3 uint8 image of class `c`'s colour."""
    return np.broadcast_to(np.array(colour(c), dtype=np.uint8), (size, size, 3)).copy()


# --- CIFAR: python pickle batches -----------------------------------------------------------------


def cifar_rows(labels: list[int]) -> np.ndarray:
    """N x 3072 uint8 rows as CIFAR stores them: the red, then green, then blue 32 x 32 plane."""
    return np.stack([solid(c, 32).transpose(2, 0, 1).reshape(-1) for c in labels])


def _dump(path: Path, entry: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(entry, f)


def edit_cifar_batch(path: Path, **entries) -> None:
    """Rewrite the pickle batch at `path` with some of its entries replaced (keys as str: data=...)."""
    with open(path, "rb") as f:
        entry = pickle.load(f)
    _dump(path, {**entry, **{k.encode(): v for k, v in entries.items()}})


def write_cifar10(root: Path, per_batch: int = 10, n_test: int = 20) -> Path:
    """root/cifar-10-batches-py with data_batch_1..5 (`per_batch` each), test_batch, batches.meta.
    Sample j of batch i has label (j + i) % 10; test sample j has label j % 10."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        labels = [(j + i) % 10 for j in range(per_batch)]
        _dump(folder / f"data_batch_{i}", {b"batch_label": f"training batch {i} of 5".encode(),
                                           b"labels": labels, b"data": cifar_rows(labels),
                                           b"filenames": [f"img_{i}_{j}.png".encode() for j in range(per_batch)]})
    labels = [j % 10 for j in range(n_test)]
    _dump(folder / "test_batch", {b"batch_label": b"testing batch 1 of 1", b"labels": labels,
                                  b"data": cifar_rows(labels), b"filenames": [b"t.png"] * n_test})
    _dump(folder / "batches.meta", {b"label_names": [f"class{c}".encode() for c in range(10)],
                                    b"num_cases_per_batch": per_batch, b"num_vis": 3072})
    return folder


def write_cifar100(root: Path, n_train: int = 30, n_test: int = 12) -> Path:
    """root/cifar-100-python with train, test, meta; fine label of sample j: j % 12 (coarse: j % 3)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        fine = [j % 12 for j in range(n)]
        _dump(folder / name, {b"filenames": [b"x.png"] * n, b"batch_label": name.encode(),
                              b"fine_labels": fine, b"coarse_labels": [j % 3 for j in range(n)],
                              b"data": cifar_rows(fine)})
    _dump(folder / "meta", {b"fine_label_names": [f"f{c}".encode() for c in range(100)],
                            b"coarse_label_names": [f"c{c}".encode() for c in range(20)]})
    return folder


# --- TinyImageNet: the tiny-imagenet-200 tree -----------------------------------------------------


def _save(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=95)


def write_tinyimagenet(root: Path) -> Path:
    """root/tiny-imagenet-200: wnids.txt (TINY_WNIDS order), 4 training JPEGs per class, 6 val
    JPEGs labelled in val/val_annotations.txt (TINY_VAL), all 64 x 64 in the class colour."""
    folder = root / "tiny-imagenet-200"
    folder.mkdir(parents=True)
    (folder / "wnids.txt").write_text("".join(f"{w}\n" for w in TINY_WNIDS))
    for c, wnid in enumerate(TINY_WNIDS):
        boxes = []
        for k in range(TINY_TRAIN_PER_CLASS):
            _save(solid(c, 64), folder / "train" / wnid / "images" / f"{wnid}_{k}.JPEG")
            boxes.append(f"{wnid}_{k}.JPEG\t0\t0\t63\t63\n")
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(boxes))
    lines = []
    for name, wnid in TINY_VAL:
        _save(solid(TINY_WNIDS.index(wnid), 64), folder / "val" / "images" / name)
        lines.append(f"{name}\t{wnid}\t0\t0\t63\t63\n")
    (folder / "val" / "val_annotations.txt").write_text("".join(lines))
    (folder / "test" / "images").mkdir(parents=True)  # unlabelled in the real set: not read
    return folder


# --- an image folder tree -------------------------------------------------------------------------

FOLDER_CLASSES = ["cat", "dog", "eel"]  # sorted: cat 0, dog 1, eel 2


def write_imagefolder(root: Path, size: int = 16) -> Path:
    """root/train/{cat,dog,eel}/ with 3 PNGs each (one in a subfolder), root/val/{dog,cat}/ with 2."""
    for c, name in enumerate(FOLDER_CLASSES):
        for k in range(3):
            sub = "nested/" if k == 2 else ""
            _save(solid(c, size), root / "train" / name / f"{sub}{name}{k}.png")
    for name in ("dog", "cat"):
        for k in range(2):
            _save(solid(FOLDER_CLASSES.index(name), size), root / "val" / name / f"v{k}.png")
    return root


# --- the MNIST family: IDX files ----------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """`array` (uint8) as an IDX file: two zero bytes, 0x08, its dimensions' count, each dimension
    as a big-endian 32-bit number, then its bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def mnist_images(labels: list[int]) -> np.ndarray:
    """N x 28 x 28 uint8 images, each of its class's grey (`colour(c)[0]`) with one white pixel at
    row 10, column 3 (an image mirrored left-right has it at column 24)."""
    images = np.stack([np.full((28, 28), colour(c)[0], dtype=np.uint8) for c in labels])
    images[:, 10, 3] = 255
    return images


def write_idx_dataset(folder: Path, *, n_train: int = 30, n_test: int = 20, gz: bool = True) -> tuple[list, list]:
    """The four files of an MNIST-family dataset in `folder`, gzipped or not; labels cycle 0..9.
    Returns the train and test labels."""
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    splits = {"train": [i % 10 for i in range(n_train)], "t10k": [(3 * i) % 10 for i in range(n_test)]}
    for prefix, labels in splits.items():
        for kind, array in (("images-idx3", mnist_images(labels)), ("labels-idx1", np.array(labels, dtype=np.uint8))):
            name = f"{prefix}-{kind}-ubyte"
            data = idx_bytes(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return splits["train"], splits["t10k"]
