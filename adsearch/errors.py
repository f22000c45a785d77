"""The project's one exception family: user-facing errors the CLI prints without a traceback.

Exit codes (`adsearch.cli`): 2 for what the user named being unusable (an invalid spec, missing
data, resources the machine cannot give, a folder that is not a study or cannot be read, several
problems found before a study starts), 74 for files a study could not write (no space left: the
spec is fine, the machine is not), 130 for
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


class DiskError(AdsearchError):
    """A study's files could not be written: no space left, a quota, a read-only filesystem. The
    spec is fine, the machine is not (exit code 74, sysexits' EX_IOERR); the study resumes once it
    can write."""


class StudyInterrupted(AdsearchError):
    """The study stopped before its budget was spent (Ctrl-C, a stopped cluster, its failure
    limit); it can resume (exit code 130)."""


class PreflightError(AdsearchError):
    """Several problems found before a study starts (its data, sizes, folder, resources, devices),
    each with its fix, said together so that one run finds them all (exit code 2)."""

    def __init__(self, problems: list[AdsearchError]):
        self.problems = problems
        items = ("\n    ".join(str(p).splitlines()) for p in problems)
        super().__init__(f"the study cannot start, {len(problems)} problems:\n" + "\n".join(f"  - {i}" for i in items))


class Problems:
    """The pre-flight checks' problems, gathered: each check runs whatever the others found, and
    `raise_found` raises them together."""

    def __init__(self) -> None:
        self.found: list[AdsearchError] = []

    def check(self, check, *args, **kwargs):
        """`check(*args, **kwargs)`, or None with its `AdsearchError` kept."""
        try:
            return check(*args, **kwargs)
        except PreflightError as exc:
            self.found += exc.problems
        except AdsearchError as exc:
            self.found.append(exc)
        return None

    def raise_found(self) -> None:
        """Raise what was found: a problem alone as itself, several as one `PreflightError`."""
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise PreflightError(self.found)


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
