"""What several test modules share: the tiny digits spec, the CLI as a subprocess, a child process
that is always killed, the brute-force Pareto front, and study.db read back with Optuna.

Fixtures built on these (one Ray per session, one thread, the tiny study run once) are in the
root `conftest.py`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import optuna

TINY_SPEC = """\
name: {name}
seed: 0
model: {{arch: vgg, layers: [{width}, M, {width2}]}}
data: {{dataset: digits}}
train: {{epochs: {epochs}, batch_size: 32, optimizer: {{name: sgd, lr: 0.05}}}}
pruning: {{compress_at: [1], target_density: 0.95, min_channels: 2}}
search:
  trials: {trials}
  sampler: {sampler}
  objectives: {objectives}
  space:
    {space}
resources: {{per_trial: {{cpu: 1, gpu: {gpu}}}, max_concurrent: {concurrent}}}
"""
TWO_OBJECTIVES = "[{metric: accuracy, mode: max}, {metric: params, mode: min}]"


def tiny_spec(name: str, *, epochs: int = 3, trials: int = 2, width: int = 16, sampler: str = "grid",
              space: str = "pruning.target_density: {values: [0.3, 0.95]}", objectives: str = TWO_OBJECTIVES,
              gpu: float = 0, concurrent: int = 2, extra: str = "") -> str:
    """A study of a two-conv VGG on the 8x8 digits: a few seconds a trial on one CPU thread."""
    return TINY_SPEC.format(name=name, epochs=epochs, trials=trials, width=width, width2=2 * width,
                            sampler=sampler, objectives=objectives, space=space, gpu=gpu,
                            concurrent=concurrent) + extra


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """One torch thread inside the block: the same float sums in every run, so a resumed run can
    match a straight one exactly."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def line_of(text: str, needle: str) -> int:
    """The 1-based line of `text` where `needle` first occurs (for asserting error line numbers)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} is not in the text")


def adsearch(*args, cwd: Path, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """`adsearch ARGS...` as a user runs it: a real process, its output captured as text."""
    return subprocess.run([sys.executable, "-m", "adsearch.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, **kwargs)


@contextlib.contextmanager
def adsearch_process(*args, cwd: Path, **kwargs) -> Iterator[subprocess.Popen]:
    """`adsearch ARGS...` started in its own process group, which is killed on the way out
    (whether the test passed, failed or timed out), so no child outlives its test."""
    proc = subprocess.Popen([sys.executable, "-m", "adsearch.cli", *map(str, args)], cwd=cwd,
                            start_new_session=True, text=True, **kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def load_study(study_dir: Path, name: str | None = None) -> optuna.Study:
    """The Optuna study in `study_dir/study.db` (named after its directory unless `name` is given)."""
    return optuna.load_study(study_name=name or study_dir.name, storage=f"sqlite:///{study_dir / 'study.db'}")


def brute_force_front(rows, objectives: list[tuple[str, str]], key: str | None = "number") -> set:
    """The COMPLETE rows (dicts or a DataFrame) with every objective finite that no other such row
    dominates, found by comparing every pair: the reference the library's Pareto code is checked
    against. Returns their `key` values (trial numbers), or their indices with `key=None`."""
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")
    signed = [(m, 1 if mode == "max" else -1) for m, mode in objectives]
    done = [i for i, r in enumerate(rows) if r["state"] == "COMPLETE"
            and all(r.get(m) is not None and r[m] == r[m] for m, _ in signed)]

    def dominates(b: dict, a: dict) -> bool:
        return all(s * b[m] >= s * a[m] for m, s in signed) and any(s * b[m] > s * a[m] for m, s in signed)

    front = {i for i in done if not any(dominates(rows[j], rows[i]) for j in done if j != i)}
    return front if key is None else {int(rows[i][key]) for i in front}
