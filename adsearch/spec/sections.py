"""The spec's sections for the network, the data, the search, its resources and the report, and
`SpecModel`, the base of every spec model (an unknown key is an error). The training and pruning
sections have their own modules (`adsearch.spec.training`, `adsearch.spec.pruning`).
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adsearch.metrics import OBJECTIVES
from adsearch.spec.space import Dimension, ValuesDim


class SpecModel(BaseModel):
    """A spec model: plain data, validated, and a key it does not declare is an error."""

    model_config = ConfigDict(extra="forbid")


# --- model and data -------------------------------------------------------------------------


class ModelSpec(SpecModel):
    arch: str = Field(
        "vgg11", description="registered architecture (vgg11/13/16/19, vgg, resnet18/34/50) or torchvision:<name>"
    )
    layers: list[int | Literal["M"]] | None = Field(
        None, description="custom VGG layer list (conv widths and 'M' for max-pool); overrides arch"
    )
    width_mult: float = Field(1.0, gt=0, le=8, description="multiplier on every conv width")
    stem: Literal["cifar", "imagenet"] | None = Field(
        None, description="ResNet stem: cifar (3x3 conv, no max-pool) or imagenet (7x7/2 conv, max-pool); "
        "default: cifar for images up to 64 px"
    )

    @field_validator("arch")
    @classmethod
    def arch_is_registered(cls, arch: str) -> str:
        from adsearch.models.registry import check_arch  # the registry is the vocabulary

        check_arch(arch)
        return arch

    @model_validator(mode="after")
    def options_fit_the_arch(self):
        if self.arch == "vgg" and self.layers is None:
            raise ValueError("model.layers: arch 'vgg' needs a layer list (conv widths and 'M'), e.g. [64, M, 128, M]")
        if self.layers is not None and not self.arch.startswith("vgg"):
            raise ValueError(f"model.layers applies to VGG archs only, got arch {self.arch!r}")
        if self.stem is not None and self.arch not in ("resnet18", "resnet34", "resnet50"):
            raise ValueError(f"model.stem applies to resnet18/34/50 only, got arch {self.arch!r}")
        if self.arch.startswith("torchvision:") and self.width_mult > 1:
            raise ValueError(f"model.width_mult must be <= 1 for torchvision models (they are cut from "
                             f"the full network), got {self.width_mult}")
        return self

    @field_validator("layers")
    @classmethod
    def layers_hold_a_conv(cls, layers):
        if layers is not None and not any(isinstance(x, int) for x in layers):
            raise ValueError("must hold at least one conv width")
        if layers is not None and any(isinstance(x, int) and x < 1 for x in layers):
            raise ValueError("conv widths must be >= 1")
        return layers


def _registered_datasets(schema: dict) -> None:
    from adsearch.data.registry import list_datasets  # imports torch: only when a schema is asked for

    schema["enum"] = list_datasets()


class SplitLimits(SpecModel):
    """`data.limit` per split: at most so many samples of each (None: all of it)."""

    train: int | None = Field(None, ge=1, description="training samples at most (null: all)")
    test: int | None = Field(None, ge=1, description="test samples at most (null: all)")


class DataSpec(SpecModel):
    dataset: str = Field("digits", description="registered dataset (adsearch.data.registry.register_dataset)",
                         json_schema_extra=_registered_datasets)
    root: str | None = Field(
        None, description="file datasets: the folder holding the dataset (e.g. ~/data with cifar-10-batches-py "
        "in it) or the dataset's own folder; default $ADSEARCH_DATA, else ~/data (imagefolder: required; the "
        "MNIST family: also the system's datasets folder, e.g. Debian's /usr/share/datasets)"
    )
    download: bool = Field(False, description="cifar10/cifar100: download into root if missing (needs internet)")
    image_size: int | None = Field(
        None, ge=8, le=256, description="resize images to this many pixels square (None: native); ResNets take "
        "the ImageNet stem above 64 px"
    )
    limit: int | SplitLimits | None = Field(
        None, description="use at most this many samples (deterministic, class-balanced): one number for each "
        "split, or {train: N, test: M} (either left out or null: the whole split)"
    )
    augment: bool = Field(True, description="file datasets: random crop (padding 4) and horizontal flip in training "
                          "(no flip for mnist and kmnist: a mirrored character is another)")
    workers: int | None = Field(
        None, ge=0, description="file datasets: DataLoader worker processes (default: min(4, CPUs); 0: in process)"
    )
    cache: bool = Field(True, description="image-file datasets (tinyimagenet, imagefolder): decode every image "
                        "once into data.cache_dir and read the decoded pixels from there")
    cache_dir: str | None = Field(None, description="where decoded images are kept, shared by every study and "
                                  "trial (default $ADSEARCH_CACHE, else ~/.cache/adsearch); kept as an absolute path")
    on_device: Literal["auto"] | bool = Field(
        "auto", description="file datasets: keep both splits whole on the training device as uint8 and augment "
        "there, without DataLoader workers (auto: when they take at most half its free memory; true: an error if "
        "they do not fit); the built-in datasets always are"
    )
    test_fraction: float = Field(0.2, gt=0, lt=1, description="held-out share (split datasets)")
    num_samples: int = Field(512, ge=16, description="synthetic only: samples in all")
    num_classes: int = Field(4, ge=2, description="synthetic only: number of classes")

    @field_validator("dataset")
    @classmethod
    def dataset_is_registered(cls, dataset: str) -> str:
        from adsearch.data.registry import check_dataset  # the registry is the vocabulary (data imports torch)

        check_dataset(dataset)
        return dataset

    @field_validator("limit", mode="before")
    @classmethod
    def limit_is_a_count_or_one_per_split(cls, value):
        if value is None or isinstance(value, dict):
            return value
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"must be a whole number >= 1 (for each split) or {{train: N, test: M}}, got {value!r}")
        return value

    @property
    def train_limit(self) -> int | None:
        """At most this many training samples (None: all)."""
        return self.limit.train if isinstance(self.limit, SplitLimits) else self.limit

    @property
    def test_limit(self) -> int | None:
        """At most this many test samples (None: all)."""
        return self.limit.test if isinstance(self.limit, SplitLimits) else self.limit

    @field_validator("on_device", mode="before")
    @classmethod
    def on_device_is_auto_or_a_boolean(cls, value):
        if value == "auto" or isinstance(value, bool):
            return value
        raise ValueError(f"must be auto, true or false, got {value!r}")

    @model_validator(mode="after")
    def root_fits_the_dataset(self):
        from adsearch.data.registry import file_datasets

        if self.dataset not in file_datasets():
            if self.root is not None or self.download:
                key = "root" if self.root is not None else "download"
                raise ValueError(f"data.{key}: applies to datasets read from disk ({', '.join(file_datasets())}); "
                                 f"{self.dataset} is built in")
            return self
        if self.download and not self.dataset.startswith("cifar"):
            from adsearch.data.idx import FAMILY

            how = ("download http://cs231n.stanford.edu/tiny-imagenet-200.zip and unzip it in data.root"
                   if self.dataset == "tinyimagenet" else FAMILY[self.dataset].get if self.dataset in FAMILY
                   else "put train/ and val/ class folders in data.root")
            raise ValueError(f"data.download: true works for cifar10 and cifar100 only; for {self.dataset}, {how}")
        if self.root is None and self.dataset == "imagefolder":
            raise ValueError("data.root: imagefolder needs a root: the folder holding train/ and val/ class folders")
        from adsearch.data.settings import DATA_ENV
        from adsearch.data.image_cache import CACHE_ENV
        from adsearch.data.registry import root_optional

        root = self.root
        if root is None and not root_optional(self.dataset):  # the MNIST family looks in places of its own
            root = os.environ.get(DATA_ENV) or "~/data"
        cache_dir = self.cache_dir if self.cache_dir is not None else os.environ.get(CACHE_ENV) or "~/.cache/adsearch"
        # absolute, so that trials (whose working directory is their own) find the same folders
        self.root = None if root is None else os.path.abspath(os.path.expanduser(os.path.expandvars(root)))
        self.cache_dir = os.path.abspath(os.path.expanduser(os.path.expandvars(cache_dir)))
        return self


# --- search -----------------------------------------------------------------------------------


class Objective(SpecModel):
    metric: Literal[tuple(OBJECTIVES)]  # type: ignore[valid-type]
    mode: Literal["max", "min"] | None = Field(None, description="default: the metric's natural one")

    @model_validator(mode="after")
    def mode_from_metric(self):
        if self.mode is None:
            self.mode = OBJECTIVES[self.metric]
        return self


class EarlyStop(SpecModel):
    """`search.early_stop`: successive halving over the study's objectives (`adsearch.study.halving`)."""

    rungs: list[int] = Field(
        min_length=1, description="epochs at which a trial is ranked among those that reached the same epoch before "
        "it (by non-dominated sorting over the objectives as they stand there) and stopped unless it ranks in the top "
        "`keep` share; each before train.epochs")
    keep: float = Field(0.5, gt=0, lt=1, description="the share of the trials at a rung that go on (ties go on)")
    min_peers: int = Field(4, ge=2, description="no trial is stopped at a rung until this many (itself included) "
                           "have reached it")
    peers: Literal["same_cuts", "all"] = Field(
        "same_cuts", description="rank a trial among those with as many compression rounds by the rung (same_cuts: a "
        "trial that cuts later is larger at an early rung and would lose for it), or among all")

    @field_validator("rungs")
    @classmethod
    def rungs_increase(cls, v: list[int]) -> list[int]:
        if any(e < 1 for e in v) or sorted(set(v)) != v:
            raise ValueError(f"rungs must be increasing epochs from 1, got {v}")
        return v


class SearchSpec(SpecModel):
    trials: int = Field(12, ge=1, description="search trials (the baseline is extra)")
    sampler: Literal["tpe", "gp", "nsga2", "random", "grid"] = Field(
        "tpe", description="tpe (multivariate TPE), gp (Gaussian process), nsga2, random or grid: "
        "benchmarks/RESULTS.md compares them")
    objectives: list[Objective] = Field(
        default_factory=lambda: [Objective(metric="accuracy"), Objective(metric="params")],
        min_length=1,
    )
    space: dict[str, Dimension] = Field(default_factory=dict)
    baseline: bool = Field(True, description="run the same recipe with pruning off first")
    max_failures: int | None = Field(
        None, ge=1, description="end the study once this many trials have failed (default: never)"
    )
    share_prefixes: bool = Field(
        True, description="keep trials' states at the epochs where they can part, in the prefix cache shared by every "
        "study of the machine (search.prefix_cache), so that a trial starts from the furthest state any trial of any "
        "study trained on its path (the same recipe, seed and schedule so far); results are unchanged"
    )
    prefix_cache: str | None = Field(
        None, description="the prefix cache's folder (default: $ADSEARCH_PREFIX_CACHE, else $ADSEARCH_CACHE/prefixes, "
        "else ~/.cache/adsearch/prefixes); `adsearch cache` lists, sizes and clears it"
    )
    prefix_cache_gb: float = Field(
        20.0, gt=0, description="the most the prefix cache may hold, in GB: the least recently used states go first"
    )
    keep_prefixes: bool = Field(
        False, description="no longer used: the prefix cache is kept across studies, bounded by prefix_cache_gb "
        "(accepted so that earlier specs still load)"
    )
    scratch_controls: Literal["off", "epochs", "compute", "both"] = Field(
        "off", description="after the search, train the final widths of each pruned trial on the Pareto front from "
        "scratch, pruning off (Liu et al.'s control): does pruning in training buy accuracy? `epochs`: as many epochs "
        "as the trial (true means this); `compute`: as many training MACs as the trial cost, so more epochs of the "
        "small network; `both`. Each costs one unpruned training per such trial; `adsearch scratch` runs them on a "
        "finished study"
    )

    early_stop: EarlyStop | None = Field(
        None, description="stop trials that rank in the worse part of those at the same epoch (multi-objective "
        "successive halving at `rungs`); a stopped trial is recorded as such, off the front. Off by default: "
        "benchmarks/RESULTS.md has what it saved and lost on Fashion-MNIST")
    replicates: int = Field(
        1, ge=1, le=20, description="seeds in all for the baseline and the Pareto front trials: after the search "
        "each is trained again with seed+1, seed+2, ... (on Ray like any trial); the report shows the mean and "
        "standard deviation over them, and the front and the recommendation use the means. `adsearch replicate` "
        "does it for a finished study"
    )

    @field_validator("scratch_controls", mode="before")
    @classmethod
    def scratch_controls_true_is_epochs(cls, v):
        """`true` and `false` as earlier specs wrote them: the equal-epoch control, none."""
        return {True: "epochs", False: "off"}.get(v, v) if isinstance(v, bool) else v

    @property
    def scratch_matches(self) -> tuple[str, ...]:
        """What the controls after the search match their trial on: ('epochs',), ('compute',), both, or ()."""
        return {"off": (), "both": ("epochs", "compute")}.get(self.scratch_controls, (self.scratch_controls,))

    @model_validator(mode="after")
    def grid_takes_values_only(self):
        if self.sampler == "grid":
            bad = [p for p, d in self.space.items() if not isinstance(d, ValuesDim)]
            if bad:
                raise ValueError(f"sampler grid needs {{values: [...]}} dimensions; not: {', '.join(bad)}")
        return self

    @model_validator(mode="after")
    def objectives_distinct(self):
        names = [o.metric for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objectives repeat a metric: {names}")
        return self


class PerTrial(SpecModel):
    cpu: float = Field(1.0, gt=0, description="CPUs Ray gives each trial (the baseline too)")
    gpu: float = Field(0.0, ge=0, description="GPUs Ray gives each trial; a fraction shares one GPU")


class ResourcesSpec(SpecModel):
    per_trial: PerTrial = Field(default_factory=PerTrial)
    max_concurrent: int | None = Field(None, ge=1, description="trials at once (default: what fits)")
    num_cpus: int | None = Field(None, ge=1, description="CPUs for the local Ray (default: all)")
    address: str | None = Field(None, description="Ray cluster: auto, host:port or ray://host:10001")
    placement_timeout_s: float = Field(
        900, gt=0, description="how long to wait for the first trial of a run to be placed (on a cluster, for an "
        "autoscaler to add a node with resources.per_trial) before the study stops, resumable")


class ReportSpec(SpecModel):
    max_accuracy_drop: float = Field(
        0.01, ge=0, le=1, description="recommended trade-off: accuracy within this of the baseline"
    )
    size_tolerance: float = Field(
        0.1, ge=0, le=1, description="recommended trade-off: a trial is passed over for one at most this fraction "
        "larger and more accurate (0: the fewest parameters, whatever the accuracy)"
    )
