"""Walking a Pydantic model tree and saying where a YAML problem is.

Generic over the root model: nothing here knows the study spec. `yaml_lines` maps each key path of
a YAML document to its line; `schema_at(root, path)` walks the model tree under `root` along a dotted
field path or a pydantic error location, through nested models, Optional, Annotated and unions; and
`format_error` turns one pydantic error into `dotted.path (line N): message`.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Discriminator, Tag


# --- YAML lines -------------------------------------------------------------------------------


def yaml_lines(text: str) -> dict[tuple, int]:
    """Map each key path in a YAML document to the (1-based) line where it appears."""
    lines: dict[tuple, int] = {}

    def walk(node, path: tuple):
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = path + (key.value,)
                lines[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


def _line_of(lines: dict[tuple, int], loc: tuple) -> int | None:
    """The line of the longest prefix of `loc` that the YAML holds."""
    loc = tuple(loc)
    return next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)


def path_and_line(loc: tuple, lines: dict[tuple, int] | None) -> str:
    """`dotted.path (line N)` for `loc` (the line where the YAML has it)."""
    path = ".".join(str(p) for p in loc) or "(top level)"
    line = _line_of(lines, loc) if lines else None
    return f"{path} (line {line})" if line else path


# --- pydantic errors as lines -----------------------------------------------------------------


_FIELD_IN_MESSAGE = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+): (.*)$", re.S)


def format_error(err: dict, lines: dict[tuple, int] | None, *, root: type[BaseModel]) -> str:
    """One error of `root.model_validate` (an item of `ValidationError.errors()`) as
    `dotted.path (line N): message`: union branch tags left out of the path, an unknown key answered
    with the keys allowed there, and the value given added where the message lacks it."""
    place = schema_at(root, err["loc"], error_loc=True)
    loc = place.path + place.rest
    msg = err["msg"].removeprefix("Value error, ")
    named = _FIELD_IN_MESSAGE.match(msg)
    if named and tuple(named.group(1).split("."))[: len(loc)] == loc:
        # a cross-field rule that names the field it is about: report it there, with its line
        loc, msg = tuple(named.group(1).split(".")), named.group(2)
    where = path_and_line(loc, lines)
    if err["type"] == "extra_forbidden":
        known = place.models and len(place.rest) == 1  # the walk stopped at the unknown key itself
        msg = "unknown key; " + (f"allowed: {', '.join(place.keys)}" if known else "see `adsearch schema`")
    elif "input" in err and err["type"] != "missing" and not isinstance(err["input"], dict):
        given = err["input"]
        if repr(given) not in msg and f"got {given}" not in msg:
            msg = f"{msg}, got {given!r}"
    return f"{where}: {msg}"


# --- the schema walker ------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaPlace:
    """Where a path leads in a model tree (`schema_at`): `path`, the parts walked (an error
    location's union-branch tags left out); `models`, the section there (its model, or each branch
    of a union whose branch is not known; none at a value); `rest`, the parts the walk could not
    follow (from a key the section lacks, or past a value)."""

    path: tuple
    models: tuple = ()
    rest: tuple = ()

    @property
    def keys(self) -> list[str]:
        return list(dict.fromkeys(name for model in self.models for name in model.model_fields))

    def problem(self) -> str | None:
        """Why the path names no field of the spec (a section, an unknown key, a value's part), or None."""
        here, keys = ".".join(str(p) for p in self.path) or "the spec", ", ".join(self.keys)
        if self.rest and self.models:
            return f"no field {self.rest[0]!r} in {here}; available: {keys}"
        if self.rest:
            return f"{here} is a value, not a section"
        return f"{here} is a section; name one of its fields: {keys}" if self.models else None


def schema_at(root: type[BaseModel], path: str | tuple, data: Any = None, *, error_loc: bool = False) -> SchemaPlace:
    """Walk the model tree under `root` along `path`, through nested models, Optional, Annotated and unions.

    `path` is a dotted field path ("train.optimizer.lr", or its parts as a tuple), or with `error_loc`
    a pydantic error location, whose list indices and mapping keys are walked too and whose union
    branch tags (a discriminated union's `Tag`s) choose the branch. Elsewhere a union's branch is the
    one its `Discriminator` picks from `data` (the document, or an instance of `root`), else all count.
    """
    parts = tuple(path.split(".")) if isinstance(path, str) else tuple(p for p in path if p != "[key]")
    walked: list = []
    tp, value = root, data
    for i, part in enumerate(parts):
        tp, branches, models = _peel(tp, value)
        origin, args = get_origin(tp), get_args(tp)
        if branches and error_loc:  # pydantic names the branch taken
            tp = branches.get(part)
            if tp is None:  # a branch that is a value ('int', "literal['M']")
                return SchemaPlace(tuple(walked), (), parts[i + 1:])
        elif error_loc and origin in (list, tuple, dict) and args:  # a list index or a mapping key
            walked.append(part)
            tp = args[part] if origin is tuple and isinstance(part, int) and part < len(args) else args[-1]
            value = _child(value, part)
        else:
            fields = {name: f for model in reversed(models) for name, f in model.model_fields.items()}
            if part not in fields:
                return SchemaPlace(tuple(walked), tuple(models), parts[i:])
            walked.append(part)
            field = fields[part]
            tp = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
            value = _child(value, part, field)
    return SchemaPlace(tuple(walked), tuple(_peel(tp, value)[2]))


def _peel(tp, value=None) -> tuple[Any, dict, list[type[BaseModel]]]:
    """`tp` without Annotated and Optional: (the type, a union's branches by tag, the models there).

    A branch's tag is its `Tag`, else its type's name, as in pydantic's error locations. The models
    are `tp` if it is one, else the union branch that its `Discriminator` picks from `value`, else all.
    """
    discriminator = None
    while get_origin(tp) is Annotated:
        discriminator = next((m for m in tp.__metadata__ if isinstance(m, Discriminator)), discriminator)
        tp = tp.__origin__
    if get_origin(tp) not in (Union, types.UnionType):
        return tp, {}, [tp] if isinstance(tp, type) and issubclass(tp, BaseModel) else []
    members = [m for m in get_args(tp) if m is not type(None)]
    if len(members) == 1:
        return _peel(members[0], value)
    branches = {}
    for member in members:
        base = _peel(member)[0]
        tags = [t.tag for t in getattr(member, "__metadata__", ()) if isinstance(t, Tag)]
        branches[tags[0] if tags else getattr(base, "__name__", str(base))] = base
    how = getattr(discriminator, "discriminator", None)
    try:
        tag = (how(value) if callable(how) else _child(value, how)) if how and value is not None else None
    except Exception:  # noqa: BLE001 - a value the union itself rejects
        tag = None
    chosen = [branches[tag]] if isinstance(tag, str) and tag in branches else branches.values()
    return tp, branches, list(dict.fromkeys(m for branch in chosen for m in _peel(branch)[2]))


def _child(value, part, field=None) -> Any:
    """Item or field `part` of a document value (None: not known); a field left out is its default."""
    if value is None or isinstance(value, BaseModel):
        return getattr(value, str(part), None)
    try:
        return value[part]
    except (KeyError, IndexError, TypeError):
        return None if field is None or field.is_required() else field.get_default(call_default_factory=True)
