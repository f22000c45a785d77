"""Benchmark: does activation density beat simpler rules, and pruning in training its scratch controls?

    python benchmarks/bench_ablation.py [--spec studies/ablation_fashion.yaml] [--seeds 0,1,2]
        [--reports DIR] [--set path=value ...] [--no-run] [--front-controls]

Runs the ablation study once per seed, each a real `adsearch run` (a subprocess: Ray, the prefix
cache, the scratch controls the spec asks for), as `<name>_s<seed>` under `--reports` (default a
temporary folder); then `adsearch scratch --match both` for every pruned trial the study's own
controls (the front's) left out, so each pruned trial has its controls at equal epochs and at equal
training compute (trials that end at the same widths share one: the command trains it once).
`--front-controls` skips that step. Then it reads the studies back and prints, over the seeds:

- per arm (criterion / width rule) and cut depth: accuracy mean ± standard deviation over the seeds,
  the 95% Wilson interval of the accuracy pooled over them (every seed's test images), the mean
  parameters;
- `activation_density / density` (the reference) against each other arm at the same seed and depth:
  the mean gap ± std, and McNemar's exact test on the test samples pooled over the seeds (each
  seed's p as well);
- each pruned trial against its scratch controls (equal epochs, equal compute): the gap, its p, the
  training MACs; pooled per arm and match over the seeds;
- each seed's wall time, and one JSON line with every figure.

`--no-run` reads the studies a previous run left under `--reports` (it still runs the controls they
lack unless `--front-controls`). A dry run (about four minutes on two cores):

    python benchmarks/bench_ablation.py --seeds 0 --set train.epochs=4 --set data.limit.train=1000 \
        --set 'pruning.compress_at=[2]'
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

from adsearch import correctness
from adsearch.metrics import accuracy_interval
from adsearch.results.reading import read_study
from adsearch.results.view import view_of
from adsearch.study.scratch import pruned

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "activation_density / density"
MATCHES = {"epochs": "equal epochs", "compute": "equal compute"}


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
    """`adsearch scratch --match both` for every pruned trial of the study in `directory` (those
    recorded are skipped, those that train alike train once); its wall seconds."""
    view = view_of(read_study(directory))
    numbers = [r.number for r in view.search_rows if r.complete and r.in_budget and pruned(r)]
    wall = adsearch("scratch", str(directory), "--trials", ",".join(map(str, numbers)), "--match", "both",
                    what=directory.name)
    print(f"{directory.name}: controls of {len(numbers)} trials in {wall:.0f} s", flush=True)
    return wall


def depth(row) -> int | None:
    rounds = row.settings.get("pruning.max_rounds")
    return int(rounds) if rounds is not None else row.metric("rounds")


def pooled(tests: list) -> dict:
    """McNemar's exact test on the discordant samples summed over `tests` (one `Paired` per seed or trial)."""
    a_only, b_only = sum(t.a_only for t in tests), sum(t.b_only for t in tests)
    samples = sum(t.samples for t in tests)
    return {"a_only": a_only, "b_only": b_only, "samples": samples, "p": correctness.mcnemar_p(a_only, b_only),
            "seeds": len(tests)}


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def collect(studies: dict[int, Path]) -> tuple[list[dict], dict[int, dict]]:
    """One record per completed search trial of every seed's study, and each seed's baseline."""
    trials, baselines = [], {}
    for seed, directory in studies.items():
        view = view_of(read_study(directory))
        if view.baseline is not None:
            baselines[seed] = {"accuracy": view.baseline.metrics["accuracy"], "params": view.baseline.metrics["params"],
                               "correct": view.baseline.correct, "train_macs": view.baseline.metrics["train_macs"]}
        for row in view.search_rows:
            if not row.complete or row.is_repeat or not row.has("accuracy"):
                continue
            trials.append({"seed": seed, "trial": row.number, "arm": view.arm(row), "depth": depth(row),
                           "accuracy": row.metrics["accuracy"], "params": row.metrics["params"],
                           "train_macs": row.metrics["train_macs"], "correct": row.correct, "pruned": pruned(row),
                           "controls": {m: c for m, c in (("epochs", row.scratch), ("compute", row.scratch_compute))
                                        if c and c.get("state") == "COMPLETE"}})
    return trials, baselines


def summarise(studies: dict[int, Path]) -> dict:
    trials, baselines = collect(studies)
    cells = defaultdict(list)
    for t in trials:
        cells[t["arm"], t["depth"]].append(t)
    arms = sorted({a for a, _ in cells}, key=lambda a: (a != REFERENCE, a))
    depths = sorted({d for _, d in cells})
    table = {}
    for (arm, d), group in cells.items():
        acc_mean, acc_std = mean_std([t["accuracy"] for t in group])
        hits = [correctness.bits(t["correct"]) for t in group if t["correct"]]
        low, high = (accuracy_interval(sum(int(h.sum()) for h in hits) / sum(h.size for h in hits),
                                       sum(h.size for h in hits)) if hits else (float("nan"), float("nan")))
        table.setdefault(arm, {})[d] = {"accuracy": acc_mean, "std": acc_std, "low": low, "high": high,
                                        "params": statistics.fmean(t["params"] for t in group), "n": len(group)}
    by_key = {(t["seed"], t["depth"], t["arm"]): t for t in trials}
    gaps = {}
    for arm in arms:
        if arm == REFERENCE:
            continue
        for d in depths:
            pairs = [(by_key[s, d, REFERENCE], by_key[s, d, arm]) for s in studies
                     if (s, d, REFERENCE) in by_key and (s, d, arm) in by_key]
            tests = [correctness.paired_test(a["correct"], b["correct"]) for a, b in pairs]
            if not pairs or any(t is None for t in tests):
                continue
            mean, std = mean_std([a["accuracy"] - b["accuracy"] for a, b in pairs])
            gaps[f"{arm} @ {d}"] = {"arm": arm, "depth": d, "mean": mean, "std": std, **pooled(tests),
                                    "per_seed_p": [t.p_value for t in tests],
                                    "params_ratio": statistics.fmean(b["params"] / a["params"] for a, b in pairs)}
    scratch = []
    for t in trials:
        for match, control in t["controls"].items():
            test = correctness.paired_test(t["correct"], control.get("correct"))
            scratch.append({"seed": t["seed"], "trial": t["trial"], "arm": t["arm"], "depth": t["depth"], "match": match,
                            "accuracy": t["accuracy"], "control": control["accuracy"], "epochs": control["epoch"],
                            "params": t["params"], "macs_ratio": t["train_macs"] / control["train_macs"],
                            "test": test})
    pooled_scratch = {}
    for arm in arms:
        for match in MATCHES:
            tests = [s["test"] for s in scratch if s["arm"] == arm and s["match"] == match and s["test"] is not None]
            if tests:
                gaps_ = [s["accuracy"] - s["control"] for s in scratch if s["arm"] == arm and s["match"] == match]
                mean, std = mean_std(gaps_)
                pooled_scratch[f"{arm} | {match}"] = {"arm": arm, "match": match, "mean": mean, "std": std,
                                                      **pooled(tests)}
    baseline = {}
    if baselines:
        mean, std = mean_std([b["accuracy"] for b in baselines.values()])
        baseline = {"accuracy": mean, "std": std, "params": statistics.fmean(b["params"] for b in baselines.values()),
                    "seeds": len(baselines)}
    return {"table": table, "depths": depths, "gaps": gaps, "scratch": scratch, "pooled_scratch": pooled_scratch,
            "baseline": baseline}


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def p_cell(p: float) -> str:
    return f"{correctness.p_text(p)}{' *' if p < correctness.SIGNIFICANCE else ''}"


def print_summary(summary: dict, walls: dict) -> None:
    depths = summary["depths"]
    b = summary["baseline"]
    if b:
        print(f"\nbaseline: {pct(b['accuracy'])} ± {100 * b['std']:.2f} over {b['seeds']} seeds, "
              f"{b['params'] / 1e3:.1f}k parameters")
    print("\n## Accuracy per arm and cut depth: mean ± std over seeds [95% interval, all seeds' test images pooled] "
          "(mean params)\n")
    print("| arm | " + " | ".join(f"{d} cut{'s' * (d != 1)}" for d in depths) + " |")
    print("|---|" + "---|" * len(depths))
    for arm, row in summary["table"].items():
        print(f"| {arm} | " + " | ".join(
            f"{pct(row[d]['accuracy'])} ± {100 * row[d]['std']:.2f} [{100 * row[d]['low']:.2f}-{100 * row[d]['high']:.2f}] "
            f"({row[d]['params'] / 1e3:.1f}k, n={row[d]['n']})" if d in row else "—" for d in depths) + " |")
    print(f"\n## {REFERENCE} minus each other arm, same seed and depth (* significant at 5%)\n")
    print("| arm | cuts | params / reference's | gap (points), mean ± std | only reference right / only arm right "
          "| McNemar p, pooled | p per seed |")
    print("|---|---|---|---|---|---|---|")
    for g in summary["gaps"].values():
        print(f"| {g['arm']} | {g['depth']} | {g['params_ratio']:.3f} | {100 * g['mean']:+.2f} ± {100 * g['std']:.2f} | "
              f"{g['a_only']} / {g['b_only']} | {p_cell(g['p'])} | {', '.join(p_cell(p) for p in g['per_seed_p'])} |")
    print("\n## Each pruned trial against its scratch controls (trial minus control; * significant at 5%)\n")
    print("| seed | trial | arm | cuts | params | match | control's epochs | trial | control | gap (points) | p "
          "| trial's training MACs / control's |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in sorted(summary["scratch"], key=lambda s: (s["arm"] != REFERENCE, s["arm"], s["match"], s["seed"])):
        print(f"| {s['seed']} | {s['trial']} | {s['arm']} | {s['depth']} | {s['params'] / 1e3:.1f}k | {s['match']} | "
              f"{s['epochs']} | {pct(s['accuracy'])} | {pct(s['control'])} | "
              f"{100 * (s['accuracy'] - s['control']):+.2f} | {p_cell(s['test'].p_value) if s['test'] else '—'} | "
              f"{s['macs_ratio']:.2f}x |")
    print("\n## Pooled over seeds: each arm's trials against their controls\n")
    print("| arm | match | trials | gap (points), mean ± std | only trial right / only control right | McNemar p, pooled |")
    print("|---|---|---|---|---|---|")
    for g in summary["pooled_scratch"].values():
        print(f"| {g['arm']} | {MATCHES[g['match']]} | {g['seeds']} | {100 * g['mean']:+.2f} ± {100 * g['std']:.2f} | "
              f"{g['a_only']} / {g['b_only']} | {p_cell(g['p'])} |")
    if walls:
        print("\nwall: " + ", ".join(f"{k}: {w:.0f} s" for k, w in walls.items())
              + f"; in all {sum(walls.values()):.0f} s")
    print(json.dumps({"walls": walls, **summary}, default=lambda o: o.__dict__ if hasattr(o, "__dict__") else str(o)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "studies" / "ablation_fashion.yaml")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--reports", type=Path, default=None)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=VALUE")
    parser.add_argument("--no-run", action="store_true", help="read the studies a previous run left")
    parser.add_argument("--front-controls", action="store_true",
                        help="only the controls the study runs itself (its front's), not every pruned trial's")
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
            name, walls[f"seed {seed}"] = run_seed(spec, reports, seed, args.sets)
            studies[seed] = reports / name
        if not args.front_controls:
            walls[f"seed {seed} controls"] = run_all_controls(studies[seed])
    print_summary(summarise(studies), walls)


if __name__ == "__main__":
    main()
