"""The project's one exception family: user-facing errors the CLI prints without a traceback.

Exit codes (`adsearch.cli`): 2 for what the user named being unusable (an invalid spec, missing
data, a folder that is not a study or cannot be read), 130 for a study stopped early that can
resume, 1 for every other `AdsearchError`.
"""


class AdsearchError(Exception):
    """A problem the user can fix (bad spec, missing data, unknown study); printed as is."""


class DataError(AdsearchError):
    """The data a spec names is missing, incomplete or unreadable (exit code 2, like a bad spec)."""


class StudyDirError(AdsearchError):
    """A study directory that cannot be used as asked (exit code 2): no study there, a file of it
    unreadable, or a folder adsearch did not make where it would write or delete."""


class StudyInterrupted(AdsearchError):
    """The study stopped before its budget was spent (Ctrl-C, a stopped cluster, its failure
    limit); it can resume (exit code 130)."""
