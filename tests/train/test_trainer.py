"""One trial (adsearch.train.trainer): compression in training, per-epoch reports, exact resume, reinit, divergence."""

from __future__ import annotations

import io
import math

import pytest
import torch
from helpers import one_torch_thread

from adsearch import correctness
from adsearch.prune.cost import count_macs, count_params
from adsearch.errors import AdsearchError, DataError
from adsearch.models.registry import create_model
from adsearch.spec.loading import parse_spec
from adsearch.train import step as step_module
from adsearch.train.step import Precision, build_optimizer
from adsearch.train.trainer import TrialDiverged, run_trial

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
N_SEEN = N_TRAIN // 32 * 32  # train.drop_last (the default): full batches of 32 only


@pytest.fixture(scope="module", autouse=True)
def one_thread_for_the_module():
    """One torch thread for every test here: the straight run and its resumes must match exactly."""
    with one_torch_thread():
        yield


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
def straight(one_thread_for_the_module):
    return run_recorded(parse_spec(SPEC))


def test_trial_reports_every_epoch(straight):
    final, reports = straight
    assert [m["epoch"] for m, _ in reports] == [1, 2, 3]
    assert "latency_ms" in reports[-1][0] and "latency_ms" not in reports[0][0]
    assert [h["epoch"] for h in final["history"]] == [1, 2, 3]
    assert all(0 <= m["accuracy"] <= 1 and math.isfinite(m["train_loss"]) for m, _ in reports)
    assert final["accuracy"] == reports[-1][0]["accuracy"]


def test_the_last_report_keeps_which_test_samples_the_trial_got_right(straight):
    final, reports = straight
    assert "correct" not in reports[0][0] and reports[-1][0]["correct"] == final["correct"]
    record = final["correct"]
    assert correctness.samples(record) == 51 == final["test_samples"]
    hits = correctness.bits(record)
    assert hits.dtype == bool and hits.size == 51
    assert round(hits.sum() / 51, 12) == round(final["accuracy"], 12)
    # the checkpoint of the last epoch keeps them too, and a resume from it reports them again
    buffer = io.BytesIO()
    torch.save(reports[-1][1], buffer)
    buffer.seek(0)
    resumed, again = run_recorded(parse_spec(SPEC), checkpoint=torch.load(buffer, weights_only=True))
    assert [m["epoch"] for m, _ in again] == [3] and resumed["correct"] == record


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
    assert final["train_macs"] == 3 * N_SEEN * full + 2 * 3 * N_SEEN * final["macs"]


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


def test_uniform_matched_cuts_every_layer_alike_to_the_parameters_density_keeps(straight):
    """From the same epoch-1 state (the same seed and data order): density's cut sets the size, the
    matched rule spreads it over every layer."""
    _, density_reports = straight
    spec = parse_spec(SPEC.replace("min_channels: 2", "min_channels: 2, widths: uniform_matched"))
    _, reports = run_recorded(spec, stop_after=1)
    density_cut, matched_cut = density_reports[0][0], reports[0][0]
    assert matched_cut["widths"] != density_cut["widths"] and matched_cut["rounds"] == 1
    assert abs(matched_cut["params"] - density_cut["params"]) <= 0.1 * density_cut["params"]
    fractions = [w / base for w, base in zip(matched_cut["widths"], [8, 16, 16])]
    assert max(fractions) - min(fractions) <= 1 / 8  # one fraction, up to a channel of the narrowest layer


def test_no_compression_without_pruning():
    spec = parse_spec(SPEC.replace("epochs: 3", "epochs: 1").replace("compress_at: [1]", "method: none"))
    final = run_trial(spec)
    assert final["widths"] == [8, 16, 16] and final["compressions"] == [] and final["rounds"] == 0
    assert final["train_macs"] == 3 * N_SEEN * final["macs"]
    assert [h["samples"] for h in final["history"]] == [N_SEEN]


def test_without_drop_last_an_epoch_trains_on_every_sample():
    spec = parse_spec(SPEC.replace("epochs: 3", "epochs: 1").replace("compress_at: [1]", "method: none")
                      .replace("batch_size: 32", "batch_size: 32, drop_last: false"))
    final = run_trial(spec)
    assert final["history"][0]["samples"] == N_TRAIN and final["train_macs"] == 3 * N_TRAIN * final["macs"]


def test_a_batch_larger_than_the_training_split_is_a_data_error_before_training():
    spec = parse_spec(SPEC.replace("batch_size: 32", "batch_size: 256"))
    with pytest.raises(DataError, match=r"train.batch_size 256 is larger than the training split \(205 samples\)"):
        run_trial(spec)


def test_no_compression_after_the_last_epoch():
    final = run_trial(parse_spec(SPEC.replace("epochs: 3", "epochs: 1")))  # a smoke run of a compressing spec
    assert final["widths"] == [8, 16, 16] and final["compressions"] == [] and final["rounds"] == 0


def test_an_absurd_learning_rate_raises_trial_diverged():
    spec = parse_spec(SPEC.replace("lr: 0.05", "lr: 1.0e+6"))
    with pytest.raises(TrialDiverged, match="training loss became nan in epoch 1"):
        run_trial(spec)



# --- each optimizer, schedule and loss field changes the training it names ----------------------

SGD = "{name: sgd, lr: 0.05, momentum: 0.9}"


def trained_with(optimizer: str = SGD, train: str = "lr_schedule: constant", epochs: int = 2):
    """Two epochs of SPEC without pruning, with these optimizer and train fields; (final, reports)."""
    text = SPEC.replace("epochs: 3", f"epochs: {epochs}").replace("compress_at: [1]", "method: none")
    text = text.replace("optimizer: {name: sgd, lr: 0.05}", f"optimizer: {optimizer}, {train}")
    return run_recorded(parse_spec(text))


def last_weights(reports) -> torch.Tensor:
    return reports[-1][1]["model"]["features.0.0.weight"]


@pytest.fixture(scope="module")
def plain(one_thread_for_the_module):
    """SGD with momentum 0.9, no Nesterov, constant learning rate, no label smoothing."""
    return trained_with()


def test_label_smoothing_is_in_the_training_loss_and_not_the_test_loss(plain, monkeypatch):
    smoothing = []
    cross_entropy = torch.nn.functional.cross_entropy

    def recorded(*args, **kwargs):
        smoothing.append(kwargs.get("label_smoothing", 0.0))
        return cross_entropy(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", recorded)
    final, reports = trained_with(train="lr_schedule: constant, label_smoothing: 0.2")
    batches = N_TRAIN // 32
    assert smoothing == ([0.2] * batches + [0.0]) * 2  # each epoch: its training batches, then one test batch
    plain_final, plain_reports = plain  # the same seed, so the same batches: the targets alone differ
    assert final["history"][0]["train_loss"] != plain_final["history"][0]["train_loss"]
    assert not torch.equal(last_weights(reports), last_weights(plain_reports))


def test_nesterov_is_the_optimizer_the_trial_trains_with(plain):
    final, reports = trained_with(optimizer="{name: sgd, lr: 0.05, momentum: 0.9, nesterov: true}")
    plain_final, plain_reports = plain
    group = reports[-1][1]["optimizer"]["param_groups"][0]
    assert group["nesterov"] is True and group["momentum"] == 0.9
    assert plain_reports[-1][1]["optimizer"]["param_groups"][0]["nesterov"] is False
    assert torch.equal(last_weights(trained_with()[1]), last_weights(plain_reports))  # the run repeats exactly
    assert not torch.equal(last_weights(reports), last_weights(plain_reports))  # so Nesterov made the change


def test_adam_and_adamw_are_built_and_trained_with(plain):
    weights = {}
    for name, cls in [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)]:
        optimizer = f"{{name: {name}, lr: 0.01, betas: [0.8, 0.99], weight_decay: 0.1}}"
        spec = parse_spec(SPEC.replace("{name: sgd, lr: 0.05}", optimizer))
        built = build_optimizer(spec, build([8, 16, 16]))
        assert type(built) is cls  # AdamW subclasses Adam: exactly the class named
        assert built.defaults["betas"] == (0.8, 0.99) and built.defaults["weight_decay"] == 0.1
        assert built.defaults["lr"] == 0.01
        final, reports = trained_with(optimizer=optimizer)
        state = reports[-1][1]["optimizer"]["state"]
        assert state and all({"exp_avg", "exp_avg_sq"} <= set(s) and "momentum_buffer" not in s
                             for s in state.values())
        assert all(math.isfinite(h["train_loss"]) for h in final["history"])
        weights[name] = last_weights(reports)
    # Adam adds the decay to the gradient, AdamW to the weights: with weight_decay the two part ways
    assert not torch.equal(weights["adam"], weights["adamw"])
    assert not torch.equal(weights["adam"], last_weights(plain[1]))


def test_the_step_schedule_sets_each_epochs_learning_rate():
    final, reports = trained_with(train="lr_schedule: {name: step, step_size: 1, gamma: 0.5}", epochs=3)
    assert [h["lr"] for h in final["history"]] == pytest.approx([0.05, 0.025, 0.0125])
    # the rate recorded is the one the optimizer stepped with in that epoch
    assert [c["optimizer"]["param_groups"][0]["lr"] for _, c in reports] == [h["lr"] for h in final["history"]]
    every_2 = trained_with(train="lr_schedule: {name: step, step_size: 2, gamma: 0.5}", epochs=3)[0]
    assert [h["lr"] for h in every_2["history"]] == pytest.approx([0.05, 0.05, 0.025])


# --- train.compile ---------------------------------------------------------------------------------


def test_a_compiled_trial_matches_the_eager_one_before_and_after_a_compression(straight):
    """torch.compile (Inductor on the CPU) of the step with its density counting: the same densities,
    so the same cut, and the losses and weights of eager within float tolerance; compiled again
    after the cut, each compile's time in the history."""
    final, reports = straight
    text = SPEC.replace("batch_size: 32,", "batch_size: 32, compile: true,")
    compiled, compiled_reports = run_recorded(parse_spec(text))
    assert compiled["widths"] == final["widths"] != compiled["base_widths"]
    for eager_epoch, compiled_epoch in zip(final["history"], compiled["history"]):
        assert compiled_epoch["density"] == eager_epoch["density"]
        assert compiled_epoch["train_loss"] == pytest.approx(eager_epoch["train_loss"], rel=1e-5)
        assert compiled_epoch["loss"] == pytest.approx(eager_epoch["loss"], rel=1e-5)
    # compiled for epoch 1 at full width and again for epoch 2 at the compressed widths; eager never
    assert [("compile_s" in h) for h in compiled["history"]] == [True, True, False]
    assert all(h["compile_s"] > 0 for h in compiled["history"][:2])
    assert not any("compile_s" in h for h in final["history"])
    eager_weights, compiled_weights = reports[-1][1]["model"], compiled_reports[-1][1]["model"]
    for name, tensor in eager_weights.items():
        torch.testing.assert_close(compiled_weights[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


def test_channels_last_is_applied_on_a_gpu_and_not_on_a_cpu():
    """oneDNN's NHWC weight gradient of a narrow 1x1 stride-2 conv (a pruned ResNet shortcut) writes
    past its buffer on the CPU (heap corruption under its AVX2 kernels), so the CPU keeps the
    default layout."""
    train = parse_spec(SPEC.replace("device: cpu,", "device: cpu, channels_last: true,")).train
    assert Precision.of(train, torch.device("cuda")).memory_format == torch.channels_last
    assert Precision.of(train, torch.device("cpu")).memory_format == torch.preserve_format


def test_optimizer_state_takes_its_parameters_layout_after_a_cut_and_a_resume(monkeypatch):
    """A fused optimizer (the GPU default) refuses a channels_last weight whose momentum is laid out
    otherwise: momentum carried through a cut, or loaded from a checkpoint, follows its weight. The
    GPU's layout on the CPU here (this VGG has no 1x1 stride-2 conv, see the test above)."""
    monkeypatch.setattr(step_module, "CHANNELS_LAST_DEVICES", ("cuda", "cpu"))
    text = SPEC.replace("device: cpu,", "device: cpu, channels_last: true,").replace("lr: 0.05}", "lr: 0.05, momentum: 0.9}")
    spec = parse_spec(text)
    _, reports = run_recorded(spec, stop_after=1)  # the checkpoint after the cut
    after_cut = reports[0][1]

    def four_d_momenta(checkpoint):
        return [s["momentum_buffer"] for s in checkpoint["optimizer"]["state"].values()
                if s["momentum_buffer"].dim() == 4]

    assert len(four_d_momenta(after_cut)) == 3
    assert all(m.is_contiguous(memory_format=torch.channels_last) and not m.is_contiguous()
               for m in four_d_momenta(after_cut))
    _, resumed = run_recorded(spec, checkpoint=after_cut)
    assert all(m.is_contiguous(memory_format=torch.channels_last) for m in four_d_momenta(resumed[-1][1]))


def test_compile_auto_trains_eagerly_on_a_cpu(straight):
    final, _ = straight
    auto = run_trial(parse_spec(SPEC.replace("batch_size: 32,", "batch_size: 32, compile: auto,")))
    assert not any("compile_s" in h for h in auto["history"])
    assert [h["train_loss"] for h in auto["history"]] == [h["train_loss"] for h in final["history"]]


def test_a_machine_that_cannot_compile_gets_a_clear_error(monkeypatch):
    """Inductor's CPU kernels need a C++ compiler: without one, `train.compile: on` says what to set."""
    import torch._inductor.config as inductor

    monkeypatch.setattr(inductor.cpp, "cxx", ("/nonexistent/g++",))
    monkeypatch.setattr(inductor, "fx_graph_cache", False)  # a cached kernel would need no compiler
    spec = parse_spec(SPEC.replace("batch_size: 32,", "batch_size: 32, compile: on,"))
    with pytest.raises(AdsearchError, match=r"train.compile: .*No working C\+\+ compiler.*set train.compile: off"):
        run_trial(spec)
