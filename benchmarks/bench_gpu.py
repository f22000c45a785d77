"""Does compression shorten training on a GPU? The trainer (`run_trial`) against a plain loop.

For VGG-19 on CIFAR-10 (batch 128 and 512) and ResNet-18 (CIFAR stem) on a TinyImageNet layout at
64 px, with data of real size generated in a temporary folder (random pixels, the real file
formats), it times per epoch:

- `run_trial` with pruning off, its data read by DataLoader workers (`data.on_device: false`);
- `run_trial` with pruning off, its data held whole on the device (`data.on_device: true`);
- `run_trial` compressing once after epoch 1 (on the device): the first epoch after the cut and
  the steady epochs after it, at the compressed widths;
- a plain loop on the same network, data held on the device, crop + flip + normalise there, bf16
  autocast and channels_last, SGD (foreach): full width and at the compressed widths; with
  `--compiled` also `torch.compile(mode="reduce-overhead")` (CUDA graphs);
- k trials at once on one device (separate processes, the `on_device: true` arm): epochs per
  second over all of them;
- with `--cut-costs`, only the compressing trial, `train.cudnn_benchmark` off and on alternated,
  each in a fresh process: what cuDNN's re-tuning after a cut costs and what it buys.

Every trainer arm keeps the spec's defaults (`train.cudnn_benchmark: true`) unless it says otherwise;
its epoch includes evaluation and the checkpoint the study takes, the plain loop's only training.

Ray is never imported (the GPU hosts this runs on lack it). `--scale 0.01 --width-mult 0.125`
is a CPU dry run. Prints one table and writes the figures as JSON (`--out`).

    python benchmarks/bench_gpu.py                                  # on a GPU: every figure
    python benchmarks/bench_gpu.py --scale 0.01 --width-mult 0.125  # CPU dry run, a minute
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from adsearch.data import load_data  # noqa: E402
from adsearch.spec import StudySpec  # noqa: E402
from adsearch.trainer import Precision, build_model, resolve_device, run_trial  # noqa: E402

CONFIGS = {  # name: (arch, dataset, batch size)
    "vgg19-b128": ("vgg19", "cifar10", 128),
    "resnet18-64px": ("resnet18", "tinyimagenet", 256),
    "vgg19-b512": ("vgg19", "cifar10", 512),
}


# --- data of real size, in the real layouts --------------------------------------------------------


def write_cifar10(root: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    """root/cifar-10-batches-py: 5 training batches and a test batch of random pixels and labels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    per = n_train // 5
    for name, n in [*((f"data_batch_{i}", per) for i in range(1, 6)), ("test_batch", n_test)]:
        entry = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, n).tolist(), b"batch_label": name.encode()}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{c}".encode() for c in range(10)]}, f)


def _write_jpegs(job: tuple[list[str], int]) -> None:
    from PIL import Image

    paths, seed = job
    rng = np.random.default_rng(seed)
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=90)


def write_tinyimagenet(root: Path, n_train: int, n_test: int, classes: int = 200) -> None:
    """root/tiny-imagenet-200: wnids.txt, train/<wnid>/images/*.JPEG, val/images + annotations."""
    folder = root / "tiny-imagenet-200"
    wnids = [f"n{c:08d}" for c in range(classes)]
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    paths = []
    for c, wnid in enumerate(wnids):
        (folder / "train" / wnid / "images").mkdir(parents=True)
        paths += [str(folder / "train" / wnid / "images" / f"{wnid}_{k}.JPEG") for k in range(n_train // classes)]
    val = [(f"val_{k}.JPEG", wnids[k % classes]) for k in range(n_test)]
    (folder / "val" / "val_annotations.txt").write_text("".join(f"{n}\t{w}\t0\t0\t63\t63\n" for n, w in val))
    paths += [str(folder / "val" / "images" / n) for n, _ in val]
    jobs = [(paths[i::64], i) for i in range(64)]
    with multiprocessing.Pool(min(16, os.cpu_count() or 1)) as pool:
        pool.map(_write_jpegs, jobs)


# --- the arms ------------------------------------------------------------------------------------


def trial_spec(config: str, root: Path, args, *, epochs: int, on_device: bool, compress: bool,
               cudnn_benchmark: bool = True) -> StudySpec:
    arch, dataset, batch = CONFIGS[config]
    return StudySpec.model_validate({
        "name": f"bench-{config}", "seed": 0,
        "model": {"arch": arch, "width_mult": args.width_mult},
        "data": {"dataset": dataset, "root": str(root), "on_device": on_device, "workers": args.workers},
        "train": {"epochs": epochs, "batch_size": batch, "eval_batch_size": 1024, "device": args.device,
                  "amp": "bf16" if args.device != "cpu" else False, "channels_last": args.device != "cpu",
                  "cudnn_benchmark": cudnn_benchmark,
                  "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
                  "lr_schedule": "cosine"},
        "pruning": ({"method": "activation_density", "compress_at": [1], "max_rounds": 1, "target_density": 1.0,
                     "min_channels": 8, "round_to": 8} if compress else {"method": "none"}),
    })


def time_trial(spec: StudySpec) -> dict:
    """`run_trial` as the study runs it (a checkpoint made every epoch); seconds per epoch."""
    marks = [time.perf_counter()]

    def report(metrics: dict, checkpoint: dict) -> None:
        marks.append(time.perf_counter())

    result = run_trial(spec, report=report)
    epochs = [b - a for a, b in zip(marks, marks[1:])]
    first = result["history"][0]
    return {"epoch_s": epochs, "params_before": first["params"], "params": result["params"],
            "widths": result["widths"], "base_widths": result["base_widths"], "accuracy": result["accuracy"],
            "compressions": len(result["compressions"])}


def plain_loop(spec: StudySpec, widths: list[int] | None, epochs: int, compiled: bool) -> list[float]:
    """A training loop with nothing but the step: data on the device, full batches only."""
    device = resolve_device(spec.train.device)
    torch.manual_seed(0)
    data = load_data(spec.data.model_copy(update={"on_device": True}), spec.seed).to(device)
    precision = Precision.of(spec.train, device)
    model = build_model(spec, data, widths).to(device, memory_format=precision.memory_format)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4,
                          foreach=device.type == "cuda")
    net = torch.compile(model, mode="reduce-overhead") if compiled else model
    batch = spec.train.batch_size
    full = data.n_train // batch
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(epochs):
        _sync(device)
        t0 = time.perf_counter()
        for k, (x, y) in enumerate(data.train_batches(batch, g)):
            if k == full:
                break
            x = x.contiguous(memory_format=precision.memory_format)
            with precision.autocast():
                loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def concurrent(config: str, root: Path, args, k: int) -> dict:
    """`k` trials of the on-device arm at once, each its own process: epochs per second in all."""
    spec = trial_spec(config, root, args, epochs=args.epochs, on_device=True, compress=False)
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, "--child", spec.model_dump_json()], stdout=subprocess.PIPE,
                              text=True) for _ in range(k)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    wall = time.perf_counter() - t0
    # steady epochs (the first of each trial warms up): epochs per second of the k trials together
    steady = [statistics.median(o["epoch_s"][1:] or o["epoch_s"]) for o in outs]
    return {"k": k, "wall_s": wall, "steady_epoch_s": steady, "epochs_per_s": sum(1 / s for s in steady)}


# --- the table -----------------------------------------------------------------------------------


def steady(times: list[float]) -> float:
    """The median epoch after the first (which pays for warm-up and tuning)."""
    return statistics.median(times[1:] or times)


def in_child(spec: StudySpec) -> dict:
    """`time_trial(spec)` in a process of its own: nothing tuned or cached by an earlier arm."""
    proc = subprocess.run([sys.executable, __file__, "--child", spec.model_dump_json()], stdout=subprocess.PIPE,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cut_costs(config: str, root: Path, args) -> dict:
    """The compressing trial with cudnn.benchmark off and on, alternated `args.repeats` times, each
    in a fresh process: the first epoch after the cut against the steady ones, in each policy."""
    out: dict = {"off": [], "on": []}
    for _ in range(args.repeats):
        for policy in ("off", "on"):
            spec = trial_spec(config, root, args, epochs=args.epochs + 1, on_device=True, compress=True,
                              cudnn_benchmark=policy == "on")
            r = in_child(spec)
            out[policy].append(r)
            t = r["epoch_s"]
            print(f"  cudnn.benchmark {policy:<3}: epochs {' '.join(f'{x:.2f}' for x in t)}; first after the cut "
                  f"{t[1] - statistics.median(t[2:]):+.2f} s over steady {statistics.median(t[2:]):.2f} s; "
                  f"widths {r['widths']}", flush=True)
    return out


def run_config(config: str, root: Path, args) -> dict:
    if args.cut_costs:
        print(f"\n{config}: what a cut costs, per cudnn.benchmark policy (fresh process each)")
        return cut_costs(config, root, args)
    out: dict = {}
    spec = trial_spec(config, root, args, epochs=args.epochs, on_device=False, compress=False)
    out["trial, DataLoader workers"] = time_trial(spec)
    out["trial, on device"] = time_trial(trial_spec(config, root, args, epochs=args.epochs, on_device=True,
                                                    compress=False))
    comp = time_trial(trial_spec(config, root, args, epochs=args.epochs + 1, on_device=True, compress=True))
    out["trial, compressed once after epoch 1"] = comp
    if args.no_benchmark_arm:
        out["trial, compressed once, cudnn.benchmark off"] = time_trial(trial_spec(
            config, root, args, epochs=args.epochs + 1, on_device=True, compress=True, cudnn_benchmark=False))
    out["plain loop, eager, full width"] = {"epoch_s": plain_loop(spec, None, args.plain_epochs, False)}
    out["plain loop, eager, compressed widths"] = {"epoch_s": plain_loop(spec, comp["widths"], args.plain_epochs,
                                                                         False)}
    if args.compiled:
        out["plain loop, compiled, full width"] = {"epoch_s": plain_loop(spec, None, args.plain_epochs + 1, True)}
        out["plain loop, compiled, compressed widths"] = {
            "epoch_s": plain_loop(spec, comp["widths"], args.plain_epochs + 1, True)}
    return out


def print_config(config: str, arms: dict) -> None:
    plain = steady(arms["plain loop, eager, full width"]["epoch_s"])
    plain_c = steady(arms["plain loop, eager, compressed widths"]["epoch_s"])
    comp = arms["trial, compressed once after epoch 1"]
    print(f"\n{config}: params {comp['params_before']:,} -> {comp['params']:,} after one compression "
          f"({comp['params_before'] / comp['params']:.1f}x fewer), widths {comp['widths']}")
    print(f"  {'arm':<42} {'epochs (s)':<34} {'steady s':>9} {'/ plain eager':>14}")
    for arm, figures in arms.items():
        times = figures["epoch_s"]
        if arm.startswith("trial, compressed once"):
            after = times[2:] or times[1:]
            s = statistics.median(after)
            ref = plain_c
            note = f"  first after the cut {times[1]:.2f} s ({times[1] - s:+.2f} s over steady)"
        else:
            s = steady(times)
            ref = plain_c if "compressed" in arm else plain
            note = ""
        shown = " ".join(f"{t:.2f}" for t in times)
        print(f"  {arm:<42} {shown:<34} {s:>9.2f} {s / ref:>13.2f}x{note}")
    full = steady(arms["trial, on device"]["epoch_s"])
    after = statistics.median(comp["epoch_s"][2:] or comp["epoch_s"][1:])
    print(f"  compressed / full-width trial epoch (on device): {after / full:.2f}; plain loop: {plain_c / plain:.2f}; "
          f"on-device / workers trial epoch: {full / steady(arms['trial, DataLoader workers']['epoch_s']):.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="dataset size factor (CIFAR-10 50k/10k, Tiny 20k/2k)")
    p.add_argument("--width-mult", type=float, default=1.0, help="network width factor (dry runs)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of the trainer arms (+1 when compressing)")
    p.add_argument("--plain-epochs", type=int, default=2, help="epochs of each plain-loop arm")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"which of {', '.join(CONFIGS)}")
    p.add_argument("--concurrent", default="1,2,4", help="trials at once to measure (on the first config)")
    p.add_argument("--compiled", action="store_true", help="also the plain loop under torch.compile")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers of the workers arm")
    p.add_argument("--no-benchmark-arm", action="store_true",
                   help="also the compressing trial with train.cudnn_benchmark off (what re-tuning costs after a cut)")
    p.add_argument("--cut-costs", action="store_true",
                   help="only the compressing trial, cudnn.benchmark off and on alternated, each in a fresh process")
    p.add_argument("--repeats", type=int, default=2, help="pairs of --cut-costs runs")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:  # one trial of `concurrent`, in its own process
        print(json.dumps(time_trial(StudySpec.model_validate_json(args.child))))
        return

    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; scale {args.scale}, width_mult {args.width_mult}")
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    results: dict = {"device": name, "torch": torch.__version__, "args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        if any(CONFIGS[c][1] == "cifar10" for c in configs):
            write_cifar10(root, int(50_000 * args.scale), int(10_000 * args.scale))
        if any(CONFIGS[c][1] == "tinyimagenet" for c in configs):
            write_tinyimagenet(root, int(20_000 * args.scale), int(2_000 * args.scale),
                               classes=200 if args.scale >= 0.05 else 10)
        print(f"data written in {time.perf_counter() - t0:.1f} s")
        for config in configs:
            t0 = time.perf_counter()
            results[config] = run_config(config, root, args)
            if not args.cut_costs:
                print_config(config, results[config])
            print(f"  ({time.perf_counter() - t0:.0f} s for this configuration)", flush=True)
        ks = [int(k) for k in args.concurrent.split(",") if k.strip()]
        if ks:
            print(f"\ntrials at once on one device ({configs[0]}, on device, pruning off):")
            results["concurrent"] = [concurrent(configs[0], root, args, k) for k in ks]
            one = results["concurrent"][0]["epochs_per_s"]
            for r in results["concurrent"]:
                print(f"  {r['k']} at once: steady epoch {', '.join(f'{s:.2f}' for s in r['steady_epoch_s'])} s; "
                      f"{r['epochs_per_s']:.3f} epochs/s in all ({r['epochs_per_s'] / one:.2f}x one trial)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
