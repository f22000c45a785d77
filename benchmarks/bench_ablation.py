"""Benchmark: does activation density beat simpler rules, and pruning in training its scratch control?

    python benchmarks/bench_ablation.py [--spec studies/ablation_digits.yaml] [--seeds 0,1,2]
        [--reports DIR] [--set path=value ...] [--no-run] [--all-controls]

Runs the ablation study once per seed, each a real `adsearch run` (a subprocess: Ray, the prefix
cache, the scratch controls the spec asks for), as `<name>_s<seed>` under `--reports` (default a
temporary folder), then reads the studies back and prints, over the seeds:

- per arm (criterion / width rule) and cut depth (`pruning.max_rounds`, the searched rounds), the mean
  accuracy and mean parameters: at one depth every arm cuts the same number of times, so the sizes
  are close (density keeps ceil(density x width), about half here; uniform keeps `pruning.keep`);
- density against the others: for each (seed, depth), the accuracy of `activation_density / density`
  minus each other arm's, then the mean over seeds and depths, and wins/ties/losses (a tie: under one
  test image apart);
- each front trial against its scratch control (its final widths trained from scratch, same recipe):
  accuracy difference and the ratio of training MACs, per trial and their mean. The front is the
  best of the search, so its trials are selected for luck as well as merit and their controls are
  not: `--all-controls` also runs `adsearch scratch --trials ...` for every other pruned trial (the
  command skips those recorded) and gives the comparison over all of them, off the front apart;
- each seed's wall time, and one JSON line with every figure.

`--no-run` reads studies a previous run left under `--reports` (with `--all-controls` it still
runs the controls they lack). A dry run (about a minute):

    python benchmarks/bench_ablation.py --seeds 0 --set train.epochs=4 --set pruning.every=1
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from adsearch.results.reading import read_study
from adsearch.study.scratch import pruned
from adsearch.results.view import view_of

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "activation_density / density"


def adsearch(*args: str, what: str) -> float:
    """Run `adsearch ARGS` in a subprocess; its wall seconds (exit with its output if it fails)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "adsearch.cli", *args], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{what}: adsearch {args[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return wall


def run_seed(spec: Path, reports: Path, seed: int, overrides: list[str]) -> tuple[str, float]:
    """Run the study for one seed; its name and wall seconds."""
    name = f"{spec.stem}_s{seed}"
    sets = [arg for s in (f"seed={seed}", f"name={name}", *overrides) for arg in ("--set", s)]
    wall = adsearch("run", str(spec), "--reports", str(reports), "--fresh", *sets, what=f"seed {seed}")
    print(f"seed {seed}: {name} in {wall:.0f} s", flush=True)
    return name, wall


def run_all_controls(directory: Path) -> float:
    """`adsearch scratch` for every pruned trial of the study in `directory`; its wall seconds."""
    view = view_of(read_study(directory))
    numbers = [r.number for r in view.search_rows if r.complete and r.in_budget and pruned(r)]
    wall = adsearch("scratch", str(directory), "--trials", ",".join(map(str, numbers)), what=directory.name)
    print(f"{directory.name}: controls of {len(numbers)} trials in {wall:.0f} s", flush=True)
    return wall


def depth(row) -> int | None:
    rounds = row.settings.get("pruning.max_rounds")
    return int(rounds) if rounds is not None else row.metric("rounds")


def summarise(studies: dict[int, Path]) -> dict:
    """Per (arm, depth): accuracies and params over seeds; density's gaps; the scratch controls."""
    cells: dict[tuple[str, int], dict[str, list]] = defaultdict(lambda: {"accuracy": [], "params": []})
    by_seed: dict[tuple[int, int], dict[str, float]] = defaultdict(dict)  # (seed, depth) -> arm -> accuracy
    scratch: list[dict] = []
    for seed, directory in studies.items():
        view = view_of(read_study(directory))
        for row in view.search_rows:
            if not row.complete or row.is_repeat or not row.has("accuracy"):
                continue
            arm, d = view.arm(row), depth(row)
            cells[arm, d]["accuracy"].append(row.metrics["accuracy"])
            cells[arm, d]["params"].append(row.metrics["params"])
            by_seed[seed, d][arm] = row.metrics["accuracy"]
            if row.scratch and row.scratch.get("accuracy") is not None:
                scratch.append({"seed": seed, "trial": row.number, "arm": arm, "depth": d, "front": view.on_front(row),
                                "accuracy": row.metrics["accuracy"], "scratch_accuracy": row.scratch["accuracy"],
                                "params": row.metrics["params"], "train_macs": row.metrics["train_macs"],
                                "scratch_train_macs": row.scratch["train_macs"]})
    arms = sorted({arm for arm, _ in cells}, key=lambda a: (a != REFERENCE, a))
    depths = sorted({d for _, d in cells})
    table = {arm: {d: {"accuracy": statistics.mean(cells[arm, d]["accuracy"]),
                       "params": statistics.mean(cells[arm, d]["params"]), "n": len(cells[arm, d]["accuracy"])}
                   for d in depths if cells[arm, d]["accuracy"]} for arm in arms}
    tie = 1 / 360 / 2  # digits' test split is 360 images: under one image apart is a tie
    gaps = {}
    for arm in arms:
        if arm == REFERENCE:
            continue
        diffs = [accs[REFERENCE] - accs[arm] for accs in by_seed.values() if REFERENCE in accs and arm in accs]
        if diffs:
            gaps[arm] = {"mean": statistics.mean(diffs), "n": len(diffs), "wins": sum(d > tie for d in diffs),
                         "ties": sum(abs(d) <= tie for d in diffs), "losses": sum(d < -tie for d in diffs)}
    return {"table": table, "depths": depths, "gaps": gaps, "scratch": scratch}


def print_summary(summary: dict, walls: dict[int, float]) -> None:
    depths = summary["depths"]
    print("\n## Mean accuracy (mean params) per arm and cut depth, over seeds\n")
    print("| arm | " + " | ".join(f"{d} cut{'s' * (d != 1)}" for d in depths) + " |")
    print("|---|" + "---|" * len(depths))
    for arm, row in summary["table"].items():
        print(f"| {arm} | " + " | ".join(
            f"{100 * row[d]['accuracy']:.2f}% ({row[d]['params'] / 1e3:.1f}k, n={row[d]['n']})" if d in row else "—"
            for d in depths) + " |")
    print(f"\n## {REFERENCE} minus each other arm, same seed and depth\n")
    print("| arm | mean gap (points) | pairs | density wins / ties / losses |")
    print("|---|---|---|---|")
    for arm, g in summary["gaps"].items():
        print(f"| {arm} | {100 * g['mean']:+.2f} | {g['n']} | {g['wins']} / {g['ties']} / {g['losses']} |")
    front = [s for s in summary["scratch"] if s["front"]]
    if front:
        print("\n## Front trials against their scratch controls\n")
        print("| seed | trial | arm | cuts | params | accuracy | scratch | gap (points) | train MACs / scratch's |")
        print("|---|---|---|---|---|---|---|---|---|")
        for s in front:
            print(f"| {s['seed']} | {s['trial']} | {s['arm']} | {s['depth']} | {s['params'] / 1e3:.1f}k | "
                  f"{100 * s['accuracy']:.2f}% | {100 * s['scratch_accuracy']:.2f}% | "
                  f"{100 * (s['accuracy'] - s['scratch_accuracy']):+.2f} | "
                  f"{s['train_macs'] / s['scratch_train_macs']:.1f}x |")
    for name, chosen in (("front trials", front), ("trials off the front", [s for s in summary["scratch"] if not s["front"]]),
                         ("all trials with a control", summary["scratch"])):
        if not chosen:
            continue
        gaps = [s["accuracy"] - s["scratch_accuracy"] for s in chosen]
        ratios = [s["train_macs"] / s["scratch_train_macs"] for s in chosen]
        print(f"\n{name}: mean gap {100 * statistics.mean(gaps):+.2f} points over {len(gaps)} trials "
              f"({sum(g > 0 for g in gaps)} above their control, {sum(g < 0 for g in gaps)} below, "
              f"{sum(g == 0 for g in gaps)} equal); training MACs {statistics.mean(ratios):.1f}x the control's on average")
    by_depth = defaultdict(list)
    for s in summary["scratch"]:
        by_depth[s["depth"]].append(s["accuracy"] - s["scratch_accuracy"])
    if len(by_depth) > 1:
        print("by cuts: " + ", ".join(f"{d}: {100 * statistics.mean(g):+.2f} points (n={len(g)})"
                                      for d, g in sorted(by_depth.items())))
    if walls:
        print("\nwall: " + ", ".join(f"seed {s}: {w:.0f} s" for s, w in walls.items()))
    print(json.dumps({"walls": walls, **summary}, default=str))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "studies" / "ablation_digits.yaml")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--reports", type=Path, default=None)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=VALUE")
    parser.add_argument("--no-run", action="store_true", help="read the studies a previous run left")
    parser.add_argument("--all-controls", action="store_true", help="a scratch control for every pruned trial")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    reports = args.reports or Path(tempfile.mkdtemp(prefix="ablation-"))
    spec = args.spec.resolve()
    walls: dict = {}
    studies: dict[int, Path] = {}
    for seed in seeds:
        if args.no_run:
            studies[seed] = reports / f"{spec.stem}_s{seed}"
        else:
            name, walls[seed] = run_seed(spec, reports, seed, args.sets)
            studies[seed] = reports / name
        if args.all_controls:
            walls[f"{seed} controls"] = run_all_controls(studies[seed])
    print_summary(summarise(studies), walls)


if __name__ == "__main__":
    main()
