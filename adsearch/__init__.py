"""adsearch: search activation-density pruning schedules; read the Pareto report; export the network.

`adsearch.load_model(path)` loads a network written by `adsearch export` (imported on first use,
so `import adsearch` stays cheap).
"""

__all__ = ["load_model"]


def __getattr__(name: str):
    if name == "load_model":
        from adsearch.export import load_model

        return load_model
    raise AttributeError(f"module 'adsearch' has no attribute {name!r}")
