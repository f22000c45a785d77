"""The prefix cache: training states that the trials of a study share instead of training twice.

Training is deterministic given what decides it: the recipe (model, data, training, the density
monitor's settings), the seed, the device (type, and a GPU's model), the thread count, the torch
version, and the compression events so far (each round that changed the network: its epoch, the
widths after it, whether the kept channels kept their weights and, if they did, the criterion that
chose them). The pruning fields that have
not acted yet (the schedule `compress_at` or `start`/`every`, `max_rounds`, the criterion and
width rule, `target_density`, `min_channels`, `round_to`, `weights`, `method`) decide nothing
before the first round; after it, the events carry what they decided. Bit-for-bit equality with training from
scratch holds on a CPU; a GPU's kernels need not be deterministic, so there a shared state is one
equally valid run of the same epochs. Two trials that agree on all of it up to epoch `e` hold the same network at `e`: the first
to get there keeps the state, the others start from it. The baseline (no compression events)
fills the path every trial starts on.

An entry is the state at a *branch epoch* after that epoch's training and evaluation, before its
compression decision: the trainer's checkpoint, the epoch's record and its channel densities. The
branch epochs are every epoch the base spec or the search space may compress at, and the last
epoch (`branch_epochs`): a trial whose whole path is kept finishes without training.

Entries are files `prefixes/e<epoch>-<key>.pt` in the study directory, written atomically and
only once (the first writer wins; a second writer of the same entry wrote the same state). An
entry that cannot be read is skipped with a warning, as a torn checkpoint is. On a multi-node
cluster the folder must be on storage every node sees, like the study's `ray/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch

from adsearch.models.saving import save_torch
from adsearch.spec.space import ValuesDim
from adsearch.spec.study_spec import StudySpec

PREFIX_VERSION = 1
"""Part of every key: a change to what an entry holds or how training runs makes old entries unused."""
DECISION_FIELDS = ("method", "compress_at", "start", "every", "max_rounds", "criterion", "widths", "keep",
                   "target_density", "min_channels", "round_to", "weights")
"""Pruning fields that act only at a compression decision; they enter a key through its events."""


def branch_epochs(spec: StudySpec) -> list[int]:
    """The epochs where trials of `spec`'s study can part: every epoch the base spec or a searched
    schedule (`pruning.compress_at`, or `pruning.start`/`pruning.every`) may compress at, before the
    last epoch, and the last epoch."""
    last = spec.train.epochs
    pruning = spec.pruning
    epochs = set(pruning.schedule(last))
    space = spec.search.space
    dim = space.get("pruning.compress_at")
    if isinstance(dim, ValuesDim):
        for choice in dim.values:
            epochs.update(choice if isinstance(choice, list) else [])
    if "pruning.start" in space or "pruning.every" in space:
        for start in _choices(space.get("pruning.start"), pruning.start):
            for every in _choices(space.get("pruning.every"), pruning.every):
                if isinstance(start, int) and start >= 1 and (every is None or isinstance(every, int) and every >= 1):
                    epochs.update(pruning.model_copy(update={"compress_at": [], "start": start, "every": every})
                                  .schedule(last))
    return sorted({e for e in epochs if isinstance(e, int) and 1 <= e < last} | {last})


def _choices(dim, base) -> list:
    """The values a searched integer field can take (its base value when not searched)."""
    if dim is None:
        return [base]
    if isinstance(dim, ValuesDim):
        return list(dim.values)
    step = int(dim.step or 1)
    return list(range(int(dim.low), int(dim.high) + 1, step))


def recipe_key(spec: StudySpec, device: str, threads: int) -> str:
    """The hash of what decides a trial's training before any compression event; `device` is the
    device's type, with a GPU's model ('cpu', 'cuda:NVIDIA H100 80GB HBM3')."""
    data = spec.model_dump(mode="json")
    train = {k: v for k, v in data["train"].items() if k not in ("device", "threads")}
    pruning = {k: v for k, v in data["pruning"].items() if k not in DECISION_FIELDS}
    decided_by = {"version": PREFIX_VERSION, "torch": torch.__version__, "device": device, "threads": threads,
                  "seed": data["seed"], "model": data["model"], "data": data["data"], "train": train,
                  "pruning": pruning}
    return _hash(decided_by)


def _hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:24]


class PrefixCache:
    """The prefix cache of one study (a folder), as one trial uses it.

    `owner` is the trial using it (its number; -1 the baseline): the entries it writes name it, so
    a trial that starts from an entry knows whose work it reuses.
    """

    def __init__(self, directory: Path | str, epochs: Iterable[int], owner: int | None = None):
        self.directory = Path(directory)
        self.epochs = frozenset(epochs)
        self.owner = owner

    def __repr__(self) -> str:
        return f"PrefixCache({str(self.directory)!r}, epochs={sorted(self.epochs)})"

    def path(self, recipe: str, events: list, epoch: int) -> Path:
        """The entry for the state at `epoch` after compression `events` under recipe key `recipe`."""
        return self.directory / f"e{epoch:04d}-{_hash([recipe, events, epoch])}.pt"

    def load(self, path: Path) -> dict | None:
        """The entry at `path`, or None if there is none or it cannot be read (then with a warning)."""
        if not path.is_file():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a torn or corrupt file: train this part instead
            warnings.warn(f"prefix cache entry {path} is unreadable ({exc}); training that part instead", stacklevel=2)
            return None
        if not isinstance(entry, dict) or entry.get("version") != PREFIX_VERSION:
            warnings.warn(f"prefix cache entry {path} is not an entry of this adsearch version; "
                          "training that part instead", stacklevel=2)
            return None
        return entry

    def save(self, path: Path, entry: dict) -> bool:
        """Keep `entry` at `path` unless it is there already; True if this call wrote it.

        The file appears whole or not at all: it is written under a temporary name and then linked
        to its name, which fails if another trial got there first (its state is the same).
        """
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            save_torch({**entry, "version": PREFIX_VERSION, "owner": self.owner}, tmp)
            os.chmod(tmp, 0o644)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            except OSError:  # a filesystem without hard links: the last writer wins, with the same state
                os.replace(tmp, path)
            return True
        finally:
            Path(tmp).unlink(missing_ok=True)


def cache_size(directory: Path | str) -> tuple[int, int]:
    """(entries, bytes) of the prefix cache in `directory` (0, 0 if there is none)."""
    files = [p for p in Path(directory).glob("e*.pt") if p.is_file()] if Path(directory).is_dir() else []
    return len(files), sum(p.stat().st_size for p in files)
