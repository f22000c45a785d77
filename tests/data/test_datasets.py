"""File datasets (adsearch.data.files, adsearch.data.images, adsearch.data.image_cache): CIFAR pickle batches, the
tiny-imagenet-200 tree and image folders, written on disk in their real layouts
(tests/fake_datasets.py); label mapping checked by each class's colour, augmentation, limit,
workers, device-resident data, the decoded-image cache, bad data, the spec's data fields, and the
trainer (AMP, exact resume) on a file dataset."""

from __future__ import annotations

import io
import os
import re
import shutil

import pytest
import torch
import torch.nn.functional as F
from fake_datasets import (
    FOLDER_CLASSES,
    TINY_TRAIN_PER_CLASS,
    TINY_VAL,
    TINY_WNIDS,
    colour,
    cifar_rows,
    edit_cifar_batch,
    solid,
    write_cifar10,
    write_cifar100,
    write_imagefolder,
    write_tinyimagenet,
)

from adsearch.data.batches import balanced_subset
from adsearch.data.files import CIFAR10_URL, SOURCES, TINYIMAGENET_URL
from adsearch.data.registry import load_data
from adsearch.errors import DataError, DiskError
import adsearch.data.images as images_module
from adsearch.data.images import FileData, crop_and_flip
from adsearch.spec.loading import SpecError, parse_spec
from adsearch.spec.sections import DataSpec
from adsearch.spec.training import TrainSpec
from adsearch.train.trainer import run_trial


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_cifar10(root)
    write_cifar100(root)
    write_tinyimagenet(root)
    write_imagefolder(root / "folder")
    return root


def load(dataset: str, root, **options) -> FileData:
    """A file dataset read in process; image files decoded as they are read unless `cache=True`."""
    return load_data(DataSpec(dataset=dataset, root=str(root), **{"workers": 0, "cache": False, **options}))


def normalised(c: int, dataset: str) -> torch.Tensor:
    """Class `c`'s colour as the network sees it: (value / 255 - mean) / std per channel."""
    source = SOURCES[dataset]
    return (torch.tensor(colour(c)) / 255 - torch.tensor(source.mean)) / torch.tensor(source.std)


def all_batches(batches) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*batches)
    return torch.cat(xs), torch.cat(ys)


def assert_class_colours(x: torch.Tensor, y: torch.Tensor, dataset: str, atol: float = 1e-5) -> None:
    """Every image in `x` is, at every pixel, the colour of the class its label says."""
    expected = torch.stack([normalised(int(c), dataset) for c in y])[:, :, None, None].expand_as(x)
    assert torch.allclose(x, expected, atol=atol), (x - expected).abs().max()


# --- CIFAR ----------------------------------------------------------------------------------------


def test_cifar10_sizes_labels_and_pixels(data_root):
    data = load("cifar10", data_root)
    assert (data.n_train, data.n_test, data.num_classes, data.input_shape) == (50, 20, 10, (3, 32, 32))
    # data_batch_i holds labels (j + i) % 10, read in order 1..5
    assert data.train.labels.tolist() == [(j + i) % 10 for i in range(1, 6) for j in range(10)]
    x, y = all_batches(data.test_batches(8))
    assert y.tolist() == [j % 10 for j in range(20)] and x.dtype == torch.float32
    assert_class_colours(x, y, "cifar10")


def test_cifar100_reads_the_fine_labels_from_its_own_folder(data_root):
    data = load("cifar100", data_root / "cifar-100-python")  # root may be the dataset's own folder
    assert (data.n_train, data.n_test, data.num_classes) == (30, 12, 100)
    x, y = all_batches(data.test_batches(100))
    assert y.tolist() == list(range(12))  # fine labels j % 12, not the coarse j % 3
    assert_class_colours(x, y, "cifar100")


def test_training_batches_are_cropped_and_flipped_but_keep_their_labels(data_root):
    data = load("cifar10", data_root)
    batches = list(data.train_batches(16, torch.Generator().manual_seed(0)))
    assert [tuple(x.shape) for x, _ in batches] == [(16, 3, 32, 32)] * 3 + [(2, 3, 32, 32)]
    x, y = all_batches(batches)
    assert sorted(y.tolist()) == sorted(data.train.labels.tolist())  # every sample once
    # a crop moves the image by at most 4 px: the centre 24 x 24 is always the class colour
    assert_class_colours(x[:, :, 4:28, 4:28], y, "cifar10")
    source = SOURCES["cifar10"]
    black = -torch.tensor(source.mean) / torch.tensor(source.std)  # the zero padding, normalised
    padded = torch.isclose(x, black[None, :, None, None]).all(dim=1).any(dim=(1, 2))
    assert 0 < int(padded.sum()) < 50
    x_plain, y_plain = all_batches(load("cifar10", data_root, augment=False).train_batches(16, torch.Generator()))
    assert_class_colours(x_plain, y_plain, "cifar10")


def test_crop_and_flip_equals_padding_then_cropping_by_hand():
    x = torch.arange(2 * 2 * 4 * 4, dtype=torch.uint8).view(2, 2, 4, 4)
    out = crop_and_flip(x, torch.tensor([[0, 2], [1, 1]]), torch.tensor([False, True]), pad=1)
    padded = F.pad(x, (1, 1, 1, 1))
    assert torch.equal(out[0], padded[0, :, 0:4, 2:6])
    assert torch.equal(out[1], padded[1, :, 1:5, 1:5].flip(-1))  # offset (1, 1) is the image itself, mirrored
    assert torch.equal(out[1], x[1].flip(-1))


def test_an_epoch_is_the_same_with_a_worker_process_and_from_the_same_generator_state(data_root):
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    in_process = load("tinyimagenet", data_root)
    epoch1 = list(in_process.train_batches(5, generator))
    epoch2 = list(in_process.train_batches(5, generator))
    again = torch.Generator()
    again.set_state(state)
    with_worker = load("tinyimagenet", data_root, workers=1)
    try:
        replay = list(with_worker.train_batches(5, again))
    finally:
        with_worker.close()
    assert len(replay) == len(epoch1) == 3
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(epoch1, replay))
    assert not torch.equal(all_batches(epoch1)[1], all_batches(epoch2)[1])  # the next epoch reshuffles


# --- data held whole on the device ----------------------------------------------------------------


@pytest.mark.parametrize("dataset, options", [("cifar10", {}), ("tinyimagenet", {"image_size": 32}),
                                              ("cifar100", {"augment": False})])
def test_resident_batches_equal_the_worker_paths_bit_for_bit(data_root, dataset, options):
    by_workers = load(dataset, data_root, on_device=False, **options).to("cpu")
    resident = load(dataset, data_root, on_device=True, **options).to("cpu")
    assert resident.resident and not by_workers.resident
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for _ in range(2):  # two epochs: each reshuffled, the same on both paths
        a, b = list(by_workers.train_batches(5, g1)), list(resident.train_batches(5, g2))
        assert len(a) == len(b) == len(resident.train_batches(5, torch.Generator()))
        assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    a, b = all_batches(by_workers.test_batches(4)), all_batches(resident.test_batches(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert resident._loaders == {}  # no DataLoader, so no worker process
    by_workers.close()


def test_on_device_auto_falls_back_to_workers_over_the_budget_and_true_is_an_error(data_root, monkeypatch):
    data = load("cifar10", data_root)  # on_device: auto
    need = data.resident_bytes()
    assert need == (data.n_train + data.n_test) * 3 * 32 * 32
    monkeypatch.setattr(images_module, "free_memory", lambda device: 2 * need)  # fits: half of it is the budget
    assert data.to("cpu").resident
    monkeypatch.setattr(images_module, "free_memory", lambda device: 2 * need - 2)  # 1 byte over the budget
    fallback = data.to("cpu")
    assert not fallback.resident
    assert len(list(fallback.train_batches(8, torch.Generator()))) == -(-data.n_train // 8)
    with pytest.raises(DataError, match=r"data.on_device is true, but cifar10 needs .* GiB as uint8 on cpu, over the "
                                        r"budget .*set data.on_device: auto"):
        load("cifar10", data_root, on_device=True).to("cpu")


def test_an_unreadable_image_is_named_when_the_split_is_made_resident(tmp_path):
    write_tinyimagenet(tmp_path)
    bad = tmp_path / "tiny-imagenet-200" / "val" / "images" / TINY_VAL[1][0]
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=f"cannot read image {bad}"):
        load("tinyimagenet", tmp_path, on_device=True).to("cpu")


def test_on_device_takes_auto_or_a_yaml_boolean_and_names_anything_else():
    assert DataSpec(dataset="cifar10").on_device == "auto"
    assert parse_spec("name: x\ndata: {dataset: cifar10, on_device: no}\n").data.on_device is False
    with pytest.raises(SpecError, match=r"data.on_device \(line 2\): must be auto, true or false, got 'gpu'$"):
        parse_spec("name: x\ndata: {dataset: cifar10, on_device: gpu}\n")


def test_a_trial_on_resident_data_is_the_trial_on_worker_batches(data_root, one_thread):
    text = TRIAL.format(root=data_root, amp="off")
    straight = run_trial(parse_spec(text.replace("workers: 0", "workers: 0, on_device: false")))
    resident = run_trial(parse_spec(text.replace("workers: 0", "workers: 0, on_device: true")))
    for key in ("history", "compressions", "widths", "accuracy", "loss", "train_macs"):
        assert resident[key] == straight[key], key


# --- the decoded-image cache ---------------------------------------------------------------------


def cache_entries(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_images_are_decoded_once_into_the_cache_and_read_back_the_same(tmp_path, capfd):
    write_tinyimagenet(tmp_path)
    cache = tmp_path / "cache"
    first = load("tinyimagenet", tmp_path, cache=True, cache_dir=str(cache), image_size=32)
    built = capfd.readouterr().err
    assert f"decoding 12 images (train) once into the image cache {cache}" in built and "12/12 images decoded" in built
    assert cache_entries(cache) == sorted(p.name for p in cache.glob("tinyimagenet-*-64px-*.npy")) and len(
        cache_entries(cache)) == 2  # train and test
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    second = load("tinyimagenet", tmp_path, cache=True, cache_dir=str(cache), image_size=32)  # another trial
    assert capfd.readouterr().err == "" and {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == stamps
    decoded = load("tinyimagenet", tmp_path, image_size=32)  # no cache: decoded as read
    for data in (first, second):
        g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
                   for a, b in zip(data.train_batches(5, g1), decoded.train_batches(5, g2)))
        assert torch.equal(all_batches(data.test_batches(4))[0], all_batches(decoded.test_batches(4))[0])
    on_cpu, decoded_on_cpu = first.to("cpu"), decoded.to("cpu")  # held whole (on_device: auto fits)
    assert on_cpu.resident and torch.equal(on_cpu._resident["train"][0], decoded_on_cpu._resident["train"][0])


def test_no_room_for_an_image_cache_entry_is_one_error_before_any_pixel_is_copied(tmp_path, small_filesystem):
    """Its blocks are claimed first: on a full disk the memory-mapped copy would die of SIGBUS."""
    write_tinyimagenet(tmp_path)
    cache = small_filesystem(0.1)  # 100 kB: the training split's entry is 12 x 3 x 64 x 64 bytes
    with pytest.raises(DiskError, match=r"cannot write the image cache entry .*tinyimagenet-train-64px-.*\.npy "
                                        r"\(0\.1 MB\): No space left on device \(0\.1 MB free in .*\); make room"):
        load("tinyimagenet", tmp_path, cache=True, cache_dir=str(cache), image_size=32)
    assert cache_entries(cache) == [] and not list(cache.iterdir())  # nothing half-written


def test_a_changed_file_list_builds_a_new_entry(tmp_path, capfd):
    folder = write_tinyimagenet(tmp_path)
    cache = tmp_path / "cache"
    load("tinyimagenet", tmp_path, cache=True, cache_dir=str(cache))
    before = cache_entries(cache)
    extra = folder / "train" / TINY_WNIDS[0] / "images" / "extra.JPEG"
    shutil.copy(folder / "train" / TINY_WNIDS[0] / "images" / f"{TINY_WNIDS[0]}_0.JPEG", extra)
    capfd.readouterr()
    data = load("tinyimagenet", tmp_path, cache=True, cache_dir=str(cache))
    assert "decoding 13 images (train)" in capfd.readouterr().err and data.n_train == 13
    after = cache_entries(cache)
    assert len(after) == 3 and set(before) < set(after)  # a new train entry; the test split's is reused


def test_an_unreadable_image_is_named_when_the_cache_is_built_and_nothing_is_left(tmp_path):
    folder = write_tinyimagenet(tmp_path)
    bad = folder / "train" / TINY_WNIDS[1] / "images" / f"{TINY_WNIDS[1]}_2.JPEG"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"not a jpeg" * 10)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=f"cannot read image {re.escape(str(bad))}"):
        load("tinyimagenet", tmp_path, cache=True, cache_dir=str(cache))
    assert list(cache.iterdir()) == []  # no entry, no temporary file


def test_a_cache_folder_that_cannot_be_written_is_named(tmp_path):
    write_tinyimagenet(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match=r"cannot write the image cache in .*file/sub .*set data.cache_dir"):
        load("tinyimagenet", tmp_path, cache=True, cache_dir=str(tmp_path / "file" / "sub"))


def test_cache_dir_defaults_to_adsearch_cache_then_home_and_is_made_absolute(monkeypatch, tmp_path):
    monkeypatch.setenv("ADSEARCH_CACHE", "rel/cache")
    monkeypatch.chdir(tmp_path)
    assert DataSpec(dataset="tinyimagenet", root=str(tmp_path)).cache_dir == str(tmp_path / "rel" / "cache")
    monkeypatch.delenv("ADSEARCH_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert DataSpec(dataset="tinyimagenet", root=str(tmp_path)).cache_dir == str(tmp_path / "home" / ".cache"
                                                                                 / "adsearch")


# --- TinyImageNet ---------------------------------------------------------------------------------


def test_tinyimagenet_maps_val_labels_through_the_wnids_index(data_root):
    data = load("tinyimagenet", data_root, augment=False)
    assert (data.n_train, data.n_test, data.num_classes, data.input_shape) == (12, 6, 3, (3, 64, 64))
    x, y = all_batches(data.test_batches(4))
    # wnids.txt order is the index: n09999999 -> 0, n01443537 -> 1, n04067472 -> 2 (sorted folders
    # would make n01443537 class 0)
    assert y.tolist() == [TINY_WNIDS.index(w) for _, w in TINY_VAL] == [2, 0, 1, 2, 1, 0]
    jpeg = 4 / 255 / min(SOURCES["tinyimagenet"].std)  # JPEG may move a value by a few levels
    assert_class_colours(x, y, "tinyimagenet", atol=jpeg)
    x, y = all_batches(data.train_batches(5, torch.Generator()))
    assert torch.bincount(y).tolist() == [TINY_TRAIN_PER_CLASS] * 3
    assert_class_colours(x, y, "tinyimagenet", atol=jpeg)  # train and val agree on every class


def test_tinyimagenet_resized_to_image_size(data_root):
    data = load("tinyimagenet", data_root, image_size=32)
    assert data.input_shape == (3, 32, 32)
    x, y = next(iter(data.test_batches(6)))
    assert tuple(x.shape) == (6, 3, 32, 32)
    assert_class_colours(x, y, "tinyimagenet", atol=4 / 255 / 0.26)


# --- image folders --------------------------------------------------------------------------------


def test_imagefolder_classes_come_from_train_and_val_maps_through_them(data_root):
    data = load("imagefolder", data_root / "folder")
    # 3 images per class (one in a subfolder), 16 px: the size of the first training image
    assert (data.n_train, data.n_test, data.num_classes, data.input_shape) == (9, 4, 3, (3, 16, 16))
    assert data.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # cat, dog, eel: sorted
    x, y = all_batches(data.test_batches(3))
    assert y.tolist() == [FOLDER_CLASSES.index("cat")] * 2 + [FOLDER_CLASSES.index("dog")] * 2
    assert_class_colours(x, y, "imagefolder", atol=1e-5)  # PNG: lossless


def test_imagefolder_val_class_not_in_train_is_an_error(tmp_path):
    from PIL import Image

    write_imagefolder(tmp_path)
    (tmp_path / "val" / "fox").mkdir()
    Image.fromarray(solid(5, 16)).save(tmp_path / "val" / "fox" / "f.png")
    with pytest.raises(DataError, match=r"val/fox is not a class of train/ \(cat, dog, eel\)"):
        load("imagefolder", tmp_path)


def test_imagefolder_empty_train_class_is_an_error_naming_the_folder(tmp_path):
    write_imagefolder(tmp_path)
    (tmp_path / "train" / "fox" / "nested").mkdir(parents=True)  # folders, a note, but no image
    (tmp_path / "train" / "fox" / "notes.txt").write_text("todo")
    with pytest.raises(DataError) as empty:
        load("imagefolder", tmp_path)
    assert f"incomplete at {tmp_path}:\n  - no images in train/fox (looked for .jpg, .jpeg, .png, " in str(empty.value)
    assert ("): a class cannot be learnt without training images; add images to it or remove the folder\n"
            in str(empty.value))


def test_imagefolder_empty_val_class_is_a_class_without_test_images(tmp_path):
    write_imagefolder(tmp_path)
    (tmp_path / "val" / "eel").mkdir()  # like no val/eel at all: eel is simply not tested
    data = load("imagefolder", tmp_path)
    assert (data.n_train, data.n_test, data.num_classes) == (9, 4, 3)


def test_imagefolder_with_an_empty_train_or_val_folder_says_what_it_needs(tmp_path):
    write_imagefolder(tmp_path)
    shutil.rmtree(tmp_path / "val")
    (tmp_path / "val" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match=r":\n  - no images in val/\n  expected: "):
        load("imagefolder", tmp_path)
    shutil.rmtree(tmp_path / "train")
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "loose.png").write_bytes(b"")  # images directly in train/ have no class
    with pytest.raises(DataError) as no_classes:
        load("imagefolder", tmp_path)
    text = str(no_classes.value)
    assert (f"incomplete at {tmp_path}:\n  - no class folders in train/: make one folder per class, holding its "
            "images\n  - val/cat is not a class of train/ (it has none)\n  expected: ") in text


def test_imagefolder_of_non_square_images_needs_an_image_size(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        (tmp_path / split / "a").mkdir(parents=True)
        Image.fromarray(solid(1, 20)[:10]).save(tmp_path / split / "a" / "wide.png")  # 20 x 10
    with pytest.raises(DataError, match=r"are 20 x 10 px .* set data.image_size"):
        load("imagefolder", tmp_path)
    data = load("imagefolder", tmp_path, image_size=12)
    x, y = next(iter(data.test_batches(4)))
    assert tuple(x.shape) == (1, 3, 12, 12) and y.tolist() == [0]


# --- limit ----------------------------------------------------------------------------------------


def test_balanced_subset_takes_classes_in_turn():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    # first of each class (0, 3, 5), then the second (1, 4, 6): the first five are 0, 3, 5, 1, 4
    assert balanced_subset(labels, 5).tolist() == [0, 1, 3, 4, 5]
    assert balanced_subset(labels, 8).tolist() == [0, 1, 2, 3, 4, 5, 6, 7]  # class 1 runs out first
    assert balanced_subset(labels, 99).tolist() == list(range(9))
    assert balanced_subset(labels, None).tolist() == list(range(9))


def test_limit_applies_to_each_split(data_root):
    cifar = load("cifar10", data_root, limit=20)
    assert cifar.n_train == 20 and cifar.n_test == 20
    assert torch.bincount(cifar.train.labels).tolist() == [2] * 10
    x, y = all_batches(cifar.train_batches(8, torch.Generator()))
    assert sorted(y.tolist()) == sorted(cifar.train.labels.tolist())
    assert_class_colours(x[:, :, 4:28, 4:28], y, "cifar10")  # the subset keeps images with labels
    tiny = load("tinyimagenet", data_root, limit=4)
    assert (tiny.n_train, tiny.n_test) == (4, 4)
    assert tiny.train.labels.tolist() == [0, 0, 1, 2] and all_batches(tiny.test_batches(8))[1].tolist() == [2, 0, 1, 0]
    digits = load_data(DataSpec(dataset="digits", limit=30))
    assert digits.n_train == 30 and digits.n_test == 30 and torch.bincount(digits.train_y).tolist() == [3] * 10


# --- missing, partial and unreadable data -------------------------------------------------------


def test_a_missing_dataset_says_where_it_looked_what_it_expects_and_how_to_get_it(tmp_path):
    with pytest.raises(DataError) as cifar:
        load("cifar10", tmp_path)
    text = str(cifar.value)
    assert f"{tmp_path / 'cifar-10-batches-py'}:\n  - the folder does not exist" in text
    assert "data_batch_1 ... data_batch_5, test_batch and batches.meta" in text
    assert f"data.root is {tmp_path}" in text and "data.download: true" in text and CIFAR10_URL in text
    with pytest.raises(DataError) as tiny:
        load("tinyimagenet", tmp_path)
    text = str(tiny.value)
    assert str(tmp_path / "tiny-imagenet-200") in text and "wnids.txt" in text and TINYIMAGENET_URL in text
    with pytest.raises(DataError, match="no folder train/"):
        load("imagefolder", tmp_path)


def test_a_partial_cifar_folder_lists_the_missing_files(tmp_path):
    folder = write_cifar10(tmp_path)
    (folder / "data_batch_4").unlink()
    with pytest.raises(DataError, match=r"- no file data_batch_4\n  expected"):
        load("cifar10", tmp_path)


def test_a_partial_tinyimagenet_tree_lists_what_is_missing(tmp_path):
    folder = write_tinyimagenet(tmp_path)
    shutil.rmtree(folder / "train" / TINY_WNIDS[1] / "images")
    (folder / "val" / "images" / "val_3.JPEG").unlink()
    with (folder / "val" / "val_annotations.txt").open("a") as f:
        f.write("val_9.JPEG\tn00000000\t0\t0\t63\t63\n")
    with pytest.raises(DataError) as partial:
        load("tinyimagenet", tmp_path)
    text = str(partial.value)
    assert f"no folder train/{TINY_WNIDS[1]}/images" in text
    assert "no file val/images/val_3.JPEG (listed in val/val_annotations.txt line 4)" in text
    assert "val/val_annotations.txt line 7: class 'n00000000' is not in wnids.txt" in text
    assert TINYIMAGENET_URL in text


def test_tinyimagenet_wnids_listed_twice_are_named(tmp_path):
    folder = write_tinyimagenet(tmp_path)
    (folder / "wnids.txt").write_text("".join(f"{w}\n" for w in [*TINY_WNIDS, TINY_WNIDS[1]]))
    with pytest.raises(DataError) as repeated:
        load("tinyimagenet", tmp_path)
    assert str(repeated.value).startswith(
        f"dataset tinyimagenet is missing or incomplete at {folder}:\n  - wnids.txt lists {TINY_WNIDS[1]} more "
        "than once; each class id (wnid) must be listed once (4 ids, 3 distinct): remove the repeats\n")
    (folder / "wnids.txt").write_text("\n")
    with pytest.raises(DataError, match=r"- wnids.txt lists no class ids \(wnids\); expected one a line\n"):
        load("tinyimagenet", tmp_path)


def test_tinyimagenet_without_val_annotations_or_a_split_folder_names_it(tmp_path):
    folder = write_tinyimagenet(tmp_path)
    (folder / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DataError) as unlabelled:
        load("tinyimagenet", tmp_path)
    text = str(unlabelled.value)
    assert f"incomplete at {folder}:\n  - no file val/val_annotations.txt\n  expected: " in text
    assert TINYIMAGENET_URL in text
    shutil.rmtree(folder / "val")
    shutil.rmtree(folder / "train")
    with pytest.raises(DataError, match=r":\n  - no folder train/\n  - no folder val/\n  expected: "):
        load("tinyimagenet", tmp_path)


def test_a_truncated_cifar_batch_is_named(tmp_path):
    folder = write_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes((folder / "data_batch_3").read_bytes()[:100])
    with pytest.raises(DataError, match=re.escape(f"cannot read CIFAR batch {folder / 'data_batch_3'}")):
        load("cifar10", tmp_path)


@pytest.mark.parametrize(("data", "labels", "got"), [
    (cifar_rows(list(range(10)))[:, :1024], list(range(10)), "got data uint8 10 x 1024 and 10 labels"),
    (cifar_rows(list(range(10))), list(range(9)), "got data uint8 10 x 3072 and 9 labels"),
], ids=["one-plane-rows", "fewer-labels-than-rows"])
def test_a_cifar_batch_of_the_wrong_shape_is_named(tmp_path, data, labels, got):
    folder = write_cifar10(tmp_path)
    edit_cifar_batch(folder / "data_batch_2", data=data, labels=labels)
    with pytest.raises(DataError) as wrong:
        load("cifar10", tmp_path)
    assert str(wrong.value) == (f"{folder / 'data_batch_2'} is not a CIFAR batch: expected data uint8 N x 3072 "
                                f"and N labels, {got}; download it again")


@pytest.mark.parametrize(("dataset", "name", "rows", "bad", "rule"), [
    ("cifar10", "data_batch_5", 10, 10, "labels must be in 0..9 (10 classes)"),
    ("cifar10", "test_batch", 20, -1, "labels must be in 0..9 (10 classes)"),
    ("cifar100", "train", 30, 100, "fine_labels must be in 0..99 (100 classes)"),
    ("cifar100", "test", 12, 100, "fine_labels must be in 0..99 (100 classes)"),
])
def test_cifar_labels_out_of_range_are_named_when_loading(tmp_path, dataset, name, rows, bad, rule):
    folder = (write_cifar10 if dataset == "cifar10" else write_cifar100)(tmp_path)
    labels = [bad if j in (3, 5) else 0 for j in range(rows)]
    edit_cifar_batch(folder / name, **{"labels" if dataset == "cifar10" else "fine_labels": labels})
    with pytest.raises(DataError) as out_of_range:
        load(dataset, tmp_path)
    assert str(out_of_range.value) == (f"{folder / name}: {rule}, got {bad} in row 3 (2 of {rows} rows out of "
                                       "range); the file is damaged or from another dataset: download it again")


@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_jpeg_stops_training_with_the_file_named(tmp_path, workers):
    folder = write_tinyimagenet(tmp_path)
    bad = folder / "train" / TINY_WNIDS[2] / "images" / f"{TINY_WNIDS[2]}_1.JPEG"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"not a jpeg" * 10)
    data = load("tinyimagenet", tmp_path, workers=workers)  # the layout is fine: nothing decoded yet
    try:
        with pytest.raises(DataError) as corrupt:
            list(data.train_batches(4, torch.Generator()))
    finally:
        data.close()
    assert str(corrupt.value).startswith(f"cannot read image {bad}: ")
    assert "Traceback" not in str(corrupt.value)  # the worker's traceback is not passed on


# --- the spec's data and train fields -----------------------------------------------------------


def test_root_defaults_to_adsearch_data_then_home_and_is_made_absolute(monkeypatch, tmp_path):
    monkeypatch.setenv("ADSEARCH_DATA", str(tmp_path))
    assert DataSpec(dataset="cifar10").root == str(tmp_path)
    monkeypatch.delenv("ADSEARCH_DATA")
    assert DataSpec(dataset="tinyimagenet").root == os.path.expanduser("~/data")
    monkeypatch.chdir(tmp_path)  # trials run in their own directories: a relative root is made absolute
    assert DataSpec(dataset="cifar100", root="here/data").root == str(tmp_path / "here" / "data")
    assert DataSpec(dataset="digits").root is None


def test_data_options_that_do_not_fit_the_dataset_are_spec_errors():
    def problems(data: str) -> str:
        with pytest.raises(SpecError) as exc:
            parse_spec(f"name: x\ndata: {data}\n")
        return "\n".join(exc.value.problems)

    assert problems("{dataset: digits, root: /x}").startswith("data.root (line 2): applies to datasets read from disk")
    text = problems("{dataset: tinyimagenet, download: true}")
    assert text.startswith("data.download (line 2): true works for cifar10 and cifar100 only")
    assert TINYIMAGENET_URL in text
    assert problems("{dataset: imagefolder}").startswith("data.root (line 2): imagefolder needs a root")
    assert "data.limit" in problems("{dataset: cifar10, limit: 0}")
    assert "data.workers" in problems("{dataset: cifar10, workers: -1}")


def test_amp_takes_a_name_or_a_yaml_boolean():
    assert TrainSpec(amp="fp16").amp == "fp16" and TrainSpec().amp == "off"
    assert parse_spec("name: x\ntrain: {amp: off}\n").train.amp == "off"  # YAML reads `off` as false
    assert parse_spec("name: x\ntrain: {amp: true}\n").train.amp == "bf16"
    with pytest.raises(SpecError, match=r"train.amp \(line 2\): .*'bf16'"):
        parse_spec("name: x\ntrain: {amp: fp32}\n")


# --- the trainer on a file dataset: mixed precision, exact resume -------------------------------

TRIAL = """\
name: tiny-files
seed: 0
model: {{arch: resnet18, width_mult: 0.125}}
data: {{dataset: tinyimagenet, root: {root}, workers: 0, image_size: 32}}
train: {{epochs: 2, batch_size: 4, device: cpu, amp: {amp}, threads: 1}}
pruning: {{compress_at: [1], min_channels: 2, target_density: 0.99}}
"""


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_resume_on_a_file_dataset_with_amp_matches_the_straight_run(data_root, one_thread, amp):
    spec = parse_spec(TRIAL.format(root=data_root, amp=amp))
    saved = []

    def save(metrics, ckpt):  # written at once, as the study writes each epoch's checkpoint
        saved.append(io.BytesIO())
        torch.save(ckpt, saved[-1])

    final = run_trial(spec, report=save)
    assert final["rounds"] == 1 and final["widths"] != final["base_widths"]  # compressed after epoch 1
    saved[0].seek(0)
    ckpt = torch.load(saved[0], weights_only=True)
    if amp == "fp16":  # the loss scale travels with the checkpoint
        assert ckpt["scaler"]["scale"] > 0 and ckpt["scaler"]["_growth_tracker"] == 3  # 3 steps of 4
    else:
        assert ckpt["scaler"] == {}
    resumed = run_trial(spec, checkpoint=ckpt)
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in final["history"]]
    assert (resumed["loss"], resumed["accuracy"], resumed["widths"], resumed["train_macs"]) == (
        final["loss"], final["accuracy"], final["widths"], final["train_macs"])
