"""Does compression shorten training on a GPU? The trainer (`run_trial`) against a plain loop.

For VGG-19 on CIFAR-10 (batch 128 and 512) and ResNet-18 (CIFAR stem) on a TinyImageNet layout at
64 px, with data of real size generated in a temporary folder (random pixels, the real file
formats), it times per epoch (`--arms` picks):

- workers: `run_trial`, pruning off, its data read by DataLoader workers (`data.on_device: false`);
- device: the same with its data held whole on the device (`data.on_device: true`);
- cut: `run_trial` compressing after epoch 1 (VGG-19) or after epochs 1 and 2 (ResNet-18, for at
  least 5x fewer parameters), on the device: the epochs right after each cut and the steady epochs
  after the last one, at the compressed widths;
- compiled: both of these trials with `train.compile: true` (CUDA graphs), each compile's time
  taken from the trial's history and subtracted from the epoch that paid for it;
- plain, plain-compiled: a plain loop on the same network, data held on the device, crop + flip +
  normalise there, bf16 autocast and channels_last, fused SGD, full batches only, eager and under
  `torch.compile(mode="reduce-overhead")`: full width and at the cut's widths;
- no-benchmark: the compressing trial with `train.cudnn_benchmark: false`;
- k trials at once on one device (`--concurrent`, separate processes, on the device, full width
  and compressed): epochs per second over all of them;
- with `--cut-costs`, only the compressing trial, `train.cudnn_benchmark` off and on alternated,
  each in a fresh process: what cuDNN's re-tuning after a cut costs and what it buys.

Every trainer arm keeps the spec's defaults (`train.cudnn_benchmark: true`, `train.drop_last: true`)
unless it says otherwise; its epoch includes evaluation and the checkpoint the study takes, the plain
loop's only training. The table's last column is the steady epoch over the fastest plain loop on the
same network and batch.

Ray is never imported (the GPU hosts this runs on lack it). `--scale 0.02 --width-mult 0.125`
is a CPU dry run. Prints one table per configuration and writes the figures as JSON (`--out`,
rewritten after each configuration).

    python benchmarks/bench_gpu.py                                  # on a GPU: every figure
    python benchmarks/bench_gpu.py --scale 0.02 --width-mult 0.125  # CPU dry run, a few minutes
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
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from adsearch.data.registry import load_data  # noqa: E402
from adsearch.spec.study_spec import StudySpec  # noqa: E402
from adsearch.train.step import Precision, resolve_device  # noqa: E402
from adsearch.train.trainer import build_model, run_trial  # noqa: E402

CONFIGS = {  # name: (arch, dataset, batch size, the epochs after which the compressing trial cuts)
    "vgg19-b128": ("vgg19", "cifar10", 128, [1]),
    "resnet18-64px": ("resnet18", "tinyimagenet", 256, [1, 2]),  # two rounds: at least 5x fewer parameters
    "vgg19-b512": ("vgg19", "cifar10", 512, [1]),
}
ARMS = ("workers", "device", "cut", "compiled", "compiled-cut", "plain", "plain-compiled", "no-benchmark")
"""workers: `run_trial`, pruning off, DataLoader workers; device: the same, data on the device; cut: the
compressing trial (on the device); compiled: `train.compile` on, pruning off and (implied) compressing,
compiled-cut: only the compressing one; plain and
plain-compiled: the plain loop eager and under torch.compile, full width and at the cut's widths;
no-benchmark: the compressing trial with `train.cudnn_benchmark` off."""


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


def trial_spec(config: str, root: Path, args, *, on_device: bool, compress: bool, cudnn_benchmark: bool = True,
               compiled: bool = False) -> StudySpec:
    """The arm's spec: `args.epochs` epochs, and one more per cut when compressing."""
    arch, dataset, batch, cuts = CONFIGS[config]
    epochs = args.epochs + (len(cuts) if compress else 0)
    return StudySpec.model_validate({
        "name": f"bench-{config}", "seed": 0,
        "model": {"arch": arch, "width_mult": args.width_mult},
        "data": {"dataset": dataset, "root": str(root), "on_device": on_device, "workers": args.workers},
        "train": {"epochs": epochs, "batch_size": batch, "eval_batch_size": 1024, "device": args.device,
                  "amp": "bf16" if args.device != "cpu" else False, "channels_last": args.device != "cpu",
                  "cudnn_benchmark": cudnn_benchmark, "compile": compiled,
                  "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
                  "lr_schedule": "cosine"},
        "pruning": ({"method": "activation_density", "compress_at": cuts, "target_density": 1.0,
                     "min_channels": 8, "round_to": 8} if compress else {"method": "none"}),
    })


def time_trial(spec: StudySpec) -> dict:
    """`run_trial` as the study runs it (a checkpoint made every epoch); seconds per epoch."""
    marks = [time.time()]  # the wall clock: trials in separate processes are lined up by it

    def report(metrics: dict, checkpoint: dict) -> None:
        marks.append(time.time())

    result = run_trial(spec, report=report)
    epochs = [b - a for a, b in zip(marks, marks[1:])]
    first = result["history"][0]
    return {"epoch_s": epochs, "marks": marks, "compile_s": [h.get("compile_s", 0.0) for h in result["history"]],
            "params_before": first["params"], "params": result["params"],
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
                          fused=device.type == "cuda")
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


def concurrent(config: str, root: Path, args, k: int, compress: bool) -> dict:
    """`k` trials on the device at once, each its own process: epochs per second in all.

    Only epochs run while every trial is past its warm-up (its first epoch, and its cuts when
    compressing, which compile when `--concurrent-compile`) and none has finished count: an epoch
    run while another trial was compiling would overstate what sharing the GPU gives. With too few
    epochs there is no such overlap, and the run says so (raise `--epochs`)."""
    spec = trial_spec(config, root, args, on_device=True, compress=compress, compiled=args.concurrent_compile)
    skip = 1 + (len(CONFIGS[config][3]) if compress else 0)
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, "--child", spec.model_dump_json()], stdout=subprocess.PIPE,
                              text=True) for _ in range(k)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    wall = time.perf_counter() - t0
    opens, closes = max(o["marks"][skip] for o in outs), min(o["marks"][-1] for o in outs)
    steady_s = []
    for o in outs:  # each trial's epochs that began and ended inside the window all trials were steady
        inside = [b - a for a, b in zip(o["marks"][skip:], o["marks"][skip + 1:]) if a >= opens and b <= closes]
        steady_s.append(statistics.median(inside) if inside else None)
    rate = sum(1 / x for x in steady_s) if all(steady_s) else None
    return {"k": k, "compressed": compress, "wall_s": wall, "steady_epoch_s": steady_s, "epochs_per_s": rate,
            "params": outs[0]["params"], "overlap_s": max(0.0, closes - opens)}


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
            spec = trial_spec(config, root, args, on_device=True, compress=True, cudnn_benchmark=policy == "on")
            r = in_child(spec)
            out[policy].append(r)
            t = r["epoch_s"]
            print(f"  cudnn.benchmark {policy:<3}: epochs {' '.join(f'{x:.2f}' for x in t)}; first after the cut "
                  f"{t[1] - statistics.median(t[2:]):+.2f} s over steady {statistics.median(t[2:]):.2f} s; "
                  f"widths {r['widths']}", flush=True)
    return out


TRIAL_ARMS = {  # arm: (table name, spec options)
    "workers": ("trial, DataLoader workers", {"on_device": False, "compress": False}),
    "device": ("trial, on device", {"on_device": True, "compress": False}),
    "cut": ("trial, compressing", {"on_device": True, "compress": True}),
    "no-benchmark": ("trial, compressing, cudnn.benchmark off", {"on_device": True, "compress": True,
                                                                  "cudnn_benchmark": False}),
    "compiled": ("trial, compiled", {"on_device": True, "compress": False, "compiled": True}),
    "compiled-cut": ("trial, compiled, compressing", {"on_device": True, "compress": True, "compiled": True}),
}


def run_config(config: str, root: Path, args) -> dict:
    if args.cut_costs:
        print(f"\n{config}: what a cut costs, per cudnn.benchmark policy (fresh process each)")
        return cut_costs(config, root, args)
    arms = set(args.arms.split(","))
    if arms - set(ARMS):
        raise SystemExit(f"unknown arm(s) {', '.join(sorted(arms - set(ARMS)))}; choose from {', '.join(ARMS)}")
    if "compiled" in arms:
        arms.add("compiled-cut")
    out: dict = {}
    for arm, (name, options) in TRIAL_ARMS.items():
        if arm not in arms:
            continue
        skips = _cudagraph_skips()
        try:
            out[name] = time_trial(trial_spec(config, root, args, **options))
        except Exception:  # one arm failing must not cost the others' figures
            traceback.print_exc()
            continue
        skipped = _cudagraph_skips() - skips
        print(f"  {name}: epochs {' '.join(f'{x:.2f}' for x in out[name]['epoch_s'])} s"
              + (f"; CUDA graphs skipped {skipped} time(s)" if skipped else ""), flush=True)
    cut = out.get("trial, compressing") or out.get("trial, compiled, compressing")
    spec = trial_spec(config, root, args, on_device=True, compress=False)
    for compiled in (False, True):
        if ("plain-compiled" if compiled else "plain") not in arms:
            continue
        kind = "compiled" if compiled else "eager"
        epochs = args.plain_epochs + compiled  # a compiled loop's first epoch compiles
        out[f"plain loop, {kind}, full width"] = {"epoch_s": plain_loop(spec, None, epochs, compiled)}
        if cut is not None:
            out[f"plain loop, {kind}, compressed widths"] = {"epoch_s": plain_loop(spec, cut["widths"], epochs,
                                                                                   compiled)}
    return out


def _cudagraph_skips() -> int:
    """How many times Inductor has given up CUDA graphs in this process (it says why in its log)."""
    from torch._dynamo.utils import counters

    return int(counters["inductor"].get("cudagraph_skips", 0))


def print_config(config: str, arms: dict) -> None:
    """One table: each arm's epochs, its steady epoch and that over the fastest plain loop on the same
    network (full width, or the cut's widths for the steady epochs after the last cut)."""
    cuts = len(CONFIGS[config][3])
    cut = arms.get("trial, compressing") or arms.get("trial, compiled, compressing")
    if cut is not None:
        print(f"\n{config}: params {cut['params_before']:,} -> {cut['params']:,} after {cuts} cut(s) "
              f"({cut['params_before'] / cut['params']:.1f}x fewer), widths {cut['widths']}")
    fastest = {w: min((steady(f["epoch_s"]) for a, f in arms.items() if a.startswith("plain") and w in a),
                      default=None) for w in ("full width", "compressed widths")}
    print(f"  {'arm':<42} {'epochs (s)':<40} {'steady s':>9} {'/ fastest plain':>16}")
    for arm, figures in arms.items():
        times = figures["epoch_s"]
        note = ""
        if "compressing" in arm:
            s = statistics.median(times[cuts + 1:] or times[cuts:])
            ref = fastest["compressed widths"]
            compile_s = figures["compile_s"]
            for i in range(1, cuts + 1):  # the epochs right after each cut, less any recompile in them
                note += (f"  after cut {i}: {times[i]:.2f} s ({times[i] - compile_s[i] - s:+.2f} s over steady"
                         + (f", compile {compile_s[i]:.1f} s)" if compile_s[i] else ")"))
        else:
            s = steady(times)
            ref = fastest["compressed widths" if "compressed" in arm else "full width"]
        if figures.get("compile_s") and figures["compile_s"][0]:
            note += f"  first compile {figures['compile_s'][0]:.1f} s"
        shown = " ".join(f"{t:.2f}" for t in times)
        ratio = f"{s / ref:>15.2f}x" if ref else f"{'':>16}"
        print(f"  {arm:<42} {shown:<40} {s:>9.2f} {ratio}{note}")
    for kind in ("", "compiled, "):
        full, comp = arms.get(f"trial, {kind or 'on device'}".rstrip(", ")), arms.get(f"trial, {kind}compressing")
        if full and comp:
            after = statistics.median(comp["epoch_s"][cuts + 1:] or comp["epoch_s"][cuts:])
            print(f"  compressed / full-width trial epoch ({kind or 'eager, '}on device): {after / steady(full['epoch_s']):.2f}")
    if fastest["full width"] and fastest["compressed widths"]:
        print(f"  compressed / full-width fastest plain loop: {fastest['compressed widths'] / fastest['full width']:.2f}")
    if "trial, DataLoader workers" in arms and "trial, on device" in arms:
        print(f"  on-device / workers trial epoch: "
              f"{steady(arms['trial, on device']['epoch_s']) / steady(arms['trial, DataLoader workers']['epoch_s']):.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="dataset size factor (CIFAR-10 50k/10k, Tiny 20k/2k)")
    p.add_argument("--width-mult", type=float, default=1.0, help="network width factor (dry runs)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of the trainer arms (+1 when compressing)")
    p.add_argument("--plain-epochs", type=int, default=2, help="epochs of each plain-loop arm")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"which of {', '.join(CONFIGS)}")
    p.add_argument("--arms", default="workers,device,cut,compiled,plain,plain-compiled",
                   help=f"which of {', '.join(ARMS)}")
    p.add_argument("--concurrent", default="1,2,4", help="trials at once to measure (on the first config)")
    p.add_argument("--concurrent-arms", default="full,compressed", help="full and/or compressed trials at once")
    p.add_argument("--concurrent-compile", action="store_true", help="the trials at once with train.compile on")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers of the workers arm")
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
            save(results, args.out)
        ks = [int(k) for k in args.concurrent.split(",") if k.strip()]
        results["concurrent"] = []
        for which in [w.strip() for w in args.concurrent_arms.split(",") if w.strip() and ks]:
            print(f"\ntrials at once on one device ({configs[0]}, on device, {which} width"
                  f"{', compiled' if args.concurrent_compile else ''}):", flush=True)
            runs = []
            for k in ks:
                runs.append(concurrent(configs[0], root, args, k, compress=which == "compressed"))
                r = runs[-1]
                if r["epochs_per_s"] is None:
                    print(f"  {r['k']} at once: no epoch ran while all {r['k']} were steady "
                          f"({r['overlap_s']:.1f} s overlap): raise --epochs", flush=True)
                else:
                    gain = (f" ({r['epochs_per_s'] / runs[0]['epochs_per_s']:.2f}x the first)"
                            if runs[0]["epochs_per_s"] else "")
                    print(f"  {r['k']} at once: steady epoch {', '.join(f'{x:.2f}' for x in r['steady_epoch_s'])} s "
                          f"over {r['overlap_s']:.1f} s all steady; {r['epochs_per_s']:.3f} epochs/s in all{gain}",
                          flush=True)
                results["concurrent"].append(r)
                save(results, args.out)


def save(results: dict, out: Path | None) -> None:
    """The figures so far (a run cut short keeps what it measured)."""
    if out is not None:
        out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
