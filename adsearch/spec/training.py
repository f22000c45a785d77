"""The spec's `train` section: epochs, batches, the optimizer (a union chosen by `optimizer.name`),
the learning-rate schedule and how the step runs on the device."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from adsearch.spec.sections import SpecModel


class SGDSpec(SpecModel):
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


class AdamSpec(SpecModel):
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


class ScheduleSpec(SpecModel):
    name: Literal["constant", "step", "cosine"] = "cosine"
    step_size: int = Field(30, ge=1, description="step: epochs between LR drops")
    gamma: float = Field(0.1, gt=0, le=1, description="step: LR factor at each drop")


class TrainSpec(SpecModel):
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
    channels_last: bool = Field(False, description="NHWC memory format for the network and its inputs on a "
                                  "GPU (a CPU keeps the default layout: no faster there, and unsafe for "
                                  "narrow 1x1 stride-2 convs in torch's oneDNN)")
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
