"""The study spec: Pydantic models, YAML loading with line-numbered errors, the search space.

A spec is plain data. `load_spec(path)` reads YAML with `safe_load`, validates the whole
document and raises `SpecError` listing every problem as `dotted.path (line N): message`
(`adsearch.spec.schema` finds the line and walks the models for the path).
`apply_params(spec, params)` puts sampled values into a spec and validates it again as a whole.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from adsearch.errors import AdsearchError
from adsearch.metrics import OBJECTIVES
from adsearch.spec.space import Dimension, DistributionDim, ValuesDim, decode_choice, probe_values, set_path
from adsearch.spec.schema import format_error, path_and_line, schema_at, yaml_lines


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- model and data -------------------------------------------------------------------------


class ModelSpec(_Model):
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


class DataSpec(_Model):
    dataset: str = Field("digits", description="registered dataset (adsearch.data.registry.register_dataset)",
                         json_schema_extra=_registered_datasets)
    root: str | None = Field(
        None, description="file datasets: the folder holding the dataset (e.g. ~/data with cifar-10-batches-py "
        "in it) or the dataset's own folder; default $ADSEARCH_DATA, else ~/data (imagefolder: required)"
    )
    download: bool = Field(False, description="cifar10/cifar100: download into root if missing (needs internet)")
    image_size: int | None = Field(
        None, ge=8, le=256, description="resize images to this many pixels square (None: native); ResNets take "
        "the ImageNet stem above 64 px"
    )
    limit: int | None = Field(
        None, ge=1, description="use at most this many samples per split (deterministic, class-balanced): smoke runs"
    )
    augment: bool = Field(True, description="file datasets: random crop (padding 4) and horizontal flip in training")
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
            how = ("download http://cs231n.stanford.edu/tiny-imagenet-200.zip and unzip it in data.root"
                   if self.dataset == "tinyimagenet" else "put train/ and val/ class folders in data.root")
            raise ValueError(f"data.download: true works for cifar10 and cifar100 only; for {self.dataset}, {how}")
        if self.root is None and self.dataset == "imagefolder":
            raise ValueError("data.root: imagefolder needs a root: the folder holding train/ and val/ class folders")
        from adsearch.data.registry import DATA_ENV
        from adsearch.data.image_cache import CACHE_ENV

        root = self.root if self.root is not None else os.environ.get(DATA_ENV) or "~/data"
        cache_dir = self.cache_dir if self.cache_dir is not None else os.environ.get(CACHE_ENV) or "~/.cache/adsearch"
        # absolute, so that trials (whose working directory is their own) find the same folders
        self.root = os.path.abspath(os.path.expanduser(os.path.expandvars(root)))
        self.cache_dir = os.path.abspath(os.path.expanduser(os.path.expandvars(cache_dir)))
        return self


# --- training ---------------------------------------------------------------------------------


class SGDSpec(_Model):
    name: Literal["sgd"] = "sgd"
    lr: float = Field(0.05, gt=0, description="learning rate")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    nesterov: bool = False

    @model_validator(mode="after")
    def nesterov_needs_momentum(self):
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: true needs momentum > 0")
        return self


class AdamSpec(_Model):
    name: Literal["adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0, description="learning rate")
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)

    @field_validator("betas")
    @classmethod
    def betas_in_unit_interval(cls, betas):
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"both betas must be in [0, 1), got {list(betas)}")
        return betas


def _optimizer_name(value) -> str:
    """The optimizer a value names; `name` may be left out for the default, sgd."""
    return value.get("name", "sgd") if isinstance(value, dict) else getattr(value, "name", "sgd")


OptimizerSpec = Annotated[
    Union[Annotated[SGDSpec, Tag("sgd")], Annotated[AdamSpec, Tag("adam")], Annotated[AdamSpec, Tag("adamw")]],
    Discriminator(_optimizer_name),
]


class ScheduleSpec(_Model):
    name: Literal["constant", "step", "cosine"] = "cosine"
    step_size: int = Field(30, ge=1, description="step: epochs between LR drops")
    gamma: float = Field(0.1, gt=0, le=1, description="step: LR factor at each drop")


class TrainSpec(_Model):
    epochs: int = Field(10, ge=1, description="epochs per trial")
    batch_size: int = Field(64, ge=1, description="training batch size")
    eval_batch_size: int = Field(512, ge=1, description="evaluation batch size")
    optimizer: OptimizerSpec = Field(default_factory=SGDSpec)
    lr_schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: per_trial.cpu)")
    amp: Literal["off", "bf16", "fp16"] = Field(
        "off", description="mixed precision: bf16 (autocast), fp16 (autocast and loss scaling) or off; true means bf16"
    )
    channels_last: bool = Field(False, description="NHWC memory format for the network and its inputs (GPU convs)")
    cudnn_benchmark: bool = Field(True, description="CUDA: let cuDNN time its algorithms for each new training "
                                  "shape (once at the start and after every compression; evaluation uses its "
                                  "heuristics), often repaid by faster steady epochs (benchmarks/RESULTS.md)")
    compile: Literal["off", "on", "auto"] = Field(
        "off", description="compile the training step with torch.compile (CUDA graphs on a GPU), again after every "
        "compression (15-20 s each for VGG-19 on an H200, in the trial's history): on, off, or auto (on for a GPU "
        "only; on a CPU the compile costs more than it saves)")
    drop_last: bool = Field(True, description="skip an epoch's last training batch when it is smaller than "
                            "batch_size: every step has one shape (no re-tuning or recompiling for a ragged batch)")

    @field_validator("lr_schedule", mode="before")
    @classmethod
    def schedule_from_name(cls, value):
        return {"name": value} if isinstance(value, str) else value

    @field_validator("amp", mode="before")
    @classmethod
    def amp_from_bool(cls, value):
        # YAML reads a bare `off` as false; `true` asks for the usual choice on current GPUs
        return {False: "off", True: "bf16"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("compile", mode="before")
    @classmethod
    def compile_from_bool(cls, value):
        return {False: "off", True: "on"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("device")
    @classmethod
    def device_is_known(cls, device: str) -> str:
        base, _, index = device.partition(":")
        if base not in ("auto", "cpu", "cuda") or (index and (base != "cuda" or not index.isdigit())):
            raise ValueError(f"must be auto, cpu, cuda or cuda:N, got {device!r}")
        return device


# --- pruning ----------------------------------------------------------------------------------


CRITERIA = ("activation_density", "l1_norm", "bn_scale", "random")
"""Which channels survive a cut: the most active (density), the largest filters (weight L1 norm),
the largest BatchNorm scales (|gamma|, as Network Slimming), or a seeded random draw."""
WIDTH_RULES = ("density", "uniform")
"""How many channels survive a cut: `ceil(density x width)` in layers below `target_density`, or
the fraction `keep` of every layer."""


class PruningSpec(_Model):
    method: Literal["activation_density", "none"] = Field(
        "activation_density", description="activation_density: prune in training (criterion and widths say how); "
        "none: train the network at full width")
    compress_at: list[int] = Field(default_factory=list, description="epochs after which to compress")
    start: int | None = Field(
        None, ge=1, description="a periodic schedule instead of compress_at: compress after epoch start, then "
        "every `every` epochs (without every: once)")
    every: int | None = Field(None, ge=1, description="with start: epochs between compressions")
    max_rounds: int | None = Field(None, ge=0, description="compression rounds at most (default: all)")
    criterion: Literal[CRITERIA] = Field(  # type: ignore[valid-type]
        "activation_density", description="which channels survive a cut: activation_density (most active), "
        "l1_norm (largest filter weights), bn_scale (largest |BatchNorm gamma|), random (seeded)")
    widths: Literal[WIDTH_RULES] = Field(  # type: ignore[valid-type]
        "density", description="how many survive: density (ceil(density x width), in layers below "
        "target_density) or uniform (the fraction keep of every layer)")
    keep: float = Field(0.5, gt=0, lt=1, description="with widths: uniform, the fraction of each layer kept at a cut")
    target_density: float = Field(1.0, gt=0, le=1, description="layers at or above are left alone (widths: density)")
    zero_threshold: float = Field(0.0, ge=0, description="an output counts as active above this")
    min_channels: int = Field(4, ge=1, description="no layer is cut below this width")
    round_to: int = Field(1, ge=1, description="widths are rounded up to a multiple of this")
    weights: Literal["inherit", "reinit"] = "inherit"
    group_density: Literal["mean", "max"] = Field(
        "mean", description="a coupled group's channel density over its activation sites: their mean, or max"
    )

    @field_validator("compress_at")
    @classmethod
    def epochs_positive_and_sorted(cls, epochs: list[int]) -> list[int]:
        if any(e < 1 for e in epochs):
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        return sorted(set(epochs))

    @field_validator("start")
    @classmethod
    def one_schedule(cls, start: int | None, info: ValidationInfo) -> int | None:
        if start is not None and info.data.get("compress_at"):
            raise ValueError(f"pruning.start and pruning.compress_at ({info.data['compress_at']}) both say when to "
                             "compress: give one of the two (start/every for a periodic schedule, compress_at for a "
                             "list of epochs)")
        return start

    @field_validator("every")
    @classmethod
    def every_needs_start(cls, every: int | None, info: ValidationInfo) -> int | None:
        if every is not None and "start" in info.data and info.data["start"] is None:  # not a start that failed
            raise ValueError("pruning.every needs pruning.start (the first epoch to compress after)")
        return every

    def schedule(self, epochs: int) -> list[int]:
        """The epochs after which a compression may happen, before the last of `epochs` (`compress_at`'s
        epochs at or after it are dropped: no training follows them)."""
        if self.start is None:
            return [e for e in self.compress_at if e < epochs]
        if self.every is None:
            return [self.start] if self.start < epochs else []
        return list(range(self.start, epochs, self.every))

    def rounds(self, epochs: int) -> int:
        """How many compressions will happen at most in a training of `epochs` epochs."""
        if self.method == "none":
            return 0
        planned = len(self.schedule(epochs))
        return planned if self.max_rounds is None else min(self.max_rounds, planned)


# --- search -----------------------------------------------------------------------------------


class Objective(_Model):
    metric: Literal[tuple(OBJECTIVES)]  # type: ignore[valid-type]
    mode: Literal["max", "min"] | None = Field(None, description="default: the metric's natural one")

    @model_validator(mode="after")
    def mode_from_metric(self):
        if self.mode is None:
            self.mode = OBJECTIVES[self.metric]
        return self


class SearchSpec(_Model):
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
        True, description="keep trials' states at the epochs where they can part (prefixes/ in the study) so that "
        "a trial starts from the furthest state another trial trained on its path; results are unchanged"
    )
    keep_prefixes: bool = Field(
        False, description="keep the prefix cache when the study is done (default: delete it then; an interrupted "
        "study keeps it to resume with)"
    )
    scratch_controls: bool = Field(
        False, description="after the search, train the final widths of each pruned trial on the Pareto front from "
        "scratch with the same recipe and epochs, pruning off (Liu et al.'s control): does pruning in training buy "
        "accuracy? Costs one unpruned training per such trial; `adsearch scratch` runs them on a finished study"
    )

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


class PerTrial(_Model):
    cpu: float = Field(1.0, gt=0, description="CPUs Ray gives each trial (the baseline too)")
    gpu: float = Field(0.0, ge=0, description="GPUs Ray gives each trial; a fraction shares one GPU")


class ResourcesSpec(_Model):
    per_trial: PerTrial = Field(default_factory=PerTrial)
    max_concurrent: int | None = Field(None, ge=1, description="trials at once (default: what fits)")
    num_cpus: int | None = Field(None, ge=1, description="CPUs for the local Ray (default: all)")
    address: str | None = Field(None, description="Ray cluster: auto, host:port or ray://host:10001")
    placement_timeout_s: float = Field(
        900, gt=0, description="how long to wait for the first trial of a run to be placed (on a cluster, for an "
        "autoscaler to add a node with resources.per_trial) before the study stops, resumable")


class ReportSpec(_Model):
    max_accuracy_drop: float = Field(
        0.01, ge=0, le=1, description="recommended trade-off: accuracy within this of the baseline"
    )


class StudySpec(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    seed: int = Field(0, ge=0)
    model: ModelSpec = Field(default_factory=ModelSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    pruning: PruningSpec = Field(default_factory=PruningSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    report: ReportSpec = Field(default_factory=ReportSpec)

    @model_validator(mode="after")
    def model_can_be_compressed(self):
        if self.pruning.method != "none":
            from adsearch.models.registry import compression_problem, criterion_problem  # traces torchvision models once

            problem = compression_problem(self.model.arch)
            if problem:
                raise ValueError(f"model.arch: {problem}")
            problem = criterion_problem(self.model.arch, self.pruning.criterion)
            if problem:
                raise ValueError(f"pruning.criterion: {problem}")
        return self

    @model_validator(mode="after")
    def model_takes_the_image_size(self):
        from adsearch.data.registry import input_shape
        from adsearch.models.registry import input_problem  # one forward pass on the CPU, cached per input

        shape = input_shape(self.data)
        if shape is None:  # known only from the files (imagefolder without data.image_size)
            return self
        # the size search stops at data.image_size's own bound: no larger size can be set
        largest = next(bound.le for bound in DataSpec.model_fields["image_size"].metadata if hasattr(bound, "le"))
        m = self.model
        problem = input_problem(m.arch, in_channels=shape[0], image_size=shape[-1], stem=m.stem, largest=largest,
                                layers=None if m.layers is None else tuple(m.layers))
        if problem:
            unset = "" if self.data.image_size else f"not set: {self.data.dataset} gives its native {shape[-1]} px; "
            raise ValueError(f"data.image_size: {unset}{problem}")
        return self

    def without_pruning(self) -> StudySpec:
        """The same recipe with pruning off: the study's baseline."""
        return self.model_copy(update={"pruning": self.pruning.model_copy(update={"method": "none"})})

    def digest(self) -> str:
        """A short hash of the spec's content, to tell a changed spec on resume."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- errors with YAML lines -------------------------------------------------------------------


class SpecError(AdsearchError):
    """An invalid spec: every problem, each as `dotted.path (line N): message`."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} error(s)\n" + "\n".join(f"  {p}" for p in problems))


# --- loading ----------------------------------------------------------------------------------


def parse_spec(text: str, source: str = "<spec>", overrides: dict[str, Any] | None = None) -> StudySpec:
    """Validate a YAML document (plus dotted-path overrides) into a `StudySpec`.

    Raises:
        SpecError: listing every problem at once.
    """
    try:
        data = yaml.safe_load(text)
        lines = yaml_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise SpecError(source, [f"not valid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    except ValueError as exc:  # a value YAML reads as a date or time that does not exist (2020-13-45)
        raise SpecError(source, [f"not valid YAML: {exc} (quote the value to keep it as text)"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(source, [f"the spec must be a mapping of keys, got {type(data).__name__}"])
    problems: list[str] = []
    for path, value in (overrides or {}).items():
        try:
            data = set_path(data, path, value)
        except KeyError as exc:
            problems.append(f"--set {path}: {exc.args[0]}")
    if problems:
        raise SpecError(source, problems)
    return validate_spec(data, source, lines)


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> StudySpec:
    """Read and validate a YAML spec file (see `parse_spec`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(str(path), [f"cannot read the spec: {exc.strerror}"]) from None
    return parse_spec(text, str(path), overrides)


def spec_warnings(spec: StudySpec) -> list[str]:
    """What is valid but likely not meant: compression epochs the training never reaches.

    `--set train.epochs=1` is how a study is smoke-tested, so epochs in `pruning.compress_at` (or a
    `pruning.start`) at or after `train.epochs` are not an error: there is no training after them, so
    they do not happen.
    """
    pruning, epochs = spec.pruning, spec.train.epochs
    if pruning.method == "none":
        return []
    if pruning.start is not None:
        if pruning.start < epochs:
            return []
        return [f"pruning.start: epoch {pruning.start} is not before train.epochs ({epochs}), so no training "
                "follows it: no compression happens"]
    late = [e for e in pruning.compress_at if e >= epochs]
    if not late:
        return []
    what = "no compression happens" if len(late) == len(pruning.compress_at) else "they are skipped"
    return [f"pruning.compress_at: epochs {late} are not before train.epochs ({epochs}), "
            f"so no training follows them: {what}"]


def validate_spec(data: dict, source: str = "<spec>", lines: dict | None = None) -> StudySpec:
    """Validate a spec dict, then its search space against it; raise `SpecError` with all problems."""
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        # the space's values can only be checked against a valid spec, its paths always
        problems = [format_error(err, lines, root=StudySpec) for err in exc.errors()]
        raise SpecError(source, problems + _space_problems(data, lines)) from None
    problems = _space_problems(spec, lines)
    if problems:
        raise SpecError(source, problems)
    return spec


# --- the search space -------------------------------------------------------------------------


def _space_problems(data: dict | StudySpec, lines: dict | None) -> list[str]:
    """Each search-space path that names no field of the spec; once the spec is valid (`data` a
    `StudySpec`), also each value of a dimension that does not fit its field."""
    if isinstance(data, StudySpec):
        space = data.search.space
    else:
        search = data.get("search") if isinstance(data, dict) else None
        space = search.get("space") if isinstance(search, dict) else None
        space = space if isinstance(space, dict) else {}
    problems: list[str] = []
    periodic = [p for p in ("pruning.start", "pruning.every") if p in space]
    if "pruning.compress_at" in space and periodic:
        where = path_and_line(("search", "space", periodic[0]), lines)
        problems.append(f"{where}: the space searches pruning.compress_at and {' and '.join(periodic)}, two ways "
                        "to say when to compress: search one of the two")
    for path, dim in space.items():
        where = path_and_line(("search", "space", path), lines)
        if str(path).split(".")[0] == "search" or path == "name":
            problems.append(f"{where}: cannot search over {path!r}")
        elif problem := schema_at(StudySpec, str(path), data).problem():
            problems.append(f"{where}: {problem}")
        elif isinstance(data, StudySpec):
            problems += [f"{where}: {p}" for p in _space_value_problems(data, path, dim)]
    return problems


def _space_value_problems(spec: StudySpec, path: str, dim: Dimension) -> list[str]:
    problems: list[str] = []
    base = spec.model_dump(mode="json")
    for value in dim.values if isinstance(dim, ValuesDim) else probe_values(dim):
        try:
            StudySpec.model_validate(set_path(base, path, value))
        except ValidationError as exc:
            for err in exc.errors():
                place = schema_at(StudySpec, err["loc"], error_loc=True)
                loc = ".".join(str(p) for p in place.path + place.rest)
                msg = err["msg"].removeprefix("Value error, ")
                problems.append(f"value {value!r} is not allowed ({loc}: {msg})" if loc else
                                f"value {value!r} is not allowed: {msg}")
            if isinstance(dim, DistributionDim):
                break  # one bad draw tells the range does not fit; the listed values are each checked
    return problems


def apply_params(spec: StudySpec, params: dict[str, Any]) -> StudySpec:
    """The base spec with sampled `params` (dotted path -> value) put in, validated as a whole."""
    data = spec.model_dump(mode="json")
    for path, value in params.items():
        dim = spec.search.space.get(path)
        data = set_path(data, path, decode_choice(dim, value) if dim is not None else value)
    return validate_spec(data, source="sampled trial")


def json_schema() -> dict:
    return StudySpec.model_json_schema()
