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

The cache is shared by every study of the machine (`search.prefix_cache`, default
`$ADSEARCH_PREFIX_CACHE`, else `$ADSEARCH_CACHE/prefixes`, else `~/.cache/adsearch/prefixes`, beside the
decoded images): the key
holds everything that decides a state and nothing of the study, so a study run again, with a larger
budget, or with another search space over the same recipe starts from every state already trained.
Entries are files `<recipe>-e<epoch>-<key>.pt`, written atomically and only once (the first writer
wins; a second writer of the same entry wrote the same state), beside `recipes/<recipe>.json`, which
says what the recipe is (study, model, data, seed) for `adsearch cache`. An entry that cannot be read
is skipped with a warning, as a torn checkpoint is. The cache is bounded (`search.prefix_cache_gb`):
an entry's file time is set when it is read, and after each write the least recently used entries
go until the cache fits. A study may lose an entry it is about to read to another's eviction: it
then trains that part. On a multi-node cluster each node keeps its own cache unless the folder is
on storage every node sees; either way a trial only ever starts from a state of its own path.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from adsearch.data.image_cache import CACHE_ENV
from adsearch.models.saving import save_torch
from adsearch.spec.space import ValuesDim
from adsearch.spec.study_spec import StudySpec

PREFIX_VERSION = 2
"""Part of every key: a change to what an entry holds or how training runs makes old entries unused."""
PREFIX_CACHE_ENV = "ADSEARCH_PREFIX_CACHE"
"""Environment variable holding the prefix cache's default folder (else `$ADSEARCH_CACHE/prefixes`)."""
DECISION_FIELDS = ("method", "compress_at", "start", "every", "max_rounds", "criterion", "widths", "keep",
                   "target_density", "min_channels", "round_to", "weights")
"""Pruning fields that act only at a compression decision; they enter a key through its events."""


def cache_dir(spec: StudySpec) -> Path:
    """The prefix cache's folder for `spec`: `search.prefix_cache`, else `default_cache_dir()`."""
    if spec.search.prefix_cache:
        return Path(os.path.expandvars(spec.search.prefix_cache)).expanduser().resolve()
    return default_cache_dir()


def default_cache_dir() -> Path:
    """`$ADSEARCH_PREFIX_CACHE`, else `$ADSEARCH_CACHE/prefixes`, else `~/.cache/adsearch/prefixes`."""
    if os.environ.get(PREFIX_CACHE_ENV):
        return Path(os.environ[PREFIX_CACHE_ENV]).expanduser().resolve()
    return (Path(os.environ.get(CACHE_ENV) or "~/.cache/adsearch").expanduser() / "prefixes").resolve()


def cache_settings(spec: StudySpec) -> dict | None:
    """What a trial of `spec`'s study needs to use the prefix cache (`PrefixCache.of`), or None when
    `search.share_prefixes` is off: plain values, as Ray hands them to a worker."""
    if not spec.search.share_prefixes:
        return None
    return {"directory": str(cache_dir(spec)), "epochs": branch_epochs(spec),
            "limit": int(spec.search.prefix_cache_gb * 1e9), "about": recipe_about(spec)}


def recipe_about(spec: StudySpec) -> dict:
    """What `adsearch cache` says about a recipe: the study that first trained it, and its outline."""
    model = spec.model.arch if spec.model.layers is None else f"{spec.model.arch} {spec.model.layers}"
    return {"study": spec.name, "model": model, "dataset": spec.data.dataset, "seed": spec.seed,
            "epochs": spec.train.epochs}


def branch_epochs(spec: StudySpec) -> list[int]:
    """The epochs where trials of `spec`'s study can part: every epoch the base spec or a searched
    schedule (`pruning.compress_at`, or `pruning.start`/`pruning.every`) may compress at, before the
    last epoch, and the last epoch; and the rungs of `search.early_stop`, so that a trial reports each
    (a trial reports only the epochs it trains and those it starts from in the cache)."""
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
    if spec.search.early_stop is not None:  # a trial reports each rung, also one that starts past it from the cache
        epochs.update(spec.search.early_stop.rungs)
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
    """The prefix cache (a folder shared by studies), as one trial uses it.

    `owner` is the trial using it (its number; -1 the baseline): the entries it writes name it, so
    a trial that starts from an entry knows whose work it reuses. `limit`: the bytes the cache may
    hold (None: no bound); `about`: what `recipes/<recipe>.json` says of a recipe it writes first.
    """

    def __init__(self, directory: Path | str, epochs: Iterable[int], owner: int | None = None, *,
                 limit: int | None = None, about: dict | None = None):
        self.directory = Path(directory)
        self.epochs = frozenset(epochs)
        self.owner = owner
        self.limit, self.about = limit, about

    @classmethod
    def of(cls, settings: dict | None, owner: int | None = None) -> PrefixCache | None:
        """The cache `cache_settings` describes (None: none), used by trial `owner`."""
        if settings is None:
            return None
        return cls(settings["directory"], settings["epochs"], owner, limit=settings.get("limit"),
                   about=settings.get("about"))

    def __repr__(self) -> str:
        return f"PrefixCache({str(self.directory)!r}, epochs={sorted(self.epochs)})"

    def path(self, recipe: str, events: list, epoch: int) -> Path:
        """The entry for the state at `epoch` after compression `events` under recipe key `recipe`."""
        return self.directory / f"{recipe}-e{epoch:04d}-{_hash([recipe, events, epoch])}.pt"

    def load(self, path: Path) -> dict | None:
        """The entry at `path`, or None if there is none or it cannot be read (then with a warning).
        A hit marks the entry used now (least recently used entries go first)."""
        if not path.is_file():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:  # evicted by another study meanwhile: train this part
            return None
        except Exception as exc:  # noqa: BLE001 - a torn or corrupt file: train this part instead
            warnings.warn(f"prefix cache entry {path} is unreadable ({exc}); training that part instead", stacklevel=2)
            return None
        try:
            os.utime(path)
        except OSError:
            pass
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
        self._describe(_recipe_of(path))
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
        finally:
            Path(tmp).unlink(missing_ok=True)
        if self.limit is not None:
            evict(self.directory, self.limit, keep=path)
        return True

    def _describe(self, recipe: str) -> None:
        """Write `recipes/<recipe>.json` (what `adsearch cache` shows) unless it is there."""
        path = self.directory / "recipes" / f"{recipe}.json"
        if self.about is None or path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({**self.about, "first_written": time.strftime("%Y-%m-%d %H:%M:%S")}, f)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)


# --- the cache as a whole: what `adsearch cache` lists, sizes, bounds and clears ------------------------


@dataclass(frozen=True)
class RecipeEntries:
    """The entries of one recipe in the cache."""

    recipe: str
    entries: int
    bytes: int
    last_used: float
    """The newest file time of its entries (a read sets it)."""
    about: dict
    """`recipes/<recipe>.json`: study, model, dataset, seed, epochs, first_written ({} if missing)."""


def _recipe_of(entry: Path) -> str:
    """The recipe key an entry's file name starts with (`PrefixCache.path`)."""
    return entry.name.split("-e", 1)[0]


def _entries(directory: Path) -> list[tuple[Path, os.stat_result]]:
    out = []
    for p in directory.glob("*.pt") if directory.is_dir() else []:
        try:
            out.append((p, p.stat()))
        except FileNotFoundError:  # evicted meanwhile
            continue
    return out


def cache_size(directory: Path | str) -> tuple[int, int]:
    """(entries, bytes) of the prefix cache in `directory` (0, 0 if there is none)."""
    files = _entries(Path(directory))
    return len(files), sum(st.st_size for _, st in files)


def recipes(directory: Path | str) -> list[RecipeEntries]:
    """The cache's entries grouped by recipe, the most recently used first."""
    directory = Path(directory)
    groups: dict[str, list[os.stat_result]] = {}
    for p, st in _entries(directory):
        groups.setdefault(_recipe_of(p), []).append(st)
    out = []
    for recipe, stats in groups.items():
        try:
            about = json.loads((directory / "recipes" / f"{recipe}.json").read_text())
        except (OSError, ValueError):
            about = {}
        out.append(RecipeEntries(recipe, len(stats), sum(s.st_size for s in stats), max(s.st_mtime for s in stats),
                                 about))
    return sorted(out, key=lambda r: -r.last_used)


def evict(directory: Path | str, limit: int, keep: Path | None = None) -> tuple[int, int]:
    """Delete the least recently used entries of the cache in `directory` until it holds at most
    `limit` bytes (never `keep`, the entry just written); returns (entries, bytes) deleted."""
    files = sorted(_entries(Path(directory)), key=lambda f: f[1].st_mtime)
    total, gone, freed = sum(st.st_size for _, st in files), 0, 0
    for p, st in files:
        if total <= limit:
            break
        if keep is not None and p == keep:
            continue
        p.unlink(missing_ok=True)
        total, gone, freed = total - st.st_size, gone + 1, freed + st.st_size
    if gone:
        _forget_empty_recipes(Path(directory))
    return gone, freed


def clear(directory: Path | str, recipe: str | None = None) -> tuple[int, int]:
    """Delete every entry of the cache in `directory` (or only recipe `recipe`'s, a key or its start);
    returns (entries, bytes) deleted."""
    gone, freed = 0, 0
    for p, st in _entries(Path(directory)):
        if recipe is None or p.name.startswith(recipe):
            p.unlink(missing_ok=True)
            gone, freed = gone + 1, freed + st.st_size
    _forget_empty_recipes(Path(directory))
    return gone, freed


def _forget_empty_recipes(directory: Path) -> None:
    """Delete the `recipes/` notes of recipes with no entry left."""
    notes = directory / "recipes"
    if not notes.is_dir():
        return
    held = {_recipe_of(p) for p, _ in _entries(directory)}
    for note in notes.glob("*.json"):
        if note.stem not in held:
            note.unlink(missing_ok=True)
