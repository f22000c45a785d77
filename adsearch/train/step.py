"""One optimisation step and one pass: the device, the precision a batch is computed in, the optimizer
and its learning-rate factor, `TrainStep` (forward, loss, backward, update), `train_one_epoch` and
`evaluate`. The trial (`adsearch.train.trainer`) strings them into epochs."""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from adsearch.errors import AdsearchError
from adsearch.prune.density import DensityMonitor
from adsearch.spec.study_spec import StudySpec
from adsearch.spec.training import ScheduleSpec, TrainSpec


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise AdsearchError(f"train.device is {name!r} but CUDA is not available here; use auto or cpu")
    return torch.device(name)


CHANNELS_LAST_DEVICES = ("cuda",)
"""Where `train.channels_last` is applied. On the CPU it buys nothing (ResNet-18, 32 px, batch 32, one
thread: 133 ms a step against 137 in the default layout) and is unsafe for pruned networks: oneDNN's
1x1 stride-2 convolution's weight gradient in NHWC with fewer input channels than its block (a
narrowed ResNet shortcut) writes past its workspace, corrupting the heap or the gradient (oneDNN
issue 6035, in torch 2.14.1's build); so the CPU keeps the default layout."""


@dataclass
class Precision:
    """How a batch is computed: autocast to `dtype` (None: float32), fp16 loss scaling, memory format."""

    device_type: str = "cpu"
    dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    memory_format: torch.memory_format = torch.preserve_format

    @classmethod
    def of(cls, train: TrainSpec, device: torch.device) -> Precision:
        if (train.amp == "bf16" and device.type == "cuda"
                and not torch.cuda.is_bf16_supported(including_emulation=False)):  # emulated bf16 is slow
            raise AdsearchError(f"train.amp is bf16 but {torch.cuda.get_device_name(device)} has no bfloat16; "
                                "use fp16 (or off)")
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(train.amp)
        scaler = torch.amp.GradScaler(device.type) if train.amp == "fp16" else None
        memory_format = (torch.channels_last if train.channels_last and device.type in CHANNELS_LAST_DEVICES
                         else torch.preserve_format)
        return cls(device.type, dtype, scaler, memory_format)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def build_optimizer(spec: StudySpec, model: nn.Module) -> torch.optim.Optimizer:
    """The spec's optimizer over `model`'s parameters: fused (one kernel for all of them) when they
    are all on a GPU, PyTorch's default implementation elsewhere."""
    opt = spec.train.optimizer
    params = list(model.parameters())
    fused = {"fused": True} if params and all(p.is_cuda and p.is_floating_point() for p in params) else {}
    if opt.name == "sgd":
        return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum,
                               weight_decay=opt.weight_decay, nesterov=opt.nesterov, **fused)
    cls = torch.optim.Adam if opt.name == "adam" else torch.optim.AdamW
    return cls(params, lr=opt.lr, betas=opt.betas, weight_decay=opt.weight_decay, **fused)


def state_like_params(optimizer: torch.optim.Optimizer) -> None:
    """Give each per-parameter state tensor (momentum, Adam's moments) its parameter's memory layout:
    state carried through a cut, or loaded from a checkpoint, is in the default layout, and a fused
    optimizer refuses a channels_last parameter whose state is not."""
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def lr_factor(schedule: ScheduleSpec, epoch: int, epochs: int) -> float:
    """The learning-rate multiplier for 0-based `epoch` of `epochs`."""
    if schedule.name == "step":
        return schedule.gamma ** (epoch // schedule.step_size)
    if schedule.name == "cosine":
        return 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    return 1.0


class TrainStep:
    """One optimisation step on a batch: forward (the density monitor's hooks counting inside it),
    loss, backward, update; the loss and the hits stay on the device.

    With `compiled`, forward and loss (and so their backward) run through `torch.compile`, with CUDA
    graphs on a GPU (`mode="reduce-overhead"`) and Inductor's kernels on the CPU; the shapes are
    fixed (`dynamic=False`), so a step lives as long as the network's widths: the trainer makes a
    new one after each compression. `compile_s` is the wall time of the first step, which pays for
    tracing and compiling (None until then, 0.0 when eager).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, precision: Precision,
                 label_smoothing: float, monitor: DensityMonitor | None = None, compiled: bool = False):
        self.model, self.optimizer, self.precision = model, optimizer, precision
        self.label_smoothing, self.monitor = label_smoothing, monitor
        self.compile_s: float | None = None if compiled else 0.0
        self._forward = self._loss
        if compiled:
            torch._dynamo.reset()  # the previous widths' graphs (and CUDA graph memory) are done with
            mode = "reduce-overhead" if precision.device_type == "cuda" else None
            self._forward = torch.compile(self._loss, mode=mode, dynamic=False)

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.precision.autocast():
            out = self.model(x)
            loss = F.cross_entropy(out, y, label_smoothing=self.label_smoothing)
        return loss, (out.detach().argmax(1) == y).sum()

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.compile_s is None:
            return self._first(x, y)
        loss, hits = self._forward(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        scaler = self.precision.scaler
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(self.optimizer)
            scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        if self.monitor is not None:
            self.monitor.collect()  # before a CUDA graph's next replay overwrites its counts
        return loss.detach(), hits

    def _first(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first compiled step, timed: two syncs, once per compile."""
        _sync(x.device)
        t0 = time.perf_counter()
        self.compile_s = 0.0
        try:
            out = self(x, y)
        except torch._dynamo.exc.BackendCompilerFailed as e:  # e.g. no C++ compiler for Inductor's CPU kernels
            reason = str(e).strip().splitlines()[0]
            raise AdsearchError(f"train.compile: torch.compile cannot compile the training step on this machine "
                                f"({reason}); set train.compile: off, or auto (compiles on a GPU only)") from e
        _sync(x.device)
        self.compile_s = time.perf_counter() - t0
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_one_epoch(step: TrainStep, batches, device: torch.device, *, steps: int | None = None) -> dict:
    """One pass over `batches` (at most `steps` of them). Loss and hits are summed on the device:
    one sync at the end (fp16's loss scaler checks its gradients for inf on the host each step;
    bf16 does not)."""
    step.model.train()
    memory_format = step.precision.memory_format
    loss_sum = torch.zeros((), device=device)
    hits = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for x, y in itertools.islice(batches, steps):
        x = x.to(device, non_blocking=True, memory_format=memory_format)
        y = y.to(device, non_blocking=True)
        loss, batch_hits = step(x, y)
        loss_sum += loss.float() * y.shape[0]
        hits += batch_hits
        seen += y.shape[0]
    return {"train_loss": loss_sum.item() / seen, "train_accuracy": hits.item() / seen, "samples": seen}


@torch.no_grad()
def evaluate(model, batches, device, num_classes: int, precision: Precision | None = None, *,
             per_sample: bool = False) -> dict:
    """Top-1 and top-5 accuracy and mean loss on `batches`; with `per_sample` also `correct` (one
    bool per sample, top-1) and `labels`, on the CPU, in the order of `batches`."""
    precision = precision or Precision(device.type)
    model.eval()
    tuning = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False  # evaluation's shapes are not worth timing: its heuristics
    try:
        return _evaluate(model, batches, device, num_classes, precision, per_sample)
    finally:
        torch.backends.cudnn.benchmark = tuning


def _evaluate(model, batches, device, num_classes: int, precision: Precision, per_sample: bool) -> dict:
    k = min(5, num_classes)
    hits, labels = [], []
    loss_sum = torch.zeros((), device=device)
    top1 = torch.zeros((), device=device, dtype=torch.long)
    topk = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for x, y in batches:
        x = x.to(device, non_blocking=True, memory_format=precision.memory_format)
        y = y.to(device, non_blocking=True)
        with precision.autocast():
            out = model(x)
        loss_sum += F.cross_entropy(out.float(), y, reduction="sum")
        pred = out.topk(k, dim=1).indices
        hit = pred[:, 0] == y
        top1 += hit.sum()
        topk += (pred == y[:, None]).any(dim=1).sum()
        seen += y.shape[0]
        if per_sample:  # kept on the device: one copy to the host at the end
            hits.append(hit)
            labels.append(y)
    scores = {"loss": loss_sum.item() / seen, "accuracy": top1.item() / seen, "top5": topk.item() / seen}
    if per_sample:
        scores["correct"], scores["labels"] = torch.cat(hits).cpu(), torch.cat(labels).cpu()
    return scores
