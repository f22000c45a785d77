"""A study read back: the study directory (paths, lock, atomic writes, checkpoints, live entries),
a trial as every reader sees it (`TrialRow`), Pareto sets and the recommendation, the view computed once.

`load_study(dir)` gives it to a notebook as DataFrames; `read_study(dir)` to the report and the CLI.
"""

from adsearch._lazy import lazy_exports

_OWNERS = {
    "load_study": "study_results", "StudyResults": "study_results",
    "read_study": "reading", "StudyRecord": "reading", "collect_rows": "reading", "study_state": "reading",
    "StudyDir": "study_dir", "find_studies": "study_dir", "atomic_write": "study_dir",
    "TrialRow": "rows", "pareto_front": "pareto", "recommended": "pareto", "hypervolume": "pareto",
    "ReportView": "view", "report_view": "view", "view_of": "view",
    "trial_network": "trial_network", "live_trials": "live",
}
__all__ = list(_OWNERS)
__getattr__, __dir__ = lazy_exports(__name__, _OWNERS)
