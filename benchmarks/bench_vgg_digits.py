"""Benchmark: the quickstart's VGG on digits, baseline vs one compressing trial, in one run.

    python benchmarks/bench_vgg_digits.py [--threads 2] [--set pruning.compress_at=[1,2,3] ...]

Prints accuracy, params ratio, MACs ratio, training-MACs ratio and wall-time ratio against the
targets of issue 2 (accuracy within 0.5 point of the baseline with >= 50x fewer parameters,
>= 4x fewer training MACs, >= 2.5x less wall time). Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from adsearch.cli import parse_overrides
from adsearch.spec import load_spec
from adsearch.trainer import run_trial

ROOT = Path(__file__).resolve().parents[1]

# Both arms train 30 epochs (the quickstart's 20 left the compressed net 0.6-1.7 points short on
# some machines and seeds: see RESULTS.md); the compressing trial cuts early, in three rounds.
TRIAL = {"train.epochs": 30, "pruning.compress_at": [1, 2, 3], "pruning.max_rounds": 3,
         "pruning.target_density": 0.95}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "studies" / "quickstart.yaml"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {**TRIAL, **parse_overrides(args.sets)}
    spec = load_spec(args.spec, overrides)

    t0 = time.perf_counter()
    base = run_trial(spec.without_pruning())
    t1 = time.perf_counter()
    comp = run_trial(spec)
    t2 = time.perf_counter()

    drop = (base["accuracy"] - comp["accuracy"]) * 100
    figures = [
        ("accuracy drop (points)", drop, "<= 0.5", drop <= 0.5),
        ("params ratio (x fewer)", base["params"] / comp["params"], ">= 50", base["params"] / comp["params"] >= 50),
        ("MACs ratio (x fewer)", base["macs"] / comp["macs"], "-", True),
        ("training MACs ratio (x fewer)", base["train_macs"] / comp["train_macs"], ">= 4",
         base["train_macs"] / comp["train_macs"] >= 4),
        ("wall-time ratio (x less)", (t1 - t0) / (t2 - t1), ">= 2.5", (t1 - t0) / (t2 - t1) >= 2.5),
    ]
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, device {spec.train.device}")
    print(f"baseline:    accuracy {base['accuracy']:.4f}  params {base['params']:,}  MACs {base['macs']:,}  "
          f"train MACs {base['train_macs']:.4g}  wall {t1 - t0:.2f} s")
    print(f"compressing: accuracy {comp['accuracy']:.4f}  params {comp['params']:,}  MACs {comp['macs']:,}  "
          f"train MACs {comp['train_macs']:.4g}  wall {t2 - t1:.2f} s  widths {comp['widths']}")
    ok = True
    for name, value, target, met in figures:
        ok &= met
        print(f"  {name:<32} {value:8.2f}   target {target:<7} {'met' if met else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
