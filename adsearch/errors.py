"""The project's one exception family: user-facing errors the CLI prints without a traceback."""


class AdsearchError(Exception):
    """A problem the user can fix (bad spec, missing data, unknown study); printed as is."""


class DataError(AdsearchError):
    """The data a spec names is missing, incomplete or unreadable (exit code 2, like a bad spec)."""
