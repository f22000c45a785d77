"""The spec's `pruning` section: when to compress (a list of epochs or a periodic schedule), which
channels survive a cut (`CRITERIA`) and how many (`WIDTH_RULES`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from adsearch.spec.sections import SpecModel


CRITERIA = ("activation_density", "l1_norm", "bn_scale", "random")
"""Which channels survive a cut: the most active (density), the largest filters (weight L1 norm),
the largest BatchNorm scales (|gamma|, as Network Slimming), or a seeded random draw."""
WIDTH_RULES = ("density", "uniform", "uniform_matched")
"""How many channels survive a cut: `ceil(density x width)` in layers below `target_density`, the
fraction `keep` of every layer, or one fraction of every layer chosen so the network keeps as many
parameters as `density` would leave it (the width-rule ablation at equal size)."""


class PruningSpec(SpecModel):
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
        "target_density), uniform (the fraction keep of every layer) or uniform_matched (one fraction of every "
        "layer, as many parameters as density would keep)")
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
