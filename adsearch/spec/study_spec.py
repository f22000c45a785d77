"""The study spec: `StudySpec`, the whole document, made of its sections (`adsearch.spec.sections`,
`adsearch.spec.training`, `adsearch.spec.pruning`) and checked across them: the network must take the
data's images and be compressible by the chosen criterion. Reading one from YAML is
`adsearch.spec.loading`'s.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import Field, model_validator

from adsearch.spec.pruning import PruningSpec
from adsearch.spec.sections import DataSpec, ModelSpec, ReportSpec, ResourcesSpec, SearchSpec, SpecModel
from adsearch.spec.training import TrainSpec


class StudySpec(SpecModel):
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
            from adsearch.models.checks import compression_problem, criterion_problem  # traces torchvision models once

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
        from adsearch.models.checks import input_problem  # one forward pass on the CPU, cached per input

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

    @model_validator(mode="after")
    def rungs_before_the_end(self):
        stop = self.search.early_stop
        if stop is not None and stop.rungs[-1] >= self.train.epochs:
            raise ValueError(f"search.early_stop.rungs: every rung must be an epoch before the last "
                             f"(train.epochs {self.train.epochs}), got {stop.rungs}")
        return self

    def without_pruning(self) -> StudySpec:
        """The same recipe with pruning off: the study's baseline."""
        return self.model_copy(update={"pruning": self.pruning.model_copy(update={"method": "none"})})

    def digest(self) -> str:
        """A short hash of the spec's content, to tell a changed spec on resume."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def json_schema() -> dict:
    return StudySpec.model_json_schema()
