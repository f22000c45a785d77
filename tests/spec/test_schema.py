"""The schema walker and YAML lines (adsearch.spec.schema): on a small hand-made model tree, then on the study spec."""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from adsearch.spec.schema import format_error, path_and_line, schema_at, yaml_lines
from adsearch.spec.study_spec import StudySpec

# --- a bike: a nested model, an Optional, a discriminated union with Tags, a list -------------------


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Wheel(_Part):
    size: int = 16


class Bell(_Part):
    loud: bool = True


class Motor(_Part):
    kind: Literal["motor"] = "motor"
    watts: int = 250


class Pedals(_Part):
    kind: Literal["pedals"] = "pedals"
    gears: int = 1


def _drive_kind(value) -> str:
    return value.get("kind", "pedals") if isinstance(value, dict) else value.kind


Drive = Annotated[Union[Annotated[Motor, Tag("motor")], Annotated[Pedals, Tag("pedals")]], Discriminator(_drive_kind)]


class Bike(_Part):
    name: str
    front: Wheel = Field(default_factory=Wheel)
    bell: Optional[Bell] = None
    drive: Drive = Field(default_factory=Pedals)
    spokes: list[int] = []


def test_the_walker_follows_nested_models_and_optionals_to_a_field():
    assert schema_at(Bike, ()).problem() == "the spec is a section; name one of its fields: name, front, bell, drive, spokes"
    front = schema_at(Bike, "front")
    assert (front.path, front.models, front.rest) == (("front",), (Wheel,), ())
    assert front.problem() == "front is a section; name one of its fields: size"
    assert schema_at(Bike, "front.size").problem() is None  # a field: no problem
    assert schema_at(Bike, "bell").keys == ["loud"]  # Optional[Bell] is walked as Bell
    ring = schema_at(Bike, "bell.ring")
    assert (ring.path, ring.rest) == (("bell",), ("ring",))
    assert ring.problem() == "no field 'ring' in bell; available: loud"
    assert schema_at(Bike, "name.first").problem() == "name is a value, not a section"
    assert schema_at(Bike, "spokes.0").problem() == "spokes is a value, not a section"  # a field path has no index


def test_the_walker_takes_the_union_branch_the_data_chose_else_all():
    assert schema_at(Bike, "drive").keys == ["kind", "watts", "gears"]  # no data: both branches
    assert schema_at(Bike, "drive", {"drive": {"kind": "motor"}}).keys == ["kind", "watts"]
    assert schema_at(Bike, "drive", {"name": "x"}).keys == ["kind", "gears"]  # left out: the default, Pedals
    assert schema_at(Bike, "drive", Bike(name="x", drive=Motor())).keys == ["kind", "watts"]  # a model, too
    assert schema_at(Bike, "drive.gears", {"drive": {"kind": "motor"}}).problem() == (
        "no field 'gears' in drive; available: kind, watts")


def test_the_walker_follows_an_error_location_through_branch_tags_and_list_indices():
    watts = schema_at(Bike, ("drive", "motor", "watts"), error_loc=True)
    assert (watts.path, watts.models, watts.rest) == (("drive", "watts"), (), ())  # the tag is left out
    assert schema_at(Bike, ("drive", "pedals"), error_loc=True).keys == ["kind", "gears"]
    spoke = schema_at(Bike, ("spokes", 2), error_loc=True)
    assert (spoke.path, spoke.models) == (("spokes", 2), ())


def test_yaml_lines_maps_each_key_path_and_list_item_to_its_line():
    lines = yaml_lines("name: x\nfront:\n  size: 16\nspokes: [1, 2]\n")
    assert lines == {(): 1, ("name",): 1, ("front",): 2, ("front", "size"): 3,
                     ("spokes",): 4, ("spokes", 0): 4, ("spokes", 1): 4}
    assert yaml_lines("") == {}
    assert path_and_line(("front", "size"), lines) == "front.size (line 3)"
    assert path_and_line(("front", "rim", "x"), lines) == "front.rim.x (line 2)"  # the longest prefix it holds
    assert path_and_line(("bell",), lines) == "bell"  # no key of its path is in the YAML: no line
    assert path_and_line(("front",), None) == "front" and path_and_line((), lines) == "(top level)"


def test_format_error_names_the_path_line_and_what_was_given():
    text = "name: x\nfront:\n  size: big\ndrive: {kind: motor, gears: 3}\nhorn: true\n"
    with pytest.raises(ValidationError) as info:
        Bike.model_validate(yaml.safe_load(text))
    assert [format_error(err, yaml_lines(text), root=Bike) for err in info.value.errors()] == [
        "front.size (line 3): Input should be a valid integer, unable to parse string as an integer, got 'big'",
        "drive.gears (line 4): unknown key; allowed: kind, watts",  # the branch chosen, its tag left out
        "horn (line 5): unknown key; allowed: name, front, bell, drive, spokes",
    ]
    with pytest.raises(ValidationError) as info:
        Bike.model_validate({})
    assert [format_error(err, None, root=Bike) for err in info.value.errors()] == ["name: Field required"]


# --- the study spec's own tree -----------------------------------------------------------------------


def test_the_schema_walker_answers_the_keys_at_a_path():
    assert schema_at(StudySpec, "resources.per_trial").keys == ["cpu", "gpu"]
    assert schema_at(StudySpec, "resources.per_trial").problem() == ("resources.per_trial is a section; "
                                                                     "name one of its fields: cpu, gpu")
    assert schema_at(StudySpec, "resources.per_trial.cpu").problem() is None
    assert schema_at(StudySpec, "train.epochs.x").problem() == "train.epochs is a value, not a section"
    assert schema_at(StudySpec, "model.layers.0").problem() == "model.layers is a value, not a section"
    # a discriminated union: the branch the data chose (a left-out optimizer is the default, sgd), else all
    adam = {"train": {"optimizer": {"name": "adam"}}}
    assert schema_at(StudySpec, "train.optimizer", adam).keys == ["name", "lr", "betas", "weight_decay"]
    assert schema_at(StudySpec, "train.optimizer", {"train": {}}).keys == [
        "name", "lr", "momentum", "weight_decay", "nesterov"]
    assert schema_at(StudySpec, "train.optimizer").keys == [
        "name", "lr", "momentum", "weight_decay", "nesterov", "betas"]
    assert schema_at(StudySpec, "train.optimizer.momentum", adam).problem() == (
        "no field 'momentum' in train.optimizer; available: name, lr, betas, weight_decay")


def test_the_schema_walker_follows_an_error_location_through_items_and_branch_tags():
    dim = schema_at(StudySpec, ("search", "space", "pruning.min_channels", "DistributionDim"), error_loc=True)
    assert dim.path == ("search", "space", "pruning.min_channels")  # the branch tag is left out
    assert dim.keys == ["distribution", "low", "high", "step"]
    assert schema_at(StudySpec, ("search", "space", "x", "ValuesDim"), error_loc=True).keys == ["values"]
    assert schema_at(StudySpec, ("search", "space", "x"), error_loc=True).keys == [
        "values", "distribution", "low", "high", "step"]
    assert schema_at(StudySpec, ("search", "objectives", 0), error_loc=True).keys == ["metric", "mode"]
    betas = schema_at(StudySpec, ("train", "optimizer", "adamw", "betas", 1), error_loc=True)
    assert betas.path == ("train", "optimizer", "betas", 1) and betas.models == ()
