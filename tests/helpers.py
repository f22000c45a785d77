"""What several test modules share: the tiny digits spec, the CLI as a subprocess, a child process
that is always killed, the brute-force Pareto front, study.db read back with Optuna, and trial
rows made by hand (`trial_row`, the hand-made study `hand_made_rows` of `HAND_MADE_SPEC`).

Fixtures built on these (one Ray per session, one thread, the tiny study run once) are in the
root `conftest.py`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import optuna

from adsearch.results.rows import BASELINE, TrialRow

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


def stop_once_reported(args: list, study_dir: Path, folder: str, how: signal.Signals,
                       cwd: Path) -> tuple[int, str, str]:
    """`adsearch ARGS`, stopped by `how` sent to its whole process group (a terminal's Ctrl-C; a
    batch scheduler's or `kill`'s SIGTERM) once a trial under `ray/<folder>` has reported an epoch;
    the exit code, stdout and stderr."""
    results = study_dir / "ray" / folder
    before = {p: p.stat().st_size for p in results.glob("*/result.json")}
    with adsearch_process(*args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        deadline = time.time() + 300  # until a trial has reported an epoch in this run
        while not any(p.stat().st_size > before.get(p, 0) for p in results.glob("*/result.json")):
            assert proc.poll() is None, f"the study ended (exit code {proc.returncode}) before a trial reported"
            assert time.time() < deadline, f"no trial reported an epoch under {results} in 300 s"
            time.sleep(0.2)
        os.killpg(proc.pid, how)
        out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


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


# --- trial rows made by hand --------------------------------------------------------------------


def trial_row(number: int, *, role: str = "search", state: str = "COMPLETE", error: str = "",
              settings: dict | None = None, **result) -> TrialRow:
    """A `TrialRow` from keyword results (`accuracy=0.9, params=100, widths=[8, 16]`; None: missing)."""
    return TrialRow.from_result(number, result, role=role, state=state, error=error, settings=settings)


HAND_MADE_SPEC = """
name: hand-made
search:
  trials: 6
  objectives: [{metric: accuracy, mode: max}, {metric: params, mode: min}]
  space:
    pruning.target_density: {values: [0.3, 0.5, 0.7, 0.9]}
report: {max_accuracy_drop: 0.01}
"""
HAND_MADE_BASE = {"accuracy": 0.98, "top5": 1.0, "params": 1_150_000, "macs": 9_500_000, "train_macs": 41.0e9,
                  "latency_ms": 2.0, "wall_s": 125.0, "rounds": 0, "base_widths": [64, 128, 256]}
"""The hand-made study's baseline results."""


def hand_made_trial(number: int, density: float, accuracy, params, widths, *, state: str = "COMPLETE",
                    error: str = "") -> TrialRow:
    """A search trial of the hand-made study: MACs in proportion to params, training MACs half
    fixed, ratios and the accuracy drop recorded against `HAND_MADE_BASE`; a trial that is not
    COMPLETE has no results."""
    base = HAND_MADE_BASE
    settings = {"pruning.target_density": density}
    if state != "COMPLETE":
        return trial_row(number, state=state, error=error, settings=settings, base_widths=base["base_widths"])
    macs = base["macs"] * params / base["params"]
    train_macs = base["train_macs"] * (0.5 + 0.5 * params / base["params"])
    return trial_row(number, settings=settings, accuracy=accuracy, top5=1.0, params=params, macs=macs,
                     train_macs=train_macs, latency_ms=1.0, wall_s=80.0 + number, rounds=2,
                     params_ratio=params / base["params"], macs_ratio=macs / base["macs"],
                     train_macs_ratio=train_macs / base["train_macs"], accuracy_drop=base["accuracy"] - accuracy,
                     widths=widths, base_widths=base["base_widths"])


def hand_made_rows() -> list[TrialRow]:
    """The hand-made study: a baseline (98.0%, 1.15M params) and five search trials, in no order:

    | trial | density | accuracy | params | note |
    | 3 | 0.3 | 95.0% | 23.0k | fewest params, 3 points down: on the front |
    | 0 | 0.9 | 97.9% | 400k | 0.1 point down: on the front |
    | 1 | 0.7 | 97.5% | 115k | 0.5 points down, 10x fewer: on the front, recommended |
    | 4 | 0.9 | 97.0% | 500k | dominated by trial 0 |
    | 2 | 0.5 | — | — | FAIL (CUDA out of memory) |
    """
    baseline = trial_row(BASELINE, role="baseline", **HAND_MADE_BASE, params_ratio=1.0, macs_ratio=1.0,
                         train_macs_ratio=1.0, accuracy_drop=0.0, widths=HAND_MADE_BASE["base_widths"])
    return [
        hand_made_trial(3, 0.3, 0.95, 23_000, [8, 16, 32]),
        hand_made_trial(0, 0.9, 0.979, 400_000, [40, 80, 160]),
        hand_made_trial(1, 0.7, 0.975, 115_000, [24, 40, 80]),
        hand_made_trial(4, 0.9, 0.97, 500_000, [44, 88, 170]),
        hand_made_trial(2, 0.5, None, None, None, state="FAIL", error="RuntimeError: CUDA out of memory | step 3"),
        baseline,  # out of order on purpose: the tables put it first
    ]


ARM_SPEC = HAND_MADE_SPEC.replace("pruning.target_density: {values: [0.3, 0.5, 0.7, 0.9]}",
                                  "pruning.criterion: {values: [activation_density, random]}\n"
                                  "    pruning.widths: {values: [density, uniform]}")
"""`HAND_MADE_SPEC` searching the criterion and the width rule: trials fall in arms."""
ARMS = ["activation_density / density", "random / uniform 0.5"]


def arm_rows(controls: int = 1) -> list[TrialRow]:
    """A hand-made two-arm study of `ARM_SPEC`: the baseline, two trials of each arm, and a scratch
    control for the first `controls` search trials (trial 0: 0.93 at 1e9 training MACs; trial 1:
    0.931 at 1e9)."""
    ad, rnd = ({"pruning.criterion": "activation_density", "pruning.widths": "density"},
               {"pruning.criterion": "random", "pruning.widths": "uniform"})
    rows = [trial_row(-1, role="baseline", accuracy=0.95, params=1000, macs=1e5, train_macs=10e9),
            trial_row(0, settings=ad, accuracy=0.94, params=400, macs=4e4, train_macs=8.5e9),
            trial_row(1, settings=ad, accuracy=0.93, params=200, macs=2e4, train_macs=4e9),
            trial_row(2, settings=rnd, accuracy=0.93, params=500, macs=5e4, train_macs=5e9),
            trial_row(3, settings=rnd, accuracy=0.928, params=240, macs=2.4e4, train_macs=3e9)]
    for row, scratch in list(zip(rows[1:], ({"accuracy": 0.93, "train_macs": 1e9, "params": 400},
                                             {"accuracy": 0.931, "train_macs": 1e9, "params": 200})))[:controls]:
        row.scratch = scratch
    return rows


LIVE_SETTINGS = {"pruning.target_density": 0.5, "pruning.compress_at": [5, 10]}


def entry(number: int = 3, epoch: int = 5, *, kind: str = "search", epochs: int = 20, started: float = 1000.0,
          now: float = 1100.0, first_epoch: int = 0, settings: dict | None = None, **metrics) -> dict:
    """A live entry of a trial at `epoch` (0: before its first), written at `now`."""
    from adsearch.results.live import live_entry

    results = {"epoch": epoch, "accuracy": 0.912, "loss": 0.3123, "params": 115_000, "rounds": 1, **metrics}
    return live_entry(kind=kind, number=number, settings=LIVE_SETTINGS if settings is None else settings, epochs=epochs,
                      metrics=results if epoch else None, started=started, first_epoch=first_epoch, now=now)
