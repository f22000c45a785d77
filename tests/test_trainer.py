"""One trial (adsearch.trainer): compression in training, per-epoch reports, exact resume, reinit, divergence."""

from __future__ import annotations

import io
import math

import pytest
import torch

from adsearch.cost import count_macs, count_params
from adsearch.models import create_model
from adsearch.spec import ScheduleSpec, parse_spec
from adsearch.trainer import TrialDiverged, lr_factor, run_trial

# 256 synthetic samples, 51 held out (int(256 * 0.2)), 205 to train on; 4 classes of 3 x 8 x 8
SPEC = """\
name: tiny
seed: 0
model: {arch: vgg, layers: [8, M, 16, 16]}
data: {dataset: synthetic, num_samples: 256, image_size: 8}
train: {epochs: 3, batch_size: 32, device: cpu, optimizer: {name: sgd, lr: 0.05}}
pruning: {compress_at: [1], min_channels: 2, weights: inherit}
"""
N_TRAIN = 205


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the same float sums in every run, so a resumed run can match exactly."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build(widths):
    return create_model("vgg", layers=[8, "M", 16, 16], num_classes=4, in_channels=3, image_size=8, widths=widths)


class Stop(Exception):
    """Raised from a report callback to end a trial early."""


def run_recorded(spec, checkpoint=None, stop_after: int | None = None):
    reports = []

    def report(metrics, ckpt):
        reports.append((metrics, ckpt))
        if stop_after is not None and metrics["epoch"] == stop_after:
            raise Stop

    try:
        final = run_trial(spec, report=report, checkpoint=checkpoint)
    except Stop:
        final = None
    return final, reports


@pytest.fixture(scope="module")
def straight(one_thread):
    return run_recorded(parse_spec(SPEC))


def test_trial_reports_every_epoch(straight):
    final, reports = straight
    assert [m["epoch"] for m, _ in reports] == [1, 2, 3]
    assert "latency_ms" in reports[-1][0] and "latency_ms" not in reports[0][0]
    assert [h["epoch"] for h in final["history"]] == [1, 2, 3]
    assert all(0 <= m["accuracy"] <= 1 and math.isfinite(m["train_loss"]) for m, _ in reports)
    assert final["accuracy"] == reports[-1][0]["accuracy"]


def test_compression_at_epoch_1_shrinks_the_network(straight):
    final, reports = straight
    (round1,) = final["compressions"]
    assert round1["epoch"] == 1 and round1["round"] == 1 and final["rounds"] == 1
    assert round1["widths_before"] == [8, 16, 16] == final["base_widths"]
    after = round1["widths_after"]
    assert after == final["widths"] == reports[0][0]["widths"]  # no change after the one round
    assert all(2 <= a <= b for a, b in zip(after, [8, 16, 16])) and after != [8, 16, 16]
    assert final["params"] == round1["params"] == count_params(build(after)) < count_params(build([8, 16, 16]))
    # the widths follow the densities of epoch 1 (logged to 4 decimals): ceil(density * width), at least 2
    for width, name, new in zip([8, 16, 16], ["conv1", "conv2", "conv3"], after):
        d = round1["density"][name]
        assert max(2, math.ceil((d - 5e-5) * width)) <= new <= max(2, math.ceil((d + 5e-5) * width))


def test_training_macs_count_epoch_1_at_full_size_and_the_rest_compressed(straight):
    final, reports = straight
    assert reports[0][0]["macs"] == final["macs"]  # epoch 1's metrics already show the compressed network
    full = count_macs(build([8, 16, 16]), (3, 8, 8))
    assert final["macs"] == count_macs(build(final["widths"]), (3, 8, 8)) < full
    assert final["train_macs"] == 3 * N_TRAIN * full + 2 * 3 * N_TRAIN * final["macs"]


def test_resume_from_the_epoch_1_checkpoint_matches_the_straight_run(straight):
    final, reports = straight
    buffer = io.BytesIO()
    torch.save(reports[0][1], buffer)
    buffer.seek(0)
    ckpt = torch.load(buffer, weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["widths"] == final["widths"]
    resumed, resumed_reports = run_recorded(parse_spec(SPEC), checkpoint=ckpt)
    assert [m["epoch"] for m, _ in resumed_reports] == [2, 3]
    assert resumed["accuracy"] == final["accuracy"]
    assert resumed["loss"] == final["loss"]
    assert resumed["widths"] == final["widths"]
    assert resumed["train_macs"] == final["train_macs"]
    assert len(resumed["history"]) == 3 and resumed["compressions"] == final["compressions"]


def test_a_checkpoint_handed_out_is_a_snapshot(straight):
    final, reports = straight
    first, last = reports[0][1], reports[-1][1]
    assert len(first["history"]) == 1 and len(last["history"]) == 3
    assert not torch.equal(first["model"]["features.0.0.weight"], last["model"]["features.0.0.weight"])


def test_resuming_leaves_the_checkpoint_as_it_was(straight):
    final, reports = straight
    ckpt = reports[0][1]  # in memory, not through a file
    weight = ckpt["model"]["features.0.0.weight"].clone()
    momentum = {k: v["momentum_buffer"].clone() for k, v in ckpt["optimizer"]["state"].items()}
    twice = [run_trial(parse_spec(SPEC), checkpoint=ckpt) for _ in range(2)]
    assert [r["accuracy"] for r in twice] == [final["accuracy"]] * 2
    assert torch.equal(ckpt["model"]["features.0.0.weight"], weight) and len(ckpt["history"]) == 1
    assert all(torch.equal(ckpt["optimizer"]["state"][k]["momentum_buffer"], v) for k, v in momentum.items())


def test_reinit_gives_the_same_widths_with_fresh_weights(straight):
    _, inherit_reports = straight
    spec = parse_spec(SPEC.replace("weights: inherit", "weights: reinit"))
    _, reports = run_recorded(spec, stop_after=1)
    inherit_ckpt, reinit_ckpt = inherit_reports[0][1], reports[0][1]
    assert reinit_ckpt["widths"] == inherit_ckpt["widths"]
    assert reports[0][0]["params"] == inherit_reports[0][0]["params"]
    inherited, fresh = inherit_ckpt["model"], reinit_ckpt["model"]
    assert {k: v.shape for k, v in fresh.items()} == {k: v.shape for k, v in inherited.items()}
    assert not torch.equal(fresh["features.0.0.weight"], inherited["features.0.0.weight"])
    # not trained since it was built: BN at its initial values, and the optimizer has no momentum yet
    assert torch.equal(fresh["features.0.1.weight"], torch.ones(inherit_ckpt["widths"][0]))
    assert torch.equal(fresh["features.0.1.running_mean"], torch.zeros(inherit_ckpt["widths"][0]))
    assert not torch.equal(inherited["features.0.1.weight"], torch.ones(inherit_ckpt["widths"][0]))
    assert reinit_ckpt["optimizer"]["state"] == {} and inherit_ckpt["optimizer"]["state"] != {}


def test_no_compression_without_pruning():
    spec = parse_spec(SPEC.replace("epochs: 3", "epochs: 1").replace("compress_at: [1]", "method: none"))
    final = run_trial(spec)
    assert final["widths"] == [8, 16, 16] and final["compressions"] == [] and final["rounds"] == 0
    assert final["train_macs"] == 3 * N_TRAIN * final["macs"]


def test_no_compression_after_the_last_epoch():
    final = run_trial(parse_spec(SPEC.replace("epochs: 3", "epochs: 1")))  # a smoke run of a compressing spec
    assert final["widths"] == [8, 16, 16] and final["compressions"] == [] and final["rounds"] == 0


def test_an_absurd_learning_rate_raises_trial_diverged():
    spec = parse_spec(SPEC.replace("lr: 0.05", "lr: 1.0e+6"))
    with pytest.raises(TrialDiverged, match="training loss became nan in epoch 1"):
        run_trial(spec)


def test_lr_schedules():
    assert lr_factor(ScheduleSpec(name="constant"), 5, 10) == 1.0
    assert lr_factor(ScheduleSpec(name="cosine"), 0, 10) == 1.0
    assert lr_factor(ScheduleSpec(name="cosine"), 5, 10) == pytest.approx(0.5)
    assert lr_factor(ScheduleSpec(name="step", step_size=2, gamma=0.1), 3, 10) == pytest.approx(0.1)
    assert lr_factor(ScheduleSpec(name="step", step_size=2, gamma=0.1), 4, 10) == pytest.approx(0.01)
