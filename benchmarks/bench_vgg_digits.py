"""Benchmark: the quickstart's VGG on digits, baseline vs one compressing trial, in one run.

    python benchmarks/bench_vgg_digits.py [--threads 2] [--set pruning.compress_at=[1,2,3] ...]

Prints accuracy, params ratio, MACs ratio, training-MACs ratio and wall-time ratio against the
targets of issue 2 (accuracy within 0.5 point of the baseline with >= 50x fewer parameters,
>= 4x fewer training MACs, >= 2.5x less wall time). Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from adsearch.spec.loading import parse_overrides
from adsearch.spec.loading import load_spec
from compare import compare  # benchmarks/compare.py: both arms, figures, targets

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
    return compare(spec, {"accuracy drop (points)": 0.5, "params ratio (x fewer)": 50,
                          "training MACs ratio (x fewer)": 4, "wall-time ratio (x less)": 2.5})


if __name__ == "__main__":
    sys.exit(main())
