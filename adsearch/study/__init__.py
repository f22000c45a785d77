"""Running a study on Ray Tune with Optuna: the searcher (space, sampler, repeats; the only reader of
Ray's and Optuna's private attributes), Ray start-up and pre-flight, what runs in a worker, the
callbacks, the runner, the scratch controls, the replicates and the live progress. The only
subpackage importing Ray.

`run_study(spec)`, `resume_study(dir)`, `scratch_study(dir)`, `replicate_study(dir, seeds=k)`.
"""

from adsearch._lazy import lazy_exports

_OWNERS = {
    "run_study": "runner", "resume_study": "runner", "scratch_study": "finished", "replicate_study": "finished",
    "check_runnable": "runner",
    "StudyResult": "runner", "Live": "callbacks", "Searcher": "searcher", "make_sampler": "searcher",
    "prepare_ray": "cluster", "resource_problems": "cluster", "Monitor": "progress", "Board": "progress",
}
__all__ = list(_OWNERS)
__getattr__, __dir__ = lazy_exports(__name__, _OWNERS)
