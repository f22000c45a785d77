"""Early stopping on against off at the same trial budget: what the front keeps for what it spends.

    python benchmarks/bench_early_stop.py --off OFF_REPORTS --on ON_REPORTS [--spec studies/fashion_mnist.yaml]
        [--seeds 0,1,2] [--rule "{rungs: [8], keep: 0.5}"] [--run]

With `--run`, for each seed: `adsearch run SPEC --fresh` with `search.early_stop` off into OFF_REPORTS
and with `--rule` into ON_REPORTS, each study named `<name>_s<seed>` with a prefix cache of its own (so
neither arm starts from the other's states), timed; without it, the studies there are read (their
wall times from `<reports>/times.txt` lines 'seed S wall W s', as `/usr/bin/time -f` writes them).

Per seed and arm it prints the hypervolume of the trials' front over (accuracy, parameters / the
baseline's, training MACs / the baseline's) with reference (the baseline's accuracy - 10 points,
1, 1), the training MACs the study actually ran (every trial's and the baseline's
`spent_train_macs`: prefix sharing and early stopping both counted), the study's wall time, the
trials stopped, and the final-front trials of the off arm whose parameters the on arm stopped;
then the ratios on / off, mean ± std over the seeds.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from adsearch.results.pareto import hypervolume, nondominated_sort
from adsearch.results.reading import read_study
from adsearch.results.rows import TrialRow

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVES = [("accuracy", "max"), ("params", "min"), ("train_macs", "min")]


def run(spec: Path, reports: Path, seed: int, sets: list[str]) -> float:
    name = f"{spec.stem}_s{seed}"
    args = [sys.executable, "-m", "adsearch.cli", "run", str(spec), "--reports", str(reports), "--fresh",
            *[a for s in (f"seed={seed}", f"name={name}", f"search.prefix_cache={reports / 'cache' / name}", *sets)
              for a in ("--set", s)]]
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"{name} in {reports} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    with (reports / "times.txt").open("a") as f:
        f.write(f"seed {seed} wall {wall:.1f} s\n")
    return wall


def walls(reports: Path) -> dict[int, float]:
    text = (reports / "times.txt").read_text() if (reports / "times.txt").exists() else ""
    return {int(s): float(w) for s, w in re.findall(r"seed (\d+) wall ([\d.]+) s", text)}


def measure(directory: Path) -> dict:
    record = read_study(directory)
    base = record.baseline.metrics
    rows = [r for r in record.search_rows if not r.is_repeat]
    done = [r for r in rows if r.complete]
    normalised = [TrialRow(number=r.number, metrics={"accuracy": r.metrics["accuracy"],
                                                     "params": r.metrics["params"] / base["params"],
                                                     "train_macs": r.metrics["train_macs"] / base["train_macs"]})
                  for r in done]
    hv = hypervolume(normalised, OBJECTIVES, (base["accuracy"] - 0.10, 1.0, 1.0))
    spent = base.get("spent_train_macs", base["train_macs"]) + sum(r.metrics.get("spent_train_macs") or 0
                                                                     for r in rows)
    front = [r for r, rank in zip(done, nondominated_sort(done, OBJECTIVES)) if rank == 0]
    return {"hv": hv, "spent": spent, "stopped": [r for r in rows if r.stopped], "trials": len(rows),
            "front": front, "rows": rows, "baseline": base}


def key(row: TrialRow) -> str:
    return json.dumps(row.settings, sort_keys=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "studies" / "fashion_mnist.yaml")
    ap.add_argument("--off", type=Path, required=True)
    ap.add_argument("--on", type=Path, required=True)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rule", default="{rungs: [8], keep: 0.5, min_peers: 4}")
    ap.add_argument("--run", action="store_true", help="run the studies first (else read them)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.run:
        for seed in seeds:
            run(args.spec, args.off, seed, [])
            run(args.spec, args.on, seed, [f"search.early_stop={args.rule}"])
    wall = {"off": walls(args.off), "on": walls(args.on)}
    print("| seed | arm | trials stopped | hypervolume | training MACs run | wall | off-front trials stopped "
          "(same settings) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    ratios = {"hv": [], "spent": [], "wall": []}
    for seed in seeds:
        name = f"{args.spec.stem}_s{seed}"
        off, on = measure(args.off / name), measure(args.on / name)
        assert off["baseline"]["accuracy"] == on["baseline"]["accuracy"], "the arms' baselines differ"
        stopped_settings = {key(r) for r in on["stopped"]}
        lost = sum(key(r) in stopped_settings for r in off["front"])
        for arm, m in (("off", off), ("on", on)):
            w = wall[arm].get(seed)
            print(f"| {seed} | {arm} | {len(m['stopped'])} of {m['trials']} | {m['hv']:.4f} | {m['spent'] / 1e12:.2f} T "
                  f"| {w / 60:.1f} min |" if w else f"| {seed} | {arm} | {len(m['stopped'])} of {m['trials']} | "
                  f"{m['hv']:.4f} | {m['spent'] / 1e12:.2f} T | ? |", f" {lost} of {len(off['front'])} |" if arm == "on"
                  else " |")
        ratios["hv"].append(on["hv"] / off["hv"])
        ratios["spent"].append(on["spent"] / off["spent"])
        if seed in wall["off"] and seed in wall["on"]:
            ratios["wall"].append(wall["on"][seed] / wall["off"][seed])
    print()
    for what, values in ratios.items():
        if values:
            spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
            print(f"on / off, {what}: {statistics.mean(values):.3f}{spread} (per seed: "
                  + ", ".join(f"{v:.3f}" for v in values) + ")")
    print(json.dumps({k: v for k, v in ratios.items()}))


if __name__ == "__main__":
    main()
