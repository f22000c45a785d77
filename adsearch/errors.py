"""The project's one exception family: user-facing errors the CLI prints without a traceback.

Exit codes (`adsearch.cli`): 2 for what the user named being unusable (an invalid spec, missing
data, resources the machine cannot give, a folder that is not a study or cannot be read), 130 for
a study stopped early that can resume (143 when SIGTERM stopped it), 1 for every other
`AdsearchError`.
"""


class AdsearchError(Exception):
    """A problem the user can fix (bad spec, missing data, unknown study); printed as is."""


class DataError(AdsearchError):
    """The data a spec names is missing, incomplete or unreadable (exit code 2, like a bad spec)."""


class StudyDirError(AdsearchError):
    """A study directory that cannot be used as asked (exit code 2): no study there, a file of it
    unreadable, or a folder adsearch did not make where it would write or delete."""


class ResourceError(AdsearchError):
    """What a spec asks of the machine that runs it and that machine can never give: more CPUs or
    GPUs per trial than a local Ray has, a CUDA device where there is none, bf16 on a GPU without it
    (exit code 2, like a bad spec)."""


class StudyInterrupted(AdsearchError):
    """The study stopped before its budget was spent (Ctrl-C, a stopped cluster, its failure
    limit); it can resume (exit code 130)."""


def one_line(exc: BaseException, *, limit: int = 300) -> str:
    """An exception as one short line, `Type: message`, for a message that already names where it
    came from. Unwraps what libraries wrap: a Ray trial's `cause`, SQLAlchemy's `orig`, and
    `torch.load`'s advice to turn `weights_only` off (unsafe, and no help for a file that is not a
    checkpoint). From a traceback printed into the text, the last line (the exception) is kept."""
    exc = getattr(exc, "cause", None) or exc
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip()
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = (lines[-1] if "Traceback (most recent call last)" in text else lines[0]) if lines else ""
    name = type(inner).__name__
    return f"{name}: {line}"[:limit] if line else name
