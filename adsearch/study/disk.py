"""What a study will write to disk, estimated before it starts, against the free space there.

A study's folder holds its reports (`REPORT_BYTES`), each run's small files (`RUN_FILES`: its spec,
rows, Ray's results and logs), Ray Tune's trial checkpoints (`ray/`: each run keeps its last
`KEPT_CHECKPOINTS`) and the prefix cache (`prefixes/`: one training state per branch epoch of
every path the trials take; `adsearch.train.prefixes`). A checkpoint is the network's state and
the optimizer's (momentum: as much again; Adam's two moments: twice as much), at most the
baseline's size: a pruned trial's is smaller. So the study writes, besides the reports,

- at least the baseline's: its kept checkpoints and, with `search.share_prefixes`, the state at
  each branch epoch of its path, which every trial starts on;
- at most that for every run (the baseline and each search trial) at the baseline's size.

(The decoded-image cache, `data.cache`, is written as the data first loads, before this check.)
`check_space` warns when the free space on the folder's filesystem is below either. While the
study runs, a file it cannot write there (`write_errors`) ends it with one `DiskError`: the path,
the free space, what the study needs, and the command that goes on once there is room.
"""

from __future__ import annotations

import contextlib
import errno
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from torch import nn

from adsearch.errors import AdsearchError, DiskError
from adsearch.spec.study_spec import StudySpec
from adsearch.train.prefixes import branch_epochs

KEPT_CHECKPOINTS = 2
"""Checkpoints Ray keeps per trial (`tune.CheckpointConfig(num_to_keep=...)` in `experiment.tuner`):
if the newest is torn by a crash, the trial falls back to the one before."""
CHECKPOINT_EXTRA = 32_000
"""Bytes of a checkpoint besides the network and the optimizer: the RNG states, the epochs' records
(18 kB after 3 epochs of the tests' tiny study)."""
RUN_FILES = 100_000
"""Bytes of a run's other files: Ray's results, params and logs, its Optuna rows (40-80 kB each in
the tiny study)."""
REPORT_BYTES = 5_000_000
"""The reports: `report.html` holds plotly's script (4.9 MB), the plots and tables the rest."""


def checkpoint_bytes(spec: StudySpec, model: nn.Module) -> int:
    """The size of a trial checkpoint of `model` under `spec`'s optimizer: its state (parameters and
    buffers) and the optimizer's per-parameter state."""
    state = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    opt = spec.train.optimizer
    slots = 2 if opt.name in ("adam", "adamw") else int(getattr(opt, "momentum", 0) > 0)
    return state + slots * params + CHECKPOINT_EXTRA


@dataclass(frozen=True)
class DiskEstimate:
    """What a study writes in its folder, in bytes (see the module doc)."""

    checkpoint: int
    """One checkpoint at the baseline's size."""
    runs: int
    """The baseline and the search trials."""
    branches: int
    """Prefix-cache states on one path (0 without `search.share_prefixes`)."""

    @classmethod
    def of(cls, spec: StudySpec, checkpoint: int) -> DiskEstimate:
        branches = len(branch_epochs(spec)) if spec.search.share_prefixes else 0
        return cls(checkpoint=checkpoint, runs=spec.search.trials + int(spec.search.baseline), branches=branches)

    @property
    def per_run(self) -> int:
        return (KEPT_CHECKPOINTS + self.branches) * self.checkpoint + RUN_FILES

    @property
    def at_least(self) -> int:
        return REPORT_BYTES + self.per_run

    @property
    def up_to(self) -> int:
        return REPORT_BYTES + self.runs * self.per_run

    def breakdown(self) -> str:
        cache = f" and {self.branches} prefix-cache states" if self.branches else ""
        return (f"{KEPT_CHECKPOINTS} Ray checkpoints{cache} of up to {size(self.checkpoint)} each, for the "
                f"baseline at least and for each of its {self.runs} runs at most, and the reports")


def free_bytes(path: Path) -> tuple[Path, int]:
    """The nearest existing folder at or above `path`, and the bytes free to us on its filesystem."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path, shutil.disk_usage(path).free


def check_space(folder: Path, estimate: DiskEstimate, warn: Callable[[str], None]) -> None:
    """Warn when `folder`'s filesystem has less free space than the study will (or may) write there,
    less what its folder holds already (a study resumed)."""
    where, free = free_bytes(folder)
    written = folder_bytes(folder)
    least, most = max(0, estimate.at_least - written), max(0, estimate.up_to - written)
    if free >= most:
        return
    will = "will not fit" if free < least else "may not fit"
    more = f" more (it holds {size(written)} already)" if written else ""
    warn(f"the study {will} on the filesystem of {where}: {size(free)} free there, and the study writes at least "
         f"{size(least)} and up to {size(most)}{more} ({estimate.breakdown()}); free some space or choose another "
         "--reports folder")


def folder_bytes(folder: Path) -> int:
    """The bytes of the files under `folder` (0 if there is none)."""
    total = 0
    for path in folder.rglob("*") if folder.is_dir() else ():
        try:
            total += path.stat().st_size if path.is_file() else 0
        except OSError:  # removed meanwhile
            pass
    return total


def size(n: int) -> str:
    """Bytes for a person: '812 B', '41.8 kB', '147 MB', '1.3 GB'."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{n} B"


WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})
"""The errors only a write gets, and the machine, not the spec, causes (a missing or unreadable file
is another matter, said where it is read)."""


def write_failure(exc: BaseException) -> OSError | None:
    """The `OSError` of a failed write that `exc` is or was raised from (SQLite's 'database or disk
    is full' as ENOSPC), else None. Not a network error, nor one of ours (already said as it should)."""
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, AdsearchError):
        if isinstance(seen, OSError) and not isinstance(seen, ConnectionError) and seen.errno in WRITE_ERRNOS:
            return seen
        if "database or disk is full" in str(seen):
            return OSError(errno.ENOSPC, "database or disk is full")
        seen = seen.__cause__ or seen.__context__
    return None


WRITE_FAILURE = re.compile(r"No space left on device|Disk quota exceeded|Read-only file system|"
                           r"database or disk is full|\[Errno (28|122|30)\]")
"""A failed write, as an error's text reads (a trial's error comes to the driver as text)."""


def is_write_failure(text: str) -> bool:
    """Whether an error's text says a write failed for want of space or permission to write."""
    return bool(WRITE_FAILURE.search(text))


def disk_error(what: str, path: Path, folder: Path, estimate: DiskEstimate | None, again: str) -> DiskError:
    """The one error for a write that failed at `path` (the study's `folder` if unknown) with `what`."""
    where, free = free_bytes(path)
    need = (f" and writes at least {size(estimate.at_least)} and up to {size(estimate.up_to)}: "
            f"{estimate.breakdown()}" if estimate is not None else "")
    return DiskError(
        f"cannot write {'in ' if path == folder else ''}{path}: {what} ({size(free)} free on the filesystem of "
        f"{where}; the study holds {size(folder_bytes(folder))}{need}). What it finished is kept: make room there "
        f"(or choose another --reports folder and move the study), then go on with: {again}")


@contextlib.contextmanager
def write_errors(folder: Path, estimate: DiskEstimate, again: str) -> Iterator[None]:
    """A write that fails in the block (see `write_failure`) as one `DiskError`, which says
    `again`, the command that goes on; what is on disk stays as it is."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - only a write failure is turned; the rest goes on up as it was
        failure = write_failure(exc)
        if failure is None:
            raise
        path = Path(failure.filename) if failure.filename else folder
        raise disk_error(failure.strerror or str(failure), path, folder, estimate, again) from None
