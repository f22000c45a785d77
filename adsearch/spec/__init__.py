"""The study spec: its Pydantic models section by section, YAML loading with `dotted.path (line N)`
errors, the one schema walker, and the search-space dimensions.

`load_spec` / `parse_spec` read a spec; `StudySpec` is what every later stage takes.
"""

from adsearch._lazy import lazy_exports

_OWNERS = {
    "load_spec": "loading", "parse_spec": "loading", "parse_overrides": "loading", "validate_spec": "loading",
    "spec_warnings": "loading", "apply_params": "loading", "SpecError": "loading",
    "StudySpec": "study_spec", "json_schema": "study_spec",
    "ModelSpec": "sections", "DataSpec": "sections", "SearchSpec": "sections", "ResourcesSpec": "sections",
    "ReportSpec": "sections", "TrainSpec": "training", "PruningSpec": "pruning",
    "Dimension": "space", "space_size": "space",
}
__all__ = list(_OWNERS)
__getattr__, __dir__ = lazy_exports(__name__, _OWNERS)
