"""The MNIST family (adsearch/data/idx.py): IDX files, gzipped and raw, found in data.root, in
torchvision's and a system package's layouts and in the default folders; missing and damaged
files; Fashion-MNIST's augmentation mirrors, the characters' does not; the per-split limit; the
installed Fashion-MNIST (Debian's dataset-fashion-mnist) read whole."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_datasets import colour, idx_bytes, mnist_images, write_idx_dataset

import adsearch.data.idx as idx
from adsearch.data.registry import input_shape, load_data
from adsearch.errors import DataError
from adsearch.spec.loading import SpecError, parse_spec
from adsearch.spec.sections import DataSpec

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def load(dataset: str, root=None, **options):
    return load_data(DataSpec(dataset=dataset, root=None if root is None else str(root), **options))


@pytest.fixture
def no_default_folders(tmp_path, monkeypatch):
    """The default folders ($ADSEARCH_DATA, ~/data, the system's) as empty folders under tmp_path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ADSEARCH_DATA", raising=False)
    monkeypatch.setattr(idx, "SYSTEM_FOLDERS", (str(tmp_path / "usr-share-datasets"),))
    return tmp_path


@pytest.mark.parametrize("layout, gz", [("", True), ("", False), ("FashionMNIST/raw", True), ("fashion-mnist", False)])
def test_idx_files_are_read_gzipped_or_not_in_each_layout(tmp_path, layout, gz):
    train_labels, test_labels = write_idx_dataset(tmp_path / "data" / layout, gz=gz)
    data = load("fashion_mnist", tmp_path / "data")
    assert (data.n_train, data.n_test, data.input_shape, data.num_classes) == (30, 20, (1, 28, 28), 10)
    assert data.train.labels.tolist() == train_labels and data.test.labels.tolist() == test_labels
    pixels = data.train.images.pixels
    assert pixels.dtype == torch.uint8 and pixels.shape == (30, 1, 28, 28)  # held as bytes
    assert torch.equal(pixels[:, 0], torch.from_numpy(mnist_images(train_labels)))
    x, y = next(iter(data.test_batches(64)))  # normalised with Fashion-MNIST's statistics
    expected = (torch.tensor([colour(int(c))[0] for c in y]) / 255 - 0.2860) / 0.3530
    assert torch.allclose(x[:, 0, 0, 0], expected, atol=1e-5)


def test_without_a_root_the_default_folders_are_searched_in_order(no_default_folders, monkeypatch):
    tmp = no_default_folders
    write_idx_dataset(tmp / "usr-share-datasets" / "kmnist", n_train=10)
    assert DataSpec(dataset="kmnist").root is None  # not filled in: the reader looks
    assert load("kmnist").n_train == 10
    write_idx_dataset(tmp / "home" / "data" / "KMNIST" / "raw", n_train=20)
    assert load("kmnist").n_train == 20  # ~/data before the system's folder
    monkeypatch.setenv("ADSEARCH_DATA", str(tmp / "env"))
    write_idx_dataset(tmp / "env" / "kmnist", n_train=40, gz=False)
    assert load("kmnist").n_train == 40  # $ADSEARCH_DATA first
    write_idx_dataset(tmp / "loose", n_train=50)  # files loose in a default folder could be any of the family
    monkeypatch.setenv("ADSEARCH_DATA", str(tmp / "loose"))
    assert load("kmnist").n_train == 20


def test_files_not_found_name_every_folder_looked_in_and_how_to_get_them(no_default_folders):
    tmp = no_default_folders
    with pytest.raises(DataError) as exc:
        load("fashion_mnist")
    text = str(exc.value)
    for folder in (tmp / "home" / "data" / "FashionMNIST" / "raw", tmp / "usr-share-datasets" / "fashion-mnist"):
        assert f"    {folder}\n" in text
    assert "apt-get install dataset-fashion-mnist" in text and "github.com/zalandoresearch/fashion-mnist" in text
    write_idx_dataset(tmp / "given")
    (tmp / "given" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as exc:
        load("mnist", tmp / "given")
    text = str(exc.value)
    assert f"{tmp / 'given'} has 3 of them, not t10k-labels-idx1-ubyte" in text
    assert "yann.lecun.com/exdb/mnist" in text and str(tmp / "usr-share-datasets") not in text  # only data.root


def _damaged(folder: Path, name: str, data: bytes) -> Path:
    write_idx_dataset(folder, gz=False)
    path = folder / name
    path.write_bytes(data)
    return path


U8 = np.uint8


@pytest.mark.parametrize("name, data, says", [
    ("train-images-idx3-ubyte", idx_bytes(np.zeros(30, U8)), "magic number is 0x00000801, expected 0x00000803"),
    ("train-labels-idx1-ubyte", b"\x00\x00", "magic number is 0x2 bytes in all"),
    ("t10k-images-idx3-ubyte", idx_bytes(np.zeros((20, 27, 27), U8)), "images of 27 x 27 pixels, not 28 x 28"),
    ("t10k-labels-idx1-ubyte", idx_bytes(np.array([0] * 19 + [10], U8)), "labels must be in 0..9, got 10 at 19"),
    ("t10k-labels-idx1-ubyte", idx_bytes(np.zeros(21, U8)), "holds 21 labels for the 20 images"),
    ("train-images-idx3-ubyte", idx_bytes(mnist_images([0] * 30))[:-5], "truncated or damaged"),
])
def test_a_damaged_file_is_an_error_naming_it(tmp_path, name, data, says):
    path = _damaged(tmp_path, name, data)
    with pytest.raises(DataError, match=r"get the dataset again") as exc:
        load("mnist", tmp_path)
    assert str(path) in str(exc.value) and says in str(exc.value)


def test_a_torn_gzip_file_is_an_error_naming_it(tmp_path):
    write_idx_dataset(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match=rf"cannot read {path}: .*get the dataset again"):
        load("fashion_mnist", tmp_path)


def test_fashion_is_mirrored_in_training_the_characters_are_not(tmp_path):
    write_idx_dataset(tmp_path, n_train=200)
    columns = {}
    for dataset in ("fashion_mnist", "mnist"):
        data = load(dataset, tmp_path).to("cpu")
        x, _ = next(iter(data.train_batches(200, torch.Generator().manual_seed(1))))
        columns[dataset] = x[:, 0].amax(dim=1).argmax(dim=1)  # the white pixel's column, after the crop
    assert (columns["mnist"] <= 3 + 4).all()  # shifted by the crop (padding 4), never mirrored
    mirrored = columns["fashion_mnist"] >= 24 - 4
    assert 60 < int(mirrored.sum()) < 140  # about half


def test_the_limit_is_per_split(tmp_path):
    write_idx_dataset(tmp_path, n_train=60, n_test=40)
    data = load("mnist", tmp_path, limit={"train": 20})
    assert (data.n_train, data.n_test) == (20, 40) and torch.bincount(data.train.labels).tolist() == [2] * 10
    assert (load("mnist", tmp_path, limit=30).n_train, load("mnist", tmp_path, limit=30).n_test) == (30, 30)
    data = load("mnist", tmp_path, limit={"test": 10})
    assert (data.n_train, data.n_test) == (60, 10)
    digits = load_data(DataSpec(dataset="digits", limit={"train": 100, "test": None}))
    assert (digits.n_train, digits.n_test) == (100, 360)

    def problem(limit: str) -> str:
        with pytest.raises(SpecError) as exc:
            parse_spec(f"name: x\ndata: {{dataset: digits, limit: {limit}}}\n")
        return "\n".join(exc.value.problems)

    assert "data.limit" in problem("0") and "{train: N, test: M}" in problem("0")
    assert "data.limit.train" in problem("{train: 0}")
    assert "tran" in problem("{tran: 5}")
    assert "data.limit" in problem("lots")


def test_the_family_is_declared_and_not_downloaded():
    assert input_shape(DataSpec(dataset="fashion_mnist")) == (1, 28, 28)  # without loading
    assert input_shape(DataSpec(dataset="mnist", image_size=32)) == (1, 32, 32)
    with pytest.raises(SpecError, match="apt-get install dataset-fashion-mnist"):
        parse_spec("name: x\ndata: {dataset: fashion_mnist, download: true}\n")


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist is not installed (make data)")
def test_the_installed_fashion_mnist_is_read_whole():
    data = load("fashion_mnist")  # no root: found in Debian's folder
    assert (data.n_train, data.n_test, data.input_shape) == (60000, 10000, (1, 28, 28))
    for split in (data.train, data.test):
        assert split.labels.min() == 0 and split.labels.max() == 9
    assert torch.bincount(data.train.labels).tolist() == [6000] * 10
    first = data.train.images.pixels[0].numpy().tobytes()
    assert hashlib.sha256(first).hexdigest() == "5bd44e331a6d6998daf675700cd0c13dcd7af8ab954b7585124124da61459e7b"
    assert gzip.open(DEBIAN / "train-images-idx3-ubyte.gz").read(16 + 784)[16:] == first
    assert int(data.train.labels[0]) == 9  # an ankle boot


def test_a_trial_trains_on_the_grey_images_the_same_held_on_the_device_or_read_by_workers(tmp_path, one_thread):
    from adsearch.train.trainer import run_trial

    write_idx_dataset(tmp_path, n_train=64, n_test=20)
    text = (f"name: grey\nseed: 0\nmodel: {{arch: vgg, layers: [8, M, 16]}}\n"
            f"data: {{dataset: fashion_mnist, root: {tmp_path}, workers: 0, on_device: ON}}\n"
            "train: {epochs: 2, batch_size: 16, device: cpu}\n"
            "pruning: {compress_at: [1], min_channels: 2, target_density: 0.99}\n")
    held, read = (run_trial(parse_spec(text.replace("ON", on))) for on in ("true", "false"))
    assert held["rounds"] == 1 and held["widths"] != held["base_widths"]  # the one-channel network, cut
    assert [h["train_loss"] for h in held["history"]] == [h["train_loss"] for h in read["history"]]
    assert (held["accuracy"], held["widths"]) == (read["accuracy"], read["widths"])
