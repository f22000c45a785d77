"""What a dataset reader takes from a spec's `data` section (`DataSettings`), and where the datasets
read from disk are looked for when the spec sets no `data.root` (`DATA_ENV`)."""

from __future__ import annotations

from typing import Protocol


class DataSettings(Protocol):
    """What the readers take from a spec's `data` section (`adsearch.spec.sections.DataSpec`, validated
    there). The spec checks dataset names against the registry (`adsearch.data.registry`), so the data
    modules do not import it."""

    dataset: str
    root: str | None
    download: bool
    image_size: int | None
    train_limit: int | None  # `data.limit` for each split: at most so many samples (None: all)
    test_limit: int | None
    test_fraction: float
    num_samples: int
    num_classes: int
    cache: bool
    cache_dir: str | None
    workers: int | None
    augment: bool
    on_device: bool | str


DATA_ENV = "ADSEARCH_DATA"
"""Environment variable holding the default `data.root` (else ~/data)."""
