"""Datasets (adsearch.data.registry, adsearch.data.arrays, adsearch.data.batches): the digits split, resizing,
normalisation, batching, synthetic data."""

from __future__ import annotations

import pytest
import torch

from adsearch.data.batches import TensorBatches
from adsearch.data.registry import check_dataset, file_datasets, list_datasets, load_data
from adsearch.errors import AdsearchError
from adsearch.spec.sections import DataSpec


@pytest.fixture(scope="module")
def digits():
    return load_data(DataSpec(dataset="digits"), seed=0)


def test_digits_split_is_stratified_20_percent(digits):
    # 1,797 images; sklearn rounds the test share up: ceil(0.2 * 1797) = 360
    assert digits.n_train + digits.test_x.shape[0] == 1797
    assert digits.test_x.shape[0] == 360 and digits.n_train == 1437
    assert digits.num_classes == 10 and digits.input_shape == (1, 8, 8)
    # stratified: each class (174..183 images) has 20% of its images, 34.8..36.6, in the test split
    per_class = torch.bincount(digits.test_y, minlength=10)
    assert set(per_class.tolist()) <= {35, 36, 37} and int(per_class.sum()) == 360
    assert digits.train_x.dtype == torch.float32 and digits.train_y.dtype == torch.int64


def test_digits_split_depends_on_the_seed_only(digits):
    again = load_data(DataSpec(dataset="digits"), seed=0)
    other = load_data(DataSpec(dataset="digits"), seed=1)
    assert torch.equal(again.test_y, digits.test_y) and torch.equal(again.test_x, digits.test_x)
    assert not torch.equal(other.test_x, digits.test_x)


def test_digits_are_normalised_with_training_statistics(digits):
    assert float(digits.train_x.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(digits.train_x.std()) == pytest.approx(1.0, abs=1e-3)
    assert abs(float(digits.test_x.mean())) < 0.1  # the test split is shifted by the same amounts


def test_digits_resized_to_16_px():
    data = load_data(DataSpec(dataset="digits", image_size=16), seed=0)
    assert data.input_shape == (1, 16, 16)
    assert tuple(data.test_x.shape) == (360, 1, 16, 16)


def test_train_batches_cover_every_sample_once_per_epoch():
    x = torch.arange(10.0).view(10, 1, 1, 1)  # sample i holds the value i
    y = torch.arange(10)
    batches = TensorBatches(x, y, 4, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert len(batches) == 3  # 4 + 4 + 2
    epoch1 = [(bx.flatten().long(), by) for bx, by in batches]
    assert [len(by) for _, by in epoch1] == [4, 4, 2]
    seen = torch.cat([by for _, by in epoch1])
    assert sorted(seen.tolist()) == list(range(10))
    assert all(torch.equal(bx, by) for bx, by in epoch1)  # images stay with their labels
    epoch2 = torch.cat([by for _, by in batches])
    assert sorted(epoch2.tolist()) == list(range(10)) and not torch.equal(epoch2, seen)  # reshuffled


def test_test_batches_are_in_order():
    x, y = torch.zeros(5, 1, 2, 2), torch.arange(5)
    assert [b.tolist() for _, b in TensorBatches(x, y, 2, shuffle=False)] == [[0, 1], [2, 3], [4]]


def test_synthetic_shapes_and_split():
    spec = DataSpec(dataset="synthetic", num_samples=100, num_classes=4, image_size=12, test_fraction=0.25)
    data = load_data(spec, seed=0)
    assert data.input_shape == (3, 12, 12) and data.num_classes == 4
    assert data.test_x.shape[0] == 25 and data.n_train == 75
    assert sorted(torch.cat([data.train_y, data.test_y]).bincount().tolist()) == [25, 25, 25, 25]
    assert torch.equal(load_data(spec, seed=0).train_x, data.train_x)
    assert not torch.equal(load_data(spec, seed=1).train_x, data.train_x)


def test_synthetic_class_brightens_its_quadrant():
    data = load_data(DataSpec(dataset="synthetic", num_samples=400, num_classes=4, image_size=8), seed=0)
    x, y = data.train_x, data.train_y
    # class 0: channel 0, top-left 4x4 quadrant is +1 on average; class 3: channel 0, bottom-right
    assert float(x[y == 0][:, 0, :4, :4].mean()) == pytest.approx(1.0, abs=0.1)
    assert float(x[y == 0][:, 0, 4:, 4:].mean()) == pytest.approx(0.0, abs=0.1)
    assert float(x[y == 3][:, 0, 4:, 4:].mean()) == pytest.approx(1.0, abs=0.1)


def test_unknown_dataset_lists_the_registered_ones():
    assert {"digits", "synthetic"} <= set(list_datasets())
    with pytest.raises(AdsearchError, match="unknown dataset 'digit'; did you mean 'digits'\\? available: 'cifar10', "):
        load_data(DataSpec.model_construct(dataset="digit"))  # a spec built without validation
    with pytest.raises(ValueError) as info:
        check_dataset("svhn")  # nothing close
    assert str(info.value) == ("unknown dataset 'svhn'; available: 'cifar10', 'cifar100', 'digits', 'fashion_mnist', "
                               "'imagefolder', 'kmnist', 'mnist', 'synthetic', 'tinyimagenet'")
    check_dataset("synthetic")


def test_datasets_read_from_disk_are_flagged_in_the_registry():
    assert file_datasets() == ["cifar10", "cifar100", "tinyimagenet", "imagefolder", "mnist", "fashion_mnist", "kmnist"]


def test_what_the_readers_take_from_a_spec_is_the_spec_s_data_section():
    from adsearch.data.settings import DataSettings
    from adsearch.spec.sections import DataSpec

    has = set(DataSpec.model_fields) | {n for n, v in vars(DataSpec).items() if isinstance(v, property)}
    assert set(DataSettings.__annotations__) <= has  # the readers ask only for what it has
    assert DataSpec(limit={"train": 5}).train_limit == 5 and DataSpec(limit={"train": 5}).test_limit is None
    assert "dataset" in DataSettings.__annotations__ and "root" in DataSettings.__annotations__
