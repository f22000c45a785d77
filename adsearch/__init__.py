"""adsearch: search when and how much to prune a CNN by activation density while it trains; read the
Pareto report; export the network.

The public API (each name imported on first use, so `import adsearch` stays cheap):

    spec = adsearch.load_spec("studies/quickstart.yaml", overrides=["train.epochs=5"])
    adsearch.run_study(spec)                      # or resume_study("reports/quickstart")
    study = adsearch.load_study("reports/quickstart")
    study.trials, study.front, study.recommended, study.history(3), study.model(3)

`run_trial(spec)` trains one trial without Ray; `register_dataset` and `register_model` add a
dataset or an architecture by a decorated function; `export_trial` and `load_model` write a
trial's network out and read it back. docs/api.md shows a notebook session.
"""

from adsearch._lazy import lazy_exports

_OWNERS = {
    "load_spec": "spec.loading",
    "StudySpec": "spec.study_spec",
    "run_study": "study.runner",
    "resume_study": "study.runner",
    "scratch_study": "study.finished",
    "replicate_study": "study.finished",
    "run_trial": "train.trainer",
    "register_dataset": "data.registry",
    "register_model": "models.registry",
    "load_study": "results.study_results",
    "StudyResults": "results.study_results",
    "export_trial": "export",
    "load_model": "export",
    "AdsearchError": "errors",
    "SpecError": "spec.loading",
    "StudyDirError": "errors",
    "StudyInterrupted": "errors",
}
__all__ = list(_OWNERS)
__getattr__, __dir__ = lazy_exports(__name__, _OWNERS)
