"""The search space: what a dimension of `search.space` is, and values as Optuna carries them.

A dimension is a list of choices (`ValuesDim`) or a range (`DistributionDim`: uniform,
log-uniform or integer, optionally on a step grid). Optuna's categorical choices must be scalars,
so a choice that is a list or a mapping travels as JSON text (`encode_choice`) and is read back
as the spec writes it (`decode_choice`). `set_path` puts a value at a dotted spec path. Which
paths may be searched, and whether a dimension's values fit its field, is the spec's to check
(`adsearch.spec.loading`), which knows the whole schema.
"""

from __future__ import annotations

import copy
import json
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator


class _Dim(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ValuesDim(_Dim):
    values: list[Any] = Field(min_length=1, description="the choices")


class DistributionDim(_Dim):
    distribution: Literal["uniform", "log_uniform", "int_uniform"]
    low: float
    high: float
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def low_below_high(self):
        if not self.low < self.high:
            raise ValueError(f"low must be < high, got low={self.low}, high={self.high}")
        if self.distribution == "log_uniform" and self.low <= 0:
            raise ValueError(f"log_uniform needs low > 0, got {self.low}")
        if self.distribution == "log_uniform" and self.step is not None:
            raise ValueError("log_uniform takes no step")
        # Optuna would truncate a fractional int step (0.5 to 0: an error at run time, not here) and
        # narrow the range to `low` alone for a step wider than it: both are said here instead
        if self.distribution == "int_uniform" and self.step is not None and not float(self.step).is_integer():
            raise ValueError(f"int_uniform needs an integer step, got {self.step}")
        if self.step is not None and self.step > self.high - self.low:
            raise ValueError(f"step must be at most high - low ({self.high - self.low:g}), got {self.step}")
        if self.distribution == "int_uniform" and not (
            float(self.low).is_integer() and float(self.high).is_integer()
        ):
            raise ValueError(f"int_uniform needs integer low and high, got {self.low}, {self.high}")
        return self


def _dimension_kind(value) -> str:
    """Which dimension a space entry is, so an error reports only that branch."""
    if isinstance(value, dict):
        return "DistributionDim" if {"distribution", "low", "high"} & set(value) else "ValuesDim"
    return "DistributionDim" if isinstance(value, DistributionDim) else "ValuesDim"


Dimension = Annotated[
    Union[Annotated[ValuesDim, Tag("ValuesDim")], Annotated[DistributionDim, Tag("DistributionDim")]],
    Discriminator(_dimension_kind),
]


def set_path(data: dict, path: str, value) -> dict:
    """A deep copy of `data` with `value` at dotted `path` (intermediate mappings are created)."""
    data = copy.deepcopy(data)
    node = data
    parts = path.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise KeyError(f"{part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value
    return data


def probe_values(dim: DistributionDim) -> list:
    """Values a distribution can draw that show a misfit: its bounds, and a value between them (on
    the step grid) that is fractional unless the distribution draws integers, so that a float
    distribution over an integer field is caught here rather than in every trial."""
    inner = dim.low + dim.step if dim.step is not None else (dim.low + dim.high) / 2
    values = [dim.low, dim.high] + ([inner] if inner < dim.high else [])
    return list(dict.fromkeys(int(v) if dim.distribution == "int_uniform" else v for v in values))


def space_size(space: dict[str, Dimension]) -> int | None:
    """How many parameter sets `space` holds: the product of its dimensions' sizes (lists of
    values, integer ranges, float ranges on a step grid); None if a dimension is continuous."""
    size = 1
    for dim in space.values():
        if isinstance(dim, ValuesDim):
            size *= len({encode_choice(v) for v in dim.values})
        elif dim.distribution == "int_uniform" or dim.step is not None:
            size *= int((dim.high - dim.low) // (dim.step or 1)) + 1
        else:
            return None
    return size


def encode_choice(value) -> Any:
    """Optuna categorical choices must be scalars: lists and mappings travel as JSON text."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def decode_choice(dim: Dimension, value) -> Any:
    if isinstance(dim, ValuesDim) and isinstance(value, str):
        for choice in dim.values:
            if encode_choice(choice) == value:
                return choice
    if isinstance(dim, DistributionDim) and dim.distribution == "int_uniform":
        return int(value)
    return value
