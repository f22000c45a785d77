"""The Optuna side of a study (adsearch/study/searcher.py), on a real OptunaSearch and a real Optuna
storage, without Ray running.

The contract tests come first: each private attribute of Ray Tune or Optuna that searcher.py reads
is checked through the accessor searcher.py reads it with, and a missing or changed one fails
naming the attribute, the versions it was checked on and the versions installed.
"""

from __future__ import annotations

import ast
import inspect

import optuna
import pytest
import ray
from helpers import tiny_spec
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from adsearch.study import searcher
from adsearch.study.searcher import CHECKED_ON, Searcher, make_sampler, optuna_space
from adsearch.spec.space import space_size
from adsearch.spec.loading import parse_spec

OBJECTIVES = dict(metric=["accuracy", "params"], mode=["max", "min"])


def spec_with(*dims: str, sampler: str = "random", trials: int = 12):
    return parse_spec(tiny_spec("s", sampler=sampler, trials=trials, space="\n    ".join(dims)))


SPACE = ("pruning.target_density: {values: [0.3, 0.95]}",)


def new_searcher(tmp_path, spec=None, name: str = "s") -> Searcher:
    """A `Searcher` as `runner._run_search` makes it, on a SQLite storage in `tmp_path`."""
    spec = spec or spec_with(*SPACE)
    return Searcher(space=optuna_space(spec), sampler=make_sampler(spec), seed=spec.seed, study_name=name,
                    storage=searcher.open_storage(f"sqlite:///{tmp_path / 'study.db'}"), **OBJECTIVES)


# --- the contract: Ray's and Optuna's private attributes that searcher.py reads ------------------


def broken(attribute: str, what: str) -> None:
    pytest.fail(
        f"adsearch/study/searcher.py reads {attribute}, checked on ray {CHECKED_ON['ray']} and optuna "
        f"{CHECKED_ON['optuna']}; with ray {ray.__version__} and optuna {optuna.__version__} installed {what}. "
        f"Adapt its accessor in adsearch/study/searcher.py (and the pins in pyproject.toml) before taking this version.",
        pytrace=False)


def read(attribute: str, accessor, *args, kind: type):
    """`accessor(*args)`, failing loudly if the attribute is gone or no longer a `kind`."""
    try:
        value, gone = accessor(*args), None
    except AttributeError as exc:
        value, gone = None, exc
    if gone is not None:
        broken(attribute, f"it is gone ({gone})")
    if not isinstance(value, kind):
        broken(attribute, f"it is a {type(value).__module__}.{type(value).__qualname__}, not a {kind.__qualname__}")
    return value


@pytest.fixture
def asked(tmp_path):
    """A searcher that has suggested one trial, Ray id 'ray-0', and the sampled values it gave
    (the config without the trial number it carries)."""
    s = new_searcher(tmp_path)
    config = s.suggest("ray-0")
    assert config[searcher.TRIAL_KEY] == 0  # the Optuna trial number travels with the trial
    return s, {k: v for k, v in config.items() if k != searcher.TRIAL_KEY}


def test_ot_trials_maps_the_ray_trial_id_to_the_optuna_trial_it_was_given(asked):
    s, config = asked
    trials = read("OptunaSearch._ot_trials", searcher._optuna_trials, s, kind=dict)
    if list(trials) != ["ray-0"]:
        broken("OptunaSearch._ot_trials", f"its keys after one suggest('ray-0') are {list(trials)}, not the Ray ids")
    if not isinstance(trials["ray-0"], optuna.Trial) or trials["ray-0"].params != config:
        broken("OptunaSearch._ot_trials", f"its value is {trials['ray-0']!r}, not the optuna.Trial of the config")


def test_ot_study_is_the_optuna_study_in_the_given_storage(asked):
    s, _ = asked
    study = read("OptunaSearch._ot_study", searcher._optuna_study, s, kind=optuna.Study)
    if study.study_name != "s" or len(study.get_trials()) != 1:
        broken("OptunaSearch._ot_study", f"it is study {study.study_name!r} with {len(study.get_trials())} trials, "
                                         "not the named study holding the one asked trial")


def test_completed_trials_holds_the_ray_ids_told_to_optuna(asked):
    s, _ = asked
    done = read("OptunaSearch._completed_trials", searcher._completed_ids, s, kind=set)
    if done:
        broken("OptunaSearch._completed_trials", f"it holds {done} before any trial completed")
    s.on_trial_complete("ray-0", {"accuracy": 0.9, "params": 100})
    if searcher._completed_ids(s) != {"ray-0"}:
        broken("OptunaSearch._completed_trials", f"it holds {searcher._completed_ids(s)} after 'ray-0' completed")


def test_study_storage_and_trial_ids_find_a_trial_in_the_storage(asked):
    s, _ = asked
    study = searcher._optuna_study(s)
    storage = read("optuna.Study._storage", searcher._storage_of, study, kind=optuna.storages.BaseStorage)
    trial = searcher._optuna_trials(s)["ray-0"]
    internal = read("optuna.Trial._trial_id", searcher._internal_id, trial, kind=int)
    frozen = study.get_trials(deepcopy=False)[0]
    if read("optuna.trial.FrozenTrial._trial_id", searcher._internal_id, frozen, kind=int) != internal:
        broken("optuna.trial.FrozenTrial._trial_id", "it differs from the live trial's _trial_id")
    stored = storage.get_trial(internal)
    if stored.number != trial.number or stored.state != optuna.trial.TrialState.RUNNING:
        broken("optuna.Study._storage", f"get_trial(_trial_id) gave trial {stored.number} ({stored.state.name}), "
                                        f"not the running trial {trial.number}")


def test_space_is_the_optuna_distributions_the_searcher_asks_with(asked):
    s, _ = asked
    space = read("OptunaSearch._space", searcher._space_of, s, kind=dict)
    expected = optuna_space(spec_with(*SPACE))
    if space != expected:
        broken("OptunaSearch._space", f"it is {space!r}, not the distributions it was given ({expected!r})")


def test_a_trial_is_rebuilt_from_its_study_and_id(asked):
    s, config = asked
    study = searcher._optuna_study(s)
    internal = searcher._internal_id(searcher._optuna_trials(s)["ray-0"])
    try:
        again = searcher._trial_of(study, internal)
    except TypeError as exc:
        broken("optuna.Trial(study, trial_id)", f"the constructor takes other arguments ({exc})")
    if not isinstance(again, optuna.Trial) or again.params != config or again.number != 0:
        broken("optuna.Trial(study, trial_id)", f"it gave {again!r}, not the stored trial 0 with {config}")


def _classes() -> dict[str, ast.ClassDef]:
    return {n.name: n for n in ast.parse(inspect.getsource(searcher)).body if isinstance(n, ast.ClassDef)}


def _own_attributes(cls: ast.ClassDef) -> set[str]:
    """What a class of searcher.py defines itself: its methods, its declared attributes, and the
    attributes its `__init__` sets on `self`."""
    own = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
    own |= {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)}
    for init in (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"):
        own |= {t.attr for t in ast.walk(init) if isinstance(t, ast.Attribute) and isinstance(t.ctx, ast.Store)}
    return own


def test_the_searcher_modules_own_attributes_are_not_ray_s():
    """Searcher and FailureLimit keep private attributes on the Ray classes they extend: Ray must not
    use those names itself."""
    optuna_search = OptunaSearch(space=optuna_space(spec_with(*SPACE)), **OBJECTIVES)
    optuna_search.suggest("ray-0")
    bases = {"Searcher": [optuna_search], "FailureLimit": [tune.Stopper, tune.Callback]}
    classes = _classes()
    assert set(classes) == set(bases), "a new class in searcher.py: say here which Ray classes it extends"
    for name, cls in classes.items():
        for own in sorted(a for a in _own_attributes(cls) if a.startswith("_") and not a.startswith("__")):
            for base in bases[name]:
                if hasattr(base, own):
                    broken(f"{type(base).__name__ if not isinstance(base, type) else base.__name__}.{own}",
                           f"Ray now has an attribute of that name, which {name} uses for its own")


def _private_reads_outside_accessors() -> list[str]:
    """`x._name` in searcher.py outside its accessors, but for a class's own attributes on `self`."""
    accessors = {"_optuna_trials", "_optuna_study", "_completed_ids", "_storage_of", "_internal_id", "_trial_of",
                 "_space_of"}
    found = []
    for top in ast.parse(inspect.getsource(searcher)).body:
        if isinstance(top, ast.FunctionDef) and top.name in accessors:
            continue
        own = _own_attributes(top) if isinstance(top, ast.ClassDef) else set()
        for node in ast.walk(top):
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
                continue
            on_self = isinstance(node.value, ast.Name) and node.value.id == "self"
            if not (on_self and node.attr in own):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_private_attribute_is_read_outside_the_accessors():
    assert _private_reads_outside_accessors() == [], (
        "searcher.py reads private attributes of Ray or Optuna outside its accessors: add an accessor and check "
        "it in this file")


# --- Searcher: what it records, and the trials a crash left running ------------------------------


def test_a_completed_trial_keeps_its_metrics_and_an_errored_one_fails_with_its_reason(tmp_path):
    s = new_searcher(tmp_path)
    s.suggest("ray-0"), s.suggest("ray-1")
    s.on_trial_complete("ray-0", {"accuracy": 0.9, "params": 100, "widths": [4, 8], "wall_s": float("nan")})
    s.on_trial_result("ray-1", {"error": "ValueError: diverged", "accuracy": float("nan"), "params": 100})
    s.on_trial_complete("ray-1", {"accuracy": 0.5, "params": 100}, error=True)  # the last result Ray kept
    a, b = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}").get_trials()
    assert a.state.name == "COMPLETE" and a.values == [0.9, 100]
    assert a.user_attrs["widths"] == [4, 8] and a.user_attrs["wall_s"] is None and a.user_attrs["ray_trial_id"] == "ray-0"
    assert b.state.name == "FAIL" and b.values is None and b.user_attrs["error"] == "ValueError: diverged"


def test_a_trial_a_full_disk_stopped_is_no_failure_and_goes_on_when_the_study_resumes(tmp_path):
    """Left RUNNING in Optuna (no budget spent, no failure counted), marked so that the resumed run
    resumes errored Ray trials from their checkpoints; then told as any trial is."""
    s = new_searcher(tmp_path)
    s.suggest("ray-0"), s.suggest("ray-1")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    assert not searcher.stopped_by_disk(storage, "s")
    s.on_trial_result("ray-0", {"error": "OSError: [Errno 28] No space left on device: '/r/s/prefixes/e1.pt'"})
    s.on_trial_complete("ray-0", None, error=True)
    s.on_trial_result("ray-1", {"error": "ValueError: diverged"})
    s.on_trial_complete("ray-1", None, error=True)
    stopped, diverged = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert stopped.state.name == "RUNNING" and "error" not in stopped.user_attrs
    assert stopped.user_attrs[searcher.WRITE_FAILURE].startswith("OSError: [Errno 28] No space left")
    assert diverged.state.name == "FAIL" and searcher.failed_count(storage, "s") == 1
    assert searcher.stopped_by_disk(storage, "s") and searcher.finished_count(storage, "s") == 1
    s.on_trial_complete("ray-0", {"accuracy": 0.9, "params": 100})  # resumed from its checkpoint, to its end
    assert optuna.load_study(study_name="s", storage=storage).trials[0].state.name == "COMPLETE"
    assert not searcher.stopped_by_disk(storage, "s")
    assert searcher.stopped_by_disk(f"sqlite:///{tmp_path / 'none.db'}", "s") is False  # before any search


def test_a_trial_told_before_a_crash_is_not_told_again(tmp_path):
    s = new_searcher(tmp_path)
    s.suggest("ray-0")
    s.on_trial_complete("ray-0", {"accuracy": 0.9, "params": 100})
    searcher._completed_ids(s).clear()  # as a restored searcher whose last snapshot predates the tell
    s.on_trial_complete("ray-0", {"accuracy": 0.1, "params": 1})
    (trial,) = searcher._optuna_study(s).get_trials()
    assert trial.values == [0.9, 100] and searcher._completed_ids(s) == {"ray-0"}


def test_trials_a_crash_left_running_are_handed_out_first_then_new_ones(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="s", directions=["maximize", "minimize"])
    lost = study.ask(optuna_space(spec_with(*SPACE)))
    lost.set_user_attr("ray_trial_id", "gone")
    s = new_searcher(tmp_path)
    assert s.suggest("ray-new") == {**lost.params, searcher.TRIAL_KEY: lost.number}
    assert searcher._internal_id(searcher._optuna_trials(s)["ray-new"]) == searcher._internal_id(lost)
    following = s.suggest("ray-next")  # the other value: the lost one's again would be a repeat of it
    assert following["pruning.target_density"] != lost.params["pruning.target_density"]
    trials = study.get_trials()
    assert trials[0].user_attrs["ray_trial_id"] == "ray-new" and trials[-1].number == following[searcher.TRIAL_KEY]
    assert all(t.user_attrs["repeat_of"] == lost.number and t.state.name == "PRUNED" for t in trials[1:-1])


def test_a_saved_searcher_restores_its_trials_and_looks_for_lost_ones_again(tmp_path):
    s = new_searcher(tmp_path)
    s.suggest("ray-0")
    s._next_orphan()  # none: computed once, then kept
    assert s._orphans == []
    s.save(str(tmp_path / "searcher.pkl"))
    assert s._orphans == []  # the running searcher keeps its own
    again = Searcher()
    again.restore(str(tmp_path / "searcher.pkl"))
    assert list(searcher._optuna_trials(again)) == ["ray-0"] and again._orphans is None


# --- the sampler and the search space ------------------------------------------------------------

MIXED = ("pruning.compress_at: {values: [[1], [1, 2]]}",
         "pruning.min_channels: {distribution: int_uniform, low: 2, high: 10, step: 2}",
         "train.optimizer.lr: {distribution: log_uniform, low: 0.01, high: 0.2}",
         "pruning.target_density: {distribution: uniform, low: 0.5, high: 0.95}")


@pytest.mark.parametrize("name, kind", [("nsga2", optuna.samplers.NSGAIISampler),
                                        ("tpe", optuna.samplers.TPESampler),
                                        ("gp", optuna.samplers.GPSampler),
                                        ("random", optuna.samplers.RandomSampler),
                                        ("grid", optuna.samplers.GridSampler)])
def test_each_sampler_name_gives_its_optuna_sampler_seeded_by_the_spec(name, kind):
    dims = ("pruning.compress_at: {values: [[1], [1, 2]]}", "pruning.target_density: {values: [0.3, 0.6, 0.95]}") \
        if name == "grid" else MIXED
    spec = spec_with(*dims, sampler=name)
    first = []
    for _ in range(2):
        sampler = make_sampler(spec)
        assert type(sampler) is kind
        study = optuna.create_study(sampler=sampler, directions=["maximize", "minimize"])
        first.append([study.ask(optuna_space(spec)).params for _ in range(3)])
    assert first[0] == first[1]  # the same spec proposes the same trials


def test_the_search_space_as_optuna_distributions():
    space = optuna_space(spec_with(*MIXED))
    assert space["pruning.compress_at"] == optuna.distributions.CategoricalDistribution(["[1]", "[1, 2]"])
    assert space["pruning.min_channels"] == optuna.distributions.IntDistribution(2, 10, step=2)
    assert space["train.optimizer.lr"] == optuna.distributions.FloatDistribution(0.01, 0.2, log=True)
    assert space["pruning.target_density"] == optuna.distributions.FloatDistribution(0.5, 0.95)


# --- repeats and an exhausted space --------------------------------------------------------------

FOUR = ("pruning.target_density: {values: [0.3, 0.95]}", "pruning.weights: {values: [inherit, reinit]}")


def finish(s: Searcher, ray_id: str, config: dict, accuracy: float) -> None:
    s.on_trial_complete(ray_id, {"accuracy": accuracy, "params": 1000 - int(100 * accuracy), "epoch": 3,
                                 "train_macs": 5, "spent_train_macs": 5, "history": [{"epoch": 3}]})


def run_searcher(s: Searcher, asks: int) -> list:
    """Ask `asks` times, finishing each trial at once; the configs handed to Ray."""
    configs = []
    for i in range(asks):
        config = s.suggest(f"ray-{i}")
        configs.append(config)
        if isinstance(config, dict):
            finish(s, f"ray-{i}", config, accuracy=0.5 + i / 100)
    return configs


def test_a_repeat_is_told_the_earlier_result_without_a_ray_trial_and_an_exhausted_space_ends_the_search(tmp_path):
    spec = spec_with(*FOUR)
    s = new_searcher(tmp_path, spec)
    s.space_size, said = 4, []
    s.say = said.append
    configs = run_searcher(s, 6)
    handed_out = [c for c in configs if isinstance(c, dict)]
    assert len(handed_out) == 4 and configs[4:] == [Searcher.FINISHED] * 2
    points = [tuple(v for k, v in sorted(c.items()) if k != searcher.TRIAL_KEY) for c in handed_out]
    assert len(set(points)) == 4  # four Ray trials, four different parameter sets

    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
    repeats = [t for t in study.trials if "repeat_of" in t.user_attrs]
    assert repeats, "the random sampler over 4 points proposed no repeat in 4 trials: pick another seed"
    for t in repeats:
        earlier = study.trials[t.user_attrs["repeat_of"]]
        assert t.params == earlier.params and t.values == earlier.values and t.state.name == "COMPLETE"
        assert t.user_attrs["history"] == earlier.user_attrs["history"] and t.user_attrs["spent_train_macs"] == 0
    assert searcher.finished_count(study._storage, "s") == 4  # repeats are not in the budget
    assert study.user_attrs["search_ended"] == "all 4 parameter sets of search.space have been tried"
    assert any("repeats trial" in line for line in said) and said[-1].startswith("search: all 4 parameter sets")


def test_a_repeat_of_a_failed_trial_fails_and_is_not_counted_twice(tmp_path):
    s = new_searcher(tmp_path, spec_with(*SPACE))
    first = s.suggest("ray-0")
    s.on_trial_result("ray-0", {"error": "loss became nan"})
    s.on_trial_complete("ray-0", None, error=True)
    second = s.suggest("ray-1")  # the other value: a proposal of the failed one was told FAIL at once
    assert second["pruning.target_density"] != first["pruning.target_density"]
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
    for t in study.trials[1:-1]:
        assert t.state.name == "FAIL" and t.user_attrs["error"].startswith("repeat of trial 0, which failed: loss")
    assert searcher.failed_count(study._storage, "s") == 1


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_sampler_that_insists_on_one_point_gets_an_untried_one_drawn_for_it(tmp_path):
    spec = spec_with(*FOUR)
    fixed = optuna.samplers.PartialFixedSampler({"pruning.target_density": 0.3, "pruning.weights": "inherit"},
                                                optuna.samplers.RandomSampler(seed=0))
    s = Searcher(space=optuna_space(spec), sampler=fixed, seed=0, study_name="s",
                 storage=searcher.open_storage(f"sqlite:///{tmp_path / 'study.db'}"), **OBJECTIVES)
    s.space_size = 4
    configs = run_searcher(s, 5)
    assert sum(isinstance(c, dict) for c in configs) == 4 and configs[-1] == Searcher.FINISHED
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
    # each new point after the first came after RANDOM_AFTER repeats of the insisted one
    assert sum("repeat_of" in t.user_attrs for t in study.trials) == 3 * searcher.RANDOM_AFTER


def test_a_continuous_space_is_never_exhausted():
    spec = spec_with("pruning.target_density: {distribution: uniform, low: 0.5, high: 0.95}", *FOUR[1:])
    assert space_size(spec.search.space) is None
    assert space_size(spec_with(*FOUR).search.space) == 4
    assert space_size(spec_with("pruning.min_channels: {distribution: int_uniform, low: 2, high: 10, step: 2}",
                                "train.optimizer.lr: {distribution: uniform, low: 0.1, high: 0.2, step: 0.05}"
                                ).search.space) == 5 * 3
