"""The prefix cache (adsearch/train/prefixes.py) with real trials on CPU: a trial started from a shared
state equals the trial trained from scratch, a whole cached path trains nothing, two processes
racing on one entry both succeed, a torn entry is trained again, the key holds what decides it."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import torch
from helpers import one_torch_thread

from adsearch.train.prefixes import PREFIX_VERSION, PrefixCache, branch_epochs, cache_size, recipe_key
from adsearch.spec.space import ValuesDim
from adsearch.spec.loading import apply_params, parse_spec
from adsearch.train.trainer import run_trial

SPEC = """\
name: tiny
seed: 0
model: {arch: vgg, layers: [8, M, 16, 16]}
data: {dataset: synthetic, num_samples: 256, image_size: 8}
train: {epochs: 4, batch_size: 32, device: cpu, optimizer: {name: sgd, lr: 0.05}}
pruning: {compress_at: [2], min_channels: 2, weights: inherit}
search:
  space:
    pruning.compress_at: {values: [[2], [2, 3], [3]]}
"""
SAME = ("accuracy", "top5", "loss", "train_loss", "params", "macs", "train_macs", "widths", "rounds", "compressions",
        "base_widths")
"""What must not change with the cache (the timings may)."""


@pytest.fixture(scope="module", autouse=True)
def one_thread_for_the_module():
    with one_torch_thread():
        yield


def spec_with(**params):
    return apply_params(parse_spec(SPEC), params)


def cache(directory: Path, owner: int) -> PrefixCache:
    return PrefixCache(directory, branch_epochs(parse_spec(SPEC)), owner=owner)


def history(result: dict) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "compile_s"} for h in result["history"]]


def assert_same(result: dict, scratch: dict) -> None:
    for key in SAME:
        assert result[key] == scratch[key], key
    assert history(result) == history(scratch)


@pytest.fixture(scope="module")
def scratch():
    """Each trial of the space trained without a cache."""
    return {str(ca): run_trial(spec_with(**{"pruning.compress_at": ca})) for ca in ([2], [2, 3], [3])}


@pytest.mark.parametrize("weights", ["inherit", "reinit"])
def test_a_trial_started_from_the_baselines_prefix_equals_the_trial_from_scratch(tmp_path, weights):
    spec = spec_with(**{"pruning.weights": weights})
    baseline = run_trial(spec.without_pruning(), prefixes=cache(tmp_path, -1))
    assert baseline["shared_epochs"] == 0 and baseline["spent_train_macs"] == baseline["train_macs"]
    assert cache_size(tmp_path)[0] == 3  # epochs 2, 3 (branch epochs of the space) and 4 (the last)

    reports = []
    shared = run_trial(spec, prefixes=cache(tmp_path, 0), report=lambda m, c: reports.append(m["epoch"]))
    assert_same(shared, run_trial(spec))
    assert shared["shared_epochs"] == 2 and shared["shared_from"] == -1
    assert reports == [2, 3, 4]  # from the shared epoch on
    epoch_macs = [h["macs"] * h["samples"] * 3 for h in shared["history"]]  # forward + backward
    assert shared["spent_train_macs"] == sum(epoch_macs[2:]) < shared["train_macs"] == sum(epoch_macs)


def test_a_trial_whose_whole_path_is_kept_trains_nothing(tmp_path, scratch):
    spec = spec_with(**{"pruning.compress_at": [2, 3]})
    first = run_trial(spec, prefixes=cache(tmp_path, 7))
    reports = []
    again = run_trial(spec, prefixes=cache(tmp_path, 8), report=lambda m, c: reports.append((m, c)))
    assert_same(first, scratch["[2, 3]"])
    assert_same(again, scratch["[2, 3]"])
    assert again["shared_epochs"] == 4 and again["shared_from"] == 7 and again["spent_train_macs"] == 0
    assert [m["epoch"] for m, _ in reports] == [2, 3, 4]  # the branch epochs it went through, the end last
    assert reports[-1][1]["widths"] == scratch["[2, 3]"]["widths"] and reports[-1][1]["spent_train_macs"] == 0


def test_trials_share_the_state_up_to_where_their_schedules_part(tmp_path, scratch):
    """[2] and [2, 3] compress alike at epoch 2 and part at epoch 3; [3] shares nothing after epoch 2
    with them, but epochs 1-3 with a trial that has not compressed by then (none here)."""
    run_trial(spec_with(**{"pruning.compress_at": [2, 3]}), prefixes=cache(tmp_path, 0))
    only_two = run_trial(spec_with(**{"pruning.compress_at": [2]}), prefixes=cache(tmp_path, 1))
    assert only_two["shared_epochs"] == 3 and only_two["shared_from"] == 0  # epoch 3's state, before deciding
    assert_same(only_two, scratch["[2]"])
    three = run_trial(spec_with(**{"pruning.compress_at": [3]}), prefixes=cache(tmp_path, 2))
    assert three["shared_epochs"] == 2 and three["shared_from"] == 0  # nobody kept epoch 3 uncompressed
    assert_same(three, scratch["[3]"])


def test_trials_that_keep_other_channels_at_the_same_widths_do_not_share_after_the_cut(tmp_path, scratch):
    """The criterion decides which channels survive: a density-chosen and an L1-chosen cut to the
    same widths are different networks, so the second trial shares only the epochs before the cut."""
    run_trial(spec_with(**{"pruning.compress_at": [2]}), prefixes=cache(tmp_path, 0))
    l1 = spec_with(**{"pruning.compress_at": [2], "pruning.criterion": "l1_norm"})
    shared = run_trial(l1, prefixes=cache(tmp_path, 1))
    assert shared["widths"] == scratch["[2]"]["widths"]  # the density width rule: the same widths
    assert shared["shared_epochs"] == 2 and shared["shared_from"] == 0
    assert_same(shared, run_trial(l1))
    assert shared["accuracy"] != scratch["[2]"]["accuracy"] or shared["loss"] != scratch["[2]"]["loss"]


def test_a_torn_entry_is_trained_again_with_a_warning(tmp_path, scratch):
    spec = spec_with(**{"pruning.compress_at": [2]})
    run_trial(spec.without_pruning(), prefixes=cache(tmp_path, -1))
    entries = sorted(tmp_path.glob("*-e0002-*.pt"))
    assert len(entries) == 1
    entries[0].write_bytes(entries[0].read_bytes()[:100])  # torn by a crash
    with pytest.warns(UserWarning, match="unreadable"):
        result = run_trial(spec, prefixes=cache(tmp_path, 0))
    assert result["shared_epochs"] == 0 and result["spent_train_macs"] == result["train_macs"]
    assert_same(result, scratch["[2]"])


def test_an_entry_of_another_version_is_not_used(tmp_path):
    c = cache(tmp_path, 0)
    path = tmp_path / "e0002-x.pt"
    torch.save({"version": PREFIX_VERSION + 1, "state": {}}, path)
    with pytest.warns(UserWarning, match="not an entry of this adsearch version"):
        assert c.load(path) is None
    assert c.load(tmp_path / "missing.pt") is None


def _train_with_cache(directory: str) -> dict:
    torch.set_num_threads(1)
    result = run_trial(spec_with(**{"pruning.compress_at": [2, 3]}), prefixes=cache(Path(directory), 0))
    return {k: result[k] for k in ("accuracy", "loss", "widths", "train_macs", "shared_epochs")}


def test_two_trials_racing_on_the_same_entries_both_succeed(tmp_path):
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        first, second = pool.map(_train_with_cache, [str(tmp_path)] * 2)
    assert {k: v for k, v in first.items() if k != "shared_epochs"} == \
        {k: v for k, v in second.items() if k != "shared_epochs"}
    assert sorted(p.name.split("-")[1] for p in tmp_path.iterdir()) == ["e0002", "e0003", "e0004"]  # each once, no temp file


def test_save_keeps_the_first_entry_and_leaves_no_temporary_file(tmp_path):
    c = cache(tmp_path, 3)
    path = tmp_path / "e0002-abc.pt"
    assert c.save(path, {"state": {"n": 1}}) is True
    assert PrefixCache(tmp_path, [2], owner=4).save(path, {"state": {"n": 2}}) is False
    entry = c.load(path)
    assert entry["state"] == {"n": 1} and entry["owner"] == 3 and entry["version"] == PREFIX_VERSION
    assert [p.name for p in tmp_path.iterdir()] == ["e0002-abc.pt"]


def test_the_key_holds_what_decides_training_and_not_the_pruning_fields_still_to_act():
    spec = parse_spec(SPEC)
    key = recipe_key(spec, "cpu", 1)
    for path, value in [("pruning.compress_at", [3]), ("pruning.max_rounds", 1), ("pruning.target_density", 0.5),
                        ("pruning.criterion", "random"), ("pruning.widths", "uniform"), ("pruning.keep", 0.3),
                        ("pruning.min_channels", 4), ("pruning.round_to", 2), ("pruning.weights", "reinit"),
                        ("pruning.method", "none"), ("search.trials", 3), ("train.device", "auto"),
                        ("train.threads", 2)]:
        assert recipe_key(apply_params(spec, {path: value}), "cpu", 1) == key, path
    for path, value in [("seed", 1), ("train.optimizer.lr", 0.1), ("train.epochs", 5), ("model.width_mult", 0.5),
                        ("pruning.zero_threshold", 0.1), ("pruning.group_density", "max"), ("data.num_samples", 300),
                        ("train.batch_size", 16)]:
        assert recipe_key(apply_params(spec, {path: value}), "cpu", 1) != key, path
    assert recipe_key(spec, "cuda", 1) != key and recipe_key(spec, "cpu", 2) != key


def test_branch_epochs_are_every_epoch_a_trial_may_compress_at_and_the_last():
    assert branch_epochs(parse_spec(SPEC)) == [2, 3, 4]
    late = apply_params(parse_spec(SPEC), {"train.epochs": 3, "pruning.compress_at": [1]})
    assert branch_epochs(late) == [1, 2, 3]  # epoch 3 is the last: no compression there, but a branch


def test_branch_epochs_of_a_periodic_schedule_are_every_start_and_step_searched():
    spec = parse_spec(SPEC.replace("pruning: {compress_at: [2],", "pruning: {start: 2,").replace(
        "pruning.compress_at: {values: [[2], [2, 3], [3]]}", "pruning.every: {distribution: int_uniform, low: 2, high: 3}"))
    assert spec.pruning.schedule(4) == [2]
    assert branch_epochs(spec) == [2, 4]  # every 2 or 3 from epoch 2, before the last (4)
    longer = apply_params(spec, {"train.epochs": 9})
    assert longer.pruning.schedule(9) == [2]  # no every in the base spec: once
    assert branch_epochs(longer) == [2, 4, 5, 6, 8, 9]
    starts = apply_params(longer, {"pruning.every": 3, "pruning.start": 1})
    starts = starts.model_copy(update={"search": starts.search.model_copy(update={"space": {
        "pruning.start": ValuesDim(values=[1, 3])}})})
    assert branch_epochs(starts) == [1, 3, 4, 6, 7, 9]


def test_the_cache_is_bounded_and_the_least_recently_used_entries_go_first(tmp_path):
    import os

    c = PrefixCache(tmp_path, [2], owner=0, about={"study": "s", "model": "vgg", "dataset": "synthetic", "seed": 0,
                                                   "epochs": 4})
    paths = [tmp_path / f"{'a' * 24}-e000{k}-x.pt" for k in range(1, 4)]
    for k, path in enumerate(paths):
        c.save(path, {"state": {"blob": torch.zeros(2000)}})
        os.utime(path, (1000 + k, 1000 + k))  # written in this order
    size = paths[0].stat().st_size
    assert c.load(paths[0]) is not None  # read now: the most recently used
    bounded = PrefixCache(tmp_path, [2], owner=1, limit=int(3.5 * size))
    newest = tmp_path / f"{'b' * 24}-e0001-y.pt"
    bounded.save(newest, {"state": {"blob": torch.ones(2000)}})
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == sorted([paths[0].name, paths[2].name, newest.name])
    assert cache_size(tmp_path) == (3, 3 * size)


def test_the_cache_lists_its_recipes_and_clears_one_or_all(tmp_path):
    from adsearch.train.prefixes import clear, recipes

    about = {"study": "first", "model": "vgg [8]", "dataset": "synthetic", "seed": 3, "epochs": 4}
    c = PrefixCache(tmp_path, [2], owner=0, about=about)
    for recipe, epochs in (("a" * 24, (1, 2)), ("b" * 24, (1,))):
        for e in epochs:
            c.save(tmp_path / f"{recipe}-e000{e}-x.pt", {"state": {"n": e}})
    listed = {g.recipe: g for g in recipes(tmp_path)}
    assert {r: g.entries for r, g in listed.items()} == {"a" * 24: 2, "b" * 24: 1}
    assert listed["a" * 24].about["study"] == "first" and listed["a" * 24].about["seed"] == 3
    assert clear(tmp_path, "aaaa")[0] == 2
    assert [g.recipe for g in recipes(tmp_path)] == ["b" * 24]
    assert not (tmp_path / "recipes" / f"{'a' * 24}.json").exists()  # its note goes with its last state
    assert clear(tmp_path)[0] == 1 and cache_size(tmp_path) == (0, 0)


def test_the_cache_command_lists_sizes_and_clears_and_names_an_unknown_recipe(tmp_path):
    from helpers import adsearch

    c = PrefixCache(tmp_path / "cache", [2], owner=0, about={"study": "quick", "model": "vgg", "dataset": "digits",
                                                             "seed": 0, "epochs": 20})
    c.save(tmp_path / "cache" / f"{'c' * 24}-e0003-x.pt", {"state": {"n": 1}})
    listed = adsearch("cache", "--dir", tmp_path / "cache", cwd=tmp_path)
    assert listed.returncode == 0 and "cccccccccccc" in listed.stdout and "quick" in listed.stdout
    assert f"1 states" in listed.stdout and str(tmp_path / "cache") in listed.stdout
    unknown = adsearch("cache", "--dir", tmp_path / "cache", "--recipe", "zz", "--clear", cwd=tmp_path)
    assert unknown.returncode == 1 and "no states of a recipe starting 'zz'" in unknown.stderr
    assert cache_size(tmp_path / "cache")[0] == 1  # nothing deleted
    cleared = adsearch("cache", "--dir", tmp_path / "cache", "--clear", cwd=tmp_path)
    assert cleared.returncode == 0 and "deleted 1 states" in cleared.stdout
    assert "is empty" in adsearch("cache", "--dir", tmp_path / "cache", cwd=tmp_path).stdout


def test_the_rungs_of_early_stopping_are_branch_epochs_so_a_shared_trial_reports_them():
    spec = parse_spec(SPEC.replace("search:\n", "search:\n  early_stop: {rungs: [1, 3]}\n"))
    assert branch_epochs(spec) == [1, 2, 3, 4] and branch_epochs(parse_spec(SPEC)) == [2, 3, 4]
