"""One trial: train, measure densities, compress at the planned epochs, evaluate, checkpoint.

`run_trial(spec, report=...)` reads top to bottom like a training script. It knows nothing of
Ray or Optuna: the study passes a `report(metrics, checkpoint)` callback, `adsearch train`
passes one that prints. A checkpoint is one plain dict (tensors, lists, numbers) written and
read in one place (`_Trial.checkpoint`, `_Trial.restore`), loadable with
`torch.load(weights_only=True)`. One step and one pass over the data are `adsearch.train.step`'s.

With a `PrefixCache` (`adsearch.train.prefixes`) a trial keeps its state at the study's branch epochs
and starts from the furthest state on its own path that some trial kept: the results are those
of training from scratch (`train_macs` and `wall_s` too, carried in the state), and
`spent_train_macs`, `spent_s` say what this trial actually ran.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Callable

import torch
from torch import nn

from adsearch import correctness
from adsearch.prune import cost
from adsearch.prune.compress import RoundPlan, apply_plan, group_widths, plan_round, planned_params
from adsearch.prune.criteria import channel_scores
from adsearch.data.batches import Dataset
from adsearch.data.registry import load_data
from adsearch.prune.density import DensityMonitor
from adsearch.errors import AdsearchError, DataError
from adsearch.prune.graph import channel_groups
from adsearch.models.registry import create_model
from adsearch.train.prefixes import PrefixCache, recipe_key
from adsearch.train.step import (Precision, TrainStep, build_optimizer, evaluate, lr_factor, resolve_device,
                                 state_like_params, train_one_epoch)
from adsearch.spec.study_spec import StudySpec
from adsearch.spec.training import TrainSpec

Report = Callable[[dict, dict], None]
CHECKPOINT_VERSION = 1


class TrialDiverged(AdsearchError):
    """The training loss became NaN or infinite."""


def build_model(spec: StudySpec, data: Dataset, widths: list[int] | None = None) -> nn.Module:
    return create_model(
        spec.model.arch,
        num_classes=data.num_classes,
        in_channels=data.input_shape[0],
        image_size=data.input_shape[-1],
        widths=widths,
        width_mult=spec.model.width_mult,
        layers=spec.model.layers,
        stem=spec.model.stem,
    )


class _Trial:
    """The mutable state of one trial; everything a checkpoint holds lives here."""

    def __init__(self, spec: StudySpec, device: torch.device, widths: list[int] | None = None):
        self.spec, self.device = spec, device
        self.precision = Precision.of(spec.train, device)
        if device.type == "cuda":  # each new shape (after a cut too) is timed once: train.cudnn_benchmark
            torch.backends.cudnn.benchmark = spec.train.cudnn_benchmark
        torch.manual_seed(spec.seed)
        self.data = load_data(spec.data, spec.seed).to(device)
        self.shuffle = torch.Generator().manual_seed(spec.seed)
        self.model = self._place(build_model(spec, self.data, widths))
        self.groups = channel_groups(self.model)
        self.optimizer = build_optimizer(spec, self.model)
        self.step: TrainStep | None = None
        self.new_step()
        self.epoch = 0
        self.rounds = 0
        self.train_macs = 0
        self.wall_s = 0.0  # what the schedule costs from scratch: carried over from a checkpoint
        self._wall_base, self._clock = 0.0, time.perf_counter()
        self.spent_train_macs = 0  # what this trial ran itself (not what it took from the prefix cache)
        self._spent_base, self._run_clock = 0.0, time.perf_counter()
        self.shared_epochs = 0  # the epoch of the furthest state taken from the prefix cache
        self.shared_from: int | None = None  # the trial that kept that state
        self.history: list[dict] = []
        self.compressions: list[dict] = []
        self.correct: str | None = None  # the last evaluation's correct test samples (`correctness.record`)
        self.base_widths = group_widths(self.model, self.groups)
        self._measure()

    def _place(self, model: nn.Module) -> nn.Module:
        """`model` on the device in the memory format asked for (parameters keep their identity)."""
        return model.to(self.device, memory_format=self.precision.memory_format)

    def _measure(self) -> None:
        self.params = cost.count_params(self.model)
        self.macs = cost.count_macs(self.model, self.data.input_shape)

    @property
    def widths(self) -> list[int]:
        return group_widths(self.model, self.groups)

    @property
    def events(self) -> list:
        """The rounds that changed the network so far, as the prefix cache keys them: epoch, widths
        after, and how the kept channels were carried (re-initialised, or kept with their weights:
        then which channels the criterion kept matters too). A round that cut nothing changed
        nothing but this trial's own count of rounds."""
        pruning = self.spec.pruning
        carried = [pruning.weights] if pruning.weights == "reinit" else [pruning.weights, pruning.criterion]
        return [[c["epoch"], c["widths_after"], *carried] for c in self.compressions
                if c["widths_after"] != c["widths_before"]]

    @property
    def spent_s(self) -> float:
        return self._spent_base + (time.perf_counter() - self._run_clock)

    def tick(self) -> None:
        """Bring `wall_s` up to now."""
        self.wall_s = self._wall_base + (time.perf_counter() - self._clock)

    @property
    def monitor(self) -> DensityMonitor:
        return self.step.monitor

    def new_step(self) -> None:
        """The training step (and its density monitor) for the network as it is now."""
        self.close_step()
        pruning, train = self.spec.pruning, self.spec.train
        monitor = DensityMonitor(self.model, self.groups, pruning.zero_threshold, pruning.group_density).attach()
        compiled = train.compile == "on" or (train.compile == "auto" and self.device.type == "cuda")
        self.step = TrainStep(self.model, self.optimizer, self.precision, train.label_smoothing, monitor,
                              compiled=compiled)

    def close_step(self) -> None:
        if self.step is not None:
            self.step.monitor.detach()
            self.step = None

    def compress(self, plan: RoundPlan) -> None:
        """Remove the channels `plan` drops: keep their weights, or rebuild the narrower net fresh."""
        self.close_step()
        if self.spec.pruning.weights == "inherit":
            apply_plan(self.model, self.groups, plan, self.optimizer)
            self._place(self.model)  # the cut weights are new tensors, in the default layout
            state_like_params(self.optimizer)
        else:
            widths = [plan.new_widths[g.name] for g in self.groups]
            self.model = self._place(build_model(self.spec, self.data, widths))
            self.groups = channel_groups(self.model)
            self.optimizer = build_optimizer(self.spec, self.model)
        self._measure()
        self.new_step()

    def checkpoint(self) -> dict:
        """A snapshot: deep-copied, so training on does not change a checkpoint already handed out."""
        return copy.deepcopy({
            "version": CHECKPOINT_VERSION,
            "epoch": self.epoch,
            "rounds": self.rounds,
            "widths": self.widths,
            "train_macs": self.train_macs,
            "wall_s": self.wall_s,
            "spent_train_macs": self.spent_train_macs,
            "spent_s": self.spent_s,
            "shared_epochs": self.shared_epochs,
            "shared_from": self.shared_from,
            "history": self.history,
            "compressions": self.compressions,
            "correct": self.correct,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.precision.scaler.state_dict() if self.precision.scaler is not None else {},
            "rng": {"torch": torch.get_rng_state(), "shuffle": self.shuffle.get_state(),
                    "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []},
        })

    def restore(self, ckpt: dict, *, shared_from: int | None = None, shared: bool = False) -> None:
        """Continue from `ckpt`: this trial's own (a resume), or with `shared` a state some trial
        (`shared_from`) kept in the prefix cache on this trial's path: its network, history and
        costs from scratch are this trial's, its spending and its rounds (which may count rounds
        that cut nothing) are not."""
        if ckpt.get("version") != CHECKPOINT_VERSION:
            raise AdsearchError(f"checkpoint version {ckpt.get('version')} is not {CHECKPOINT_VERSION}")
        if not shared:  # an entry of the prefix cache is fresh from disk: nobody else holds its tensors
            ckpt = copy.deepcopy(ckpt)  # the optimizer and the lists would otherwise share the caller's tensors
        self.model = self._place(build_model(self.spec, self.data, list(ckpt["widths"])))
        self.model.load_state_dict(ckpt["model"])
        self.groups = channel_groups(self.model)
        self.optimizer = build_optimizer(self.spec, self.model)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        state_like_params(self.optimizer)
        if self.precision.scaler is not None and ckpt.get("scaler"):
            self.precision.scaler.load_state_dict(ckpt["scaler"])
        for key in ("epoch", "train_macs", "wall_s", "history") + (() if shared else ("rounds", "compressions")):
            setattr(self, key, ckpt[key])
        self.correct = ckpt.get("correct")  # a checkpoint from before it was kept has none
        self._wall_base, self._clock = self.wall_s, time.perf_counter()
        if shared:
            self.shared_epochs, self.shared_from = self.epoch, shared_from
        else:  # a checkpoint from before the prefix cache has none of these
            self.spent_train_macs = ckpt.get("spent_train_macs", self.train_macs)
            self._spent_base, self._run_clock = ckpt.get("spent_s", self.wall_s), time.perf_counter()
            self.shared_epochs, self.shared_from = ckpt.get("shared_epochs", 0), ckpt.get("shared_from")
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.shuffle.set_state(ckpt["rng"]["shuffle"])
        if ckpt["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        self._measure()
        self.new_step()


def run_trial(spec: StudySpec, *, report: Report | None = None, checkpoint: dict | None = None,
              prefixes: PrefixCache | None = None, widths: list[int] | None = None) -> dict:
    """Train one trial of `spec` to the end and return its final metrics.

    Args:
        spec: the trial's full spec (sampled values already put in).
        report: called after every epoch with that epoch's metrics and a checkpoint dict (of the
            epochs taken from the prefix cache, only the branch epochs are reported).
        checkpoint: a dict from an earlier `report` call to continue from.
        prefixes: the study's prefix cache: states to start from, and where to keep this trial's.
        widths: start from these group widths instead of the spec's (a scratch control: a pruned
            trial's final widths trained from the start; `base_widths` are then these).

    Raises:
        TrialDiverged: the training loss became NaN or infinite.
    """
    t = _Trial(spec, resolve_device(spec.train.device), widths)
    try:
        if checkpoint is not None:
            t.restore(checkpoint)
        return _train(t, spec, report, prefixes)
    finally:
        t.close_step()
        t.data.close()  # DataLoader workers end with the trial, also when it fails


def _train(t: _Trial, spec: StudySpec, report: Report | None, prefixes: PrefixCache | None) -> dict:
    """The epoch loop of `run_trial`, from the epoch `t` stands at to the end."""
    train = spec.train
    steps = steps_per_epoch(train, t.data.n_train)
    recipe = recipe_key(spec, _device_kind(t.device), torch.get_num_threads()) if prefixes is not None else ""
    branches = prefixes.epochs | set(spec.pruning.schedule(train.epochs)) | {train.epochs} if prefixes is not None else set()
    metrics: dict = {}
    while t.epoch < train.epochs:
        epoch = _shared_epoch(t, prefixes, recipe, branches) if prefixes is not None else None
        if epoch is None:
            epoch = _train_epoch(t, spec, steps)
            if prefixes is not None and t.epoch in branches:
                t.tick()
                prefixes.save(prefixes.path(recipe, t.events, t.epoch),
                              {"state": t.checkpoint(), "record": epoch[0],
                               "channel_densities": {g: cd.cpu() for g, cd in epoch[1].items()}})
        record, channel_densities = epoch
        _compress(t, spec, record, channel_densities)
        t.tick()
        t.history.append(record)
        metrics = _metrics(t, record)
        if t.epoch == train.epochs:
            _final(t, metrics)
        if report is not None:
            report(metrics, t.checkpoint())
    if not metrics:  # resumed from a checkpoint of the last epoch: report the end once more
        metrics = _metrics(t, t.history[-1])
        _final(t, metrics)
        if report is not None:
            report(metrics, t.checkpoint())
    metrics["history"] = t.history
    metrics["compressions"] = t.compressions
    metrics["base_widths"] = t.base_widths
    return metrics


def _final(t: _Trial, metrics: dict) -> None:
    """What only the last epoch's report carries: the measured latency, and which test samples the
    trial got right (for paired comparisons: `adsearch.correctness`)."""
    metrics["latency_ms"] = cost.latency_ms(t.model, t.data.input_shape)
    if t.correct is not None:
        metrics["correct"] = t.correct


def _device_kind(device: torch.device) -> str:
    """The device as the prefix cache keys it: its type, and a GPU's model (another model's kernels
    give other floats)."""
    return f"cuda:{torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type


def _train_epoch(t: _Trial, spec: StudySpec, steps: int | None) -> tuple[dict, dict]:
    """Train one epoch at its learning rate, counting densities on the device, then evaluate:
    the epoch's record and its channel densities."""
    train = spec.train
    base_lr = train.optimizer.lr
    factor = lr_factor(train.lr_schedule, t.epoch, train.epochs)
    for group in t.optimizer.param_groups:
        group["lr"] = base_lr * factor
    macs_this_epoch = t.macs
    compiling = t.step.compile_s is None
    t.monitor.reset()
    stats = train_one_epoch(t.step, t.data.train_batches(train.batch_size, t.shuffle), t.device, steps=steps)
    channel_densities = t.monitor.channel_densities()
    if not math.isfinite(stats["train_loss"]):
        raise TrialDiverged(f"training loss became {stats['train_loss']} in epoch {t.epoch + 1}")
    t.epoch += 1
    epoch_macs = cost.train_macs(macs_this_epoch, stats["samples"])
    t.train_macs += epoch_macs
    t.spent_train_macs += epoch_macs
    scores = evaluate(t.model, t.data.test_batches(train.eval_batch_size), t.device, t.data.num_classes,
                      t.precision, per_sample=True)
    t.correct = correctness.record(scores.pop("correct"), scores.pop("labels"))
    densities = {g: round(float(cd.mean()), 4) for g, cd in channel_densities.items()}
    record = {"epoch": t.epoch, "lr": base_lr * factor, **stats, **scores,
              "params": t.params, "macs": t.macs, "widths": t.widths, "density": densities}
    if compiling:  # this epoch's first step traced and compiled the step for these widths
        record["compile_s"] = round(t.step.compile_s, 3)
    return record, channel_densities


def _shared_epoch(t: _Trial, prefixes: PrefixCache, recipe: str, branches: set[int]) -> tuple[dict, dict] | None:
    """If the prefix cache holds this trial's state at its next branch epoch, restore it there and
    return that epoch's record and channel densities; else None (train on)."""
    following = [e for e in branches if e > t.epoch]
    if not following:
        return None
    entry = prefixes.load(prefixes.path(recipe, t.events, min(following)))
    if entry is None:
        return None
    t.restore(entry["state"], shared=True, shared_from=entry.get("owner"))
    return entry["record"], entry["channel_densities"]


def _compress(t: _Trial, spec: StudySpec, record: dict, channel_densities: dict) -> None:
    """Compress after the epoch `t` stands at: at a planned epoch that training follows, while
    rounds remain."""
    pruning = spec.pruning
    if not (pruning.method != "none" and t.epoch in pruning.schedule(spec.train.epochs)
            and t.rounds < pruning.rounds(spec.train.epochs)):
        return
    scores = channel_scores(t.model, t.groups, pruning.criterion, channel_densities, seed=spec.seed, epoch=t.epoch)
    plan = plan_round(t.groups, channel_densities, scores=scores, widths=pruning.widths, keep=pruning.keep,
                      target_density=pruning.target_density, min_channels=pruning.min_channels,
                      round_to=pruning.round_to, params=lambda plan: planned_params(t.model, t.groups, plan))
    before = t.widths
    if plan.changed:
        t.compress(plan)
    t.rounds += 1
    t.compressions.append({"epoch": t.epoch, "round": t.rounds, "density": record["density"],
                           "widths_before": before, "widths_after": t.widths,
                           "params": t.params, "macs": t.macs})


def steps_per_epoch(train: TrainSpec, n_train: int) -> int | None:
    """Training steps per epoch: only full batches with `train.drop_last` (None: every batch)."""
    if not train.drop_last:
        return None
    if train.batch_size > n_train:
        raise DataError(f"train.batch_size {train.batch_size} is larger than the training split ({n_train} "
                        "samples), and train.drop_last skips a batch that is not full: lower batch_size "
                        "or set train.drop_last: false")
    return n_train // train.batch_size


def _metrics(t: _Trial, record: dict) -> dict:
    return {
        "epoch": t.epoch,
        "accuracy": record["accuracy"],
        "test_samples": t.data.n_test,  # what the accuracy's interval rests on
        "top5": record["top5"],
        "loss": record["loss"],
        "train_loss": record["train_loss"],
        "params": t.params,
        "macs": t.macs,
        "train_macs": t.train_macs,
        "wall_s": t.wall_s,
        "spent_train_macs": t.spent_train_macs,
        "spent_s": t.spent_s,
        "shared_epochs": t.shared_epochs,
        "shared_from": t.shared_from,
        "rounds": t.rounds,
        "widths": t.widths,
        "density": record["density"],
    }
