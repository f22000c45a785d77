"""torchvision models by name (`torchvision:<name>`), compressed through the traced channel graph
(adsearch.prune.graph): exact removal checked against a masked original and against Torch-Pruning's
DepGraph, the reused-ReLU monitor, save and reload, and the errors for bad input."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
from torch import nn

from pruning_checks import check_against_masked, criterion_plan, forward_backward, keep_all_plan, random_plan

from adsearch.prune.compress import apply_plan, group_widths
from adsearch.prune.cost import count_macs, count_params
from adsearch.prune.criteria import unscorable
from adsearch.prune.density import DensityMonitor
from adsearch.prune.graph import channel_groups
from adsearch.models.checks import criterion_problem
from adsearch.models.registry import check_arch, create_model
from adsearch.models.saving import load_compressed, save_compressed
from adsearch.spec.loading import SpecError, parse_spec
from adsearch.spec.pruning import CRITERIA
from adsearch.train.trainer import run_trial

torch.set_num_threads(2)

MULT = 0.25
ARCHS = ["torchvision:resnet50", "torchvision:mobilenet_v2", "torchvision:densenet121", "torchvision:efficientnet_b0"]


@pytest.fixture(scope="module", params=ARCHS)
def built(request):
    """One model per arch (random weights, eval mode, non-trivial BN statistics) and its groups.

    A quarter of the width (cut from the full network) keeps the tests fast; the graph is the same.
    """
    torch.manual_seed(0)
    model = create_model(request.param, num_classes=10, width_mult=MULT).eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    groups = channel_groups(model)
    return request.param, model, groups, group_widths(model, groups)


def test_classifier_width_is_never_a_group(built):
    arch, model, groups, widths = built
    classifier = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    assert all(classifier not in g.producers for g in groups)
    assert any(classifier in g.consumers for g in groups)  # its inputs are cut, its outputs never


def test_removing_nothing_leaves_the_output_unchanged(built):
    arch, model, groups, widths = built
    x = torch.randn(2, 3, 32, 32)
    clone = copy.deepcopy(model)
    clone_groups = channel_groups(clone)
    apply_plan(clone, clone_groups, keep_all_plan(clone_groups, widths))
    with torch.no_grad():
        torch.testing.assert_close(clone(x), model(x), atol=1e-5, rtol=0)


def test_random_plan_gives_the_planned_network(built, tmp_path):
    arch, model, groups, widths = built
    plan = random_plan(groups, widths, seed=1)
    pruned = copy.deepcopy(model)
    pruned_groups = channel_groups(pruned)
    apply_plan(pruned, pruned_groups, plan)
    x = torch.randn(2, 3, 32, 32)

    # the masked original's output; unchanged pre-activations on kept channels inside blocks
    check_against_masked(model, groups, pruned, pruned_groups, plan, x)
    # the groups moved with the cut: tracing the pruned network again finds the same groups
    again = channel_groups(pruned)
    assert [g.name for g in again] == [g.name for g in pruned_groups]
    assert [g.slices for g in again] == [g.slices for g in pruned_groups]
    new_widths = [plan.new_widths[g.name] for g in groups]
    assert group_widths(pruned, again) == new_widths
    # the counts of a network built at those widths
    built_at = create_model(arch, num_classes=10, widths=new_widths)  # cut from the full network
    assert count_params(pruned) == count_params(built_at) < count_params(model)
    assert count_macs(pruned, (3, 32, 32)) == count_macs(built_at, (3, 32, 32))
    forward_backward(copy.deepcopy(pruned), x, 10)

    # saved with its widths, reloaded without knowing them: the same outputs
    path = tmp_path / "model.pt"
    save_compressed(pruned, path, arch=arch, num_classes=10, in_channels=3, image_size=32, width_mult=MULT)
    reloaded = load_compressed(path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), pruned.eval()(x), atol=0, rtol=0)


def test_every_criterion_cuts_coupled_and_concatenated_groups_consistently(built):
    """A criterion's score is taken over the group (residual adds, concatenations): the network it
    leaves computes what the original computes with the dropped channels zeroed."""
    arch, model, groups, widths = built
    x = torch.randn(2, 3, 32, 32)
    for seed, criterion in enumerate(CRITERIA):
        if unscorable(model, groups, criterion):  # EfficientNet's squeeze-excitation convs have no BatchNorm
            assert criterion == "bn_scale" and arch == "torchvision:efficientnet_b0"
            assert "use another criterion" in criterion_problem(arch, criterion)
            continue
        plan = criterion_plan(model, groups, criterion, seed=seed)
        pruned = copy.deepcopy(model)
        pruned_groups = channel_groups(pruned)
        apply_plan(pruned, pruned_groups, plan)
        check_against_masked(model, groups, pruned, pruned_groups, plan, x)


def test_removal_agrees_with_torch_pruning_depgraph(built):
    """Torch-Pruning, cutting the same channels from each group's first conv, gets the same network."""
    tp = pytest.importorskip("torch_pruning")
    arch, model, groups, widths = built
    plan = random_plan(groups, widths, seed=2)
    ours = copy.deepcopy(model)
    apply_plan(ours, channel_groups(ours), plan)
    theirs = copy.deepcopy(model)
    graph = tp.DependencyGraph().build_dependency(theirs, example_inputs=torch.randn(1, 3, 32, 32))
    modules = dict(theirs.named_modules())
    for g in groups:
        keep = plan.keep[g.name]
        if keep is not None:
            dropped = sorted(set(range(plan.old_widths[g.name])) - set(keep.tolist()))
            graph.get_pruning_group(modules[g.producers[0]], tp.prune_conv_out_channels, idxs=dropped).prune()
    assert count_params(ours) == count_params(theirs)
    assert count_macs(ours, (3, 32, 32)) == count_macs(theirs, (3, 32, 32))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-6, rtol=0)




# --- the monitor and a ReLU module used twice -----------------------------------------------------


def test_relu_used_twice_per_block_is_counted_at_the_right_call():
    """torchvision's BasicBlock runs one ReLU after bn1 and after the addition. Its densities must
    equal those of our ResNet-18 (one ReLU module per use) holding the same weights."""
    theirs = create_model("torchvision:resnet18", num_classes=10).train()
    ours = create_model("resnet18", num_classes=10, image_size=224, stem="imagenet").train()
    ours.load_state_dict(theirs.state_dict())  # same layer names, same shapes
    x = torch.randn(4, 3, 64, 64)
    densities = []
    for model, groups in ((theirs, channel_groups(theirs)), (ours, ours.channel_groups())):
        with DensityMonitor(model, groups) as monitor:
            model(x)
            by_producers = {frozenset(g.producers): d for g, d in
                            zip(groups, (monitor.channel_densities()[g.name] for g in groups))}
        densities.append(by_producers)
    assert densities[0].keys() == densities[1].keys()
    for key in densities[0]:
        torch.testing.assert_close(densities[0][key], densities[1][key], atol=0, rtol=0)
    stem = next(g for g in channel_groups(theirs) if g.name == "conv1")
    assert [stem.slices[m].call for m in stem.monitors] == [None, 1, 1]  # model.relu; block ReLUs, 2nd call


# --- trials and other inputs ----------------------------------------------------------------------


def test_a_torchvision_model_compresses_in_a_trial_and_resumes():
    spec = parse_spec("""
name: tv
model: {arch: "torchvision:resnet18", width_mult: 0.25}
data: {dataset: synthetic, image_size: 32, num_samples: 64, num_classes: 4}
train: {epochs: 2, batch_size: 16, device: cpu}
pruning: {compress_at: [1], target_density: 0.95, min_channels: 2}
""")
    checkpoints = []
    metrics = run_trial(spec, report=lambda m, ckpt: checkpoints.append(copy.deepcopy(ckpt)))
    assert metrics["rounds"] == 1
    assert metrics["params"] < metrics["history"][0]["params"]
    assert all(w <= b for w, b in zip(metrics["widths"], metrics["base_widths"]))
    assert all(0 < d < 1 for d in metrics["history"][0]["density"].values())
    resumed = run_trial(spec, checkpoint=checkpoints[0])  # rebuilt at the stored widths
    assert resumed["widths"] == metrics["widths"] and resumed["accuracy"] == metrics["accuracy"]


def test_grey_images_get_a_one_channel_stem():
    model = create_model("torchvision:efficientnet_b0", num_classes=10, in_channels=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_unknown_torchvision_name_lists_close_matches():
    with pytest.raises(ValueError, match="close matches: torchvision:resnet50"):
        check_arch("torchvision:resnet5")
    with pytest.raises(SpecError, match=r"model.arch \(line 2\): unknown torchvision model"):
        parse_spec("name: s\nmodel: {arch: 'torchvision:mobilenet_v9'}")




def test_run_with_an_unsupported_model_writes_nothing(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\nmodel: {arch: 'torchvision:shufflenet_v2_x0_5'}\n")  # channel shuffle
    proc = subprocess.run([sys.executable, "-m", "adsearch.cli", "run", str(spec), "--reports",
                           str(tmp_path / "reports")], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode != 0
    assert "cannot be compressed" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "reports").exists()
