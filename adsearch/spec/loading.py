"""Reading a study spec: YAML text (plus `--set` overrides) in, a validated `StudySpec` out, or a
`SpecError` listing every problem at once as `dotted.path (line N): message` (`adsearch.spec.schema`
finds the line and walks the models for the path), the search space's paths and values included.
`apply_params(spec, params)` puts sampled values into a spec and validates it again as a whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from adsearch.errors import AdsearchError
from adsearch.spec.schema import format_error, path_and_line, schema_at, yaml_lines
from adsearch.spec.space import Dimension, DistributionDim, ValuesDim, decode_choice, probe_values, set_path
from adsearch.spec.study_spec import StudySpec


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


def load_spec(path: str | Path, overrides: Mapping[str, Any] | Iterable[str] = ()) -> StudySpec:
    """Read and validate a YAML spec file with `overrides` put in (see `parse_spec`).

    Args:
        overrides: dotted path -> value, or `--set`-style `path=value` strings whose values are
            read as YAML (`["train.epochs=5", "pruning.compress_at=[3, 6]"]`).

    Raises:
        SpecError: an unreadable file, a malformed override, or every problem of the spec at once.
    """
    path = Path(path)
    overrides = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(overrides)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(str(path), [f"cannot read the spec: {exc.strerror}"]) from None
    return parse_spec(text, str(path), overrides)


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """`path=value` pairs (`--set`'s), each value read as YAML (so `1`, `0.5`, `[1, 2]`, `cpu` all work).

    Raises:
        SpecError: an item without `=` or a path, or a value that is not valid YAML.
    """
    if isinstance(items, str):
        items = [items]
    overrides = {}
    for item in items:
        path, sep, text = item.partition("=")
        if not sep or not path.strip():
            raise SpecError("--set", [f"{item!r}: expected dotted.path=value, e.g. train.epochs=1"])
        try:
            overrides[path.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise SpecError("--set", [f"{item!r}: the value is not valid YAML"]) from None
    return overrides


def spec_warnings(spec: StudySpec) -> list[str]:
    """What is valid but likely not meant: compression epochs the training never reaches, and
    `train.channels_last` on a CPU (where the trainer keeps the default layout: see
    `adsearch.train.step.CHANNELS_LAST_DEVICES`).

    `--set train.epochs=1` is how a study is smoke-tested, so epochs in `pruning.compress_at` (or a
    `pruning.start`) at or after `train.epochs` are not an error: there is no training after them, so
    they do not happen.
    """
    found = _late_compressions(spec)
    if spec.train.channels_last and spec.train.device == "cpu":
        found.append("train.channels_last applies on a GPU only: on the cpu the network keeps the default "
                     "layout (no faster there, and torch's oneDNN gets a narrow 1x1 stride-2 conv's weight "
                     "gradient wrong in NHWC)")
    if spec.search.keep_prefixes:
        found.append("search.keep_prefixes no longer does anything: the prefix cache is shared by studies and kept, "
                     "bounded by search.prefix_cache_gb (`adsearch cache` lists and clears it)")
    return found


def _late_compressions(spec: StudySpec) -> list[str]:
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
