"""What both benchmarks do: train the baseline (the spec with pruning off) and the compressing
trial in one process, one after the other, and print the figures against their targets."""

from __future__ import annotations

import platform
import time

import torch

from adsearch.spec.study_spec import StudySpec
from adsearch.train.trainer import run_trial

LOWER_IS_BETTER = {"accuracy drop (points)"}


def compare(spec: StudySpec, targets: dict[str, float]) -> int:
    """Run both arms of `spec` and print accuracy, params, MACs, training MACs and wall time.

    `targets` maps a figure's name to its bound: at most the bound for the accuracy drop, at
    least the bound for a ratio. Returns the exit code: 0 if every target is met, else 1.
    """
    t0 = time.perf_counter()
    base = run_trial(spec.without_pruning())
    t1 = time.perf_counter()
    comp = run_trial(spec)
    t2 = time.perf_counter()

    figures = {
        "accuracy drop (points)": (base["accuracy"] - comp["accuracy"]) * 100,
        "params ratio (x fewer)": base["params"] / comp["params"],
        "MACs ratio (x fewer)": base["macs"] / comp["macs"],
        "training MACs ratio (x fewer)": base["train_macs"] / comp["train_macs"],
        "wall-time ratio (x less)": (t1 - t0) / (t2 - t1),
    }
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, device {spec.train.device}")
    for arm, r, wall in (("baseline:   ", base, t1 - t0), ("compressing:", comp, t2 - t1)):
        print(f"{arm} accuracy {r['accuracy']:.4f}  params {r['params']:,}  MACs {r['macs']:,}  "
              f"train MACs {r['train_macs']:.4g}  wall {wall:.2f} s")
    print(f"  widths {comp['base_widths']} -> {comp['widths']}")
    ok = True
    for name, value in figures.items():
        bound = targets.get(name)
        if bound is None:
            target, met = "-", True
        elif name in LOWER_IS_BETTER:
            target, met = f"<= {bound:g}", value <= bound
        else:
            target, met = f">= {bound:g}", value >= bound
        ok &= met
        print(f"  {name:<32} {value:8.2f}   target {target:<7} {'met' if met else 'MISSED'}")
    return 0 if ok else 1
