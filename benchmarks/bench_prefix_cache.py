"""The prefix cache across studies: a study run again with two more schedules in its space.

    python benchmarks/bench_prefix_cache.py [--spec studies/quickstart.yaml] [--cache DIR] [--sizes DIR ...]

Runs the spec (`adsearch run --fresh`) with an empty prefix cache of its own (`--cache`, default a new
temporary folder), then again, `--fresh`, with two more schedules in `pruning.compress_at`'s values (the
quickstart's space, plus [5] and [5, 10]). For each run: the training MACs the study ran (the baseline's
and every trial's `spent_train_macs`) against what its trials and baseline cost from scratch
(`train_macs`), its wall time, and the cache's size on disk after it; then the second run's MACs over
the first's (target: at most 0.3). `--sizes` prints the size of other caches (another study's folder).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from adsearch.results.reading import read_study
from adsearch.train.prefixes import cache_size, recipes

ROOT = Path(__file__).resolve().parents[1]
MORE = ("{pruning.compress_at: {values: [[3], [4], [3, 6], [4, 8], [3, 5, 7], [3, 6, 9], [4, 6, 8], [4, 8, 12], "
        "[5], [5, 10]]}, pruning.weights: {values: [inherit, reinit]}}")


def run(spec: Path, reports: Path, cache: Path, sets: list[str]) -> dict:
    args = [sys.executable, "-m", "adsearch.cli", "run", str(spec), "--reports", str(reports), "--fresh",
            *[a for s in (f"search.prefix_cache={cache}", *sets) for a in ("--set", s)]]
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"run failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    record = read_study(reports / spec.stem)
    rows = [record.baseline, *(r for r in record.search_rows if not r.is_repeat)]
    spent = sum(r.metrics.get("spent_train_macs") or 0 for r in rows)
    scratch = sum(r.metrics.get("train_macs") or 0 for r in rows)
    entries, size = cache_size(cache)
    return {"wall": wall, "spent": spent, "scratch": scratch, "entries": entries, "bytes": size,
            "trials": len(rows) - 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "studies" / "quickstart.yaml")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--sizes", type=Path, nargs="*", default=[])
    args = ap.parse_args()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="prefix-cache-"))
    reports = Path(tempfile.mkdtemp(prefix="reports-"))
    first = run(args.spec, reports, cache, [])
    second = run(args.spec, reports, cache, [f"search.space={MORE}"])
    print("| run | trials (not repeats) | training MACs run | from scratch | run / scratch | wall | cache after |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in (("first", first), ("again, two more schedules", second)):
        print(f"| {name} | {r['trials']} | {r['spent'] / 1e9:.1f} G | {r['scratch'] / 1e9:.1f} G | "
              f"{r['spent'] / r['scratch']:.3f} | {r['wall']:.0f} s | {r['entries']} states, {r['bytes'] / 1e6:.1f} MB |")
    print(f"\nsecond run / first run, training MACs run: {second['spent'] / first['spent']:.3f} (target <= 0.3); "
          f"wall: {second['wall'] / first['wall']:.2f}")
    for directory in args.sizes:
        entries, size = cache_size(directory)
        what = ", ".join(f"{g.about.get('study', '?')} seed {g.about.get('seed', '?')}: {g.entries} states "
                         f"{g.bytes / 1e6:.1f} MB" for g in recipes(directory))
        print(f"{directory}: {entries} states, {size / 1e6:.1f} MB ({what})")


if __name__ == "__main__":
    main()
