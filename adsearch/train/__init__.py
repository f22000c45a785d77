"""One trial, knowing nothing of Ray: epochs, density counts, cuts, evaluation, the checkpoint and
exact resume (`trainer`), one training step and pass (`step`), and the prefix cache (`prefixes`).

`run_trial(spec)` trains one trial to its end and returns its metrics.
"""

from adsearch._lazy import lazy_exports

_OWNERS = {
    "run_trial": "trainer", "build_model": "trainer", "TrialDiverged": "trainer", "steps_per_epoch": "trainer",
    "TrainStep": "step", "Precision": "step", "resolve_device": "step", "evaluate": "step",
    "PrefixCache": "prefixes", "branch_epochs": "prefixes",
}
__all__ = list(_OWNERS)
__getattr__, __dir__ = lazy_exports(__name__, _OWNERS)
