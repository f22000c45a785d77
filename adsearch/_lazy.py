"""Lazy re-exports: a package names its public surface in `__all__` and imports each name from the
module that owns it on first use, so `import adsearch` (or `adsearch.results`) stays cheap."""

from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, owners: dict[str, str]):
    """`(__getattr__, __dir__)` for `package`: attribute NAME comes from module `owners[NAME]`
    (relative to `package`, e.g. 'reading' for `adsearch.results.reading`), imported when first
    asked for and then kept on the package."""

    def __getattr__(name: str):
        if name not in owners:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{owners[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *owners})

    return __getattr__, __dir__
