"""The study spec (adsearch.spec: its sections, StudySpec and loading): round trip, errors with dotted path and
YAML line, the search space."""

from __future__ import annotations

import math

import optuna
import pytest

from adsearch.study.searcher import optuna_space
from adsearch.spec.space import DistributionDim, ValuesDim, encode_choice
from adsearch.spec.loading import SpecError, apply_params, parse_spec, spec_warnings, validate_spec
from adsearch.spec.study_spec import StudySpec
from adsearch.spec.training import TrainSpec

GOOD = """\
name: demo
seed: 3
model: {arch: vgg11}
data: {dataset: digits, image_size: 16}
train:
  epochs: 5
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
pruning:
  compress_at: [1, 2]
  target_density: 0.9
  weights: reinit
search:
  sampler: tpe
  objectives: [{metric: accuracy}, {metric: params}]
  space:
    pruning.compress_at: {values: [[1], [1, 2]]}
    pruning.target_density: {distribution: uniform, low: 0.5, high: 0.95}
    train.optimizer.lr: {distribution: log_uniform, low: 0.01, high: 0.2}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    assert isinstance(info.value.problems, list) and all(isinstance(p, str) for p in info.value.problems)
    return info.value.problems


# --- a valid spec -------------------------------------------------------------------------------


def test_valid_spec_parses_and_round_trips():
    spec = parse_spec(GOOD)
    assert spec.seed == 3 and spec.train.epochs == 5 and spec.train.optimizer.lr == 0.1
    assert spec.pruning.compress_at == [1, 2] and spec.pruning.weights == "reinit"
    assert spec.search.objectives[0].mode == "max" and spec.search.objectives[1].mode == "min"
    assert isinstance(spec.search.space["pruning.compress_at"], ValuesDim)
    assert isinstance(spec.search.space["train.optimizer.lr"], DistributionDim)
    assert validate_spec(spec.model_dump()) == spec
    assert validate_spec(spec.model_dump(mode="json")) == spec
    assert validate_spec(spec.model_dump(mode="json")).digest() == spec.digest()


def test_optimizer_name_may_be_left_out_for_sgd_and_adamw_is_adam_shaped():
    assert parse_spec("name: x\ntrain: {optimizer: {lr: 0.2}}").train.optimizer.name == "sgd"
    adamw = parse_spec("name: x\ntrain: {optimizer: {name: adamw, lr: 0.01}}").train.optimizer
    assert adamw.name == "adamw" and adamw.betas == (0.9, 0.999)


# --- errors: dotted path, YAML line, all at once ------------------------------------------------


def test_out_of_bounds_field_named_with_path_and_line():
    problems = problems_of("name: x\n\n\npruning:\n  weights: inherit\n\n  target_density: 1.5\n")
    assert len(problems) == 1
    assert problems[0].startswith("pruning.target_density (line 7): ")
    assert "1.5" in problems[0]


def test_every_problem_is_reported_at_once():
    problems = problems_of("name: x\npruning:\n  target_density: 1.5\n  min_channels: 0\n")
    assert len(problems) == 2
    assert problems[0].startswith("pruning.target_density (line 3): ")
    assert problems[1].startswith("pruning.min_channels (line 4): ")
    assert "got 0" in problems[1]


def test_wrong_type_named_with_path_and_line():
    (problem,) = problems_of("name: x\ntrain:\n  epochs: many\n")
    assert problem.startswith("train.epochs (line 3): ") and "many" in problem


def test_nested_optimizer_field_named_without_union_tags():
    (problem,) = problems_of("name: x\ntrain:\n  optimizer:\n    name: sgd\n    lr: -1\n")
    assert problem.startswith("train.optimizer.lr (line 5): ") and "greater than 0" in problem


def test_unknown_optimizer_lists_the_allowed_names():
    (problem,) = problems_of("name: x\ntrain: {optimizer: {name: rmsprop}}\n")
    assert problem.startswith("train.optimizer (line 2): ")
    assert "rmsprop" in problem and "'sgd', 'adam', 'adamw'" in problem


def test_unknown_key_lists_the_allowed_keys():
    (top,) = problems_of("name: x\nmodell: {}\n")
    assert top.startswith("modell (line 2): unknown key; allowed: name, seed, model, data, train, pruning")
    (nested,) = problems_of("name: x\npruning:\n  target: 0.5\n")
    assert nested.startswith("pruning.target (line 3): unknown key; allowed: method, compress_at, start, every, max_rounds")


def test_unknown_key_in_a_union_branch_lists_that_branch_keys():
    (problem,) = problems_of("name: x\ntrain:\n  optimizer: {name: adam, momentum: 0.9}\n")
    assert problem == "train.optimizer.momentum (line 3): unknown key; allowed: name, lr, betas, weight_decay"


def test_a_plain_union_branch_name_is_left_out_of_the_reported_path():
    problems = problems_of("name: x\nmodel: {arch: vgg, layers: [x]}\n")  # layers: list[int | Literal['M']]
    assert problems == ["model.layers.0 (line 2): Input should be a valid integer, unable to parse string as an "
                        "integer, got 'x'", "model.layers.0 (line 2): Input should be 'M', got 'x'"]


def test_unknown_model_lists_available_names():
    (problem,) = problems_of("name: x\nmodel:\n  arch: vgg99\n")
    assert problem.startswith("model.arch (line 3): unknown model 'vgg99'")
    assert "available: " in problem and "vgg11" in problem and "vgg19" in problem


def test_unknown_dataset_and_sampler_list_the_allowed_names():
    (dataset,) = problems_of("name: x\ndata: {dataset: cifar}\n")
    assert dataset.startswith("data.dataset (line 2): ") and "'digits'" in dataset and "'synthetic'" in dataset
    assert "unknown dataset 'cifar'" in dataset
    (sampler,) = problems_of("name: x\nsearch:\n  sampler: cmaes\n")
    assert sampler.startswith("search.sampler (line 3): ")
    for name in ("tpe", "gp", "nsga2", "random", "grid", "cmaes"):
        assert f"'{name}'" in sampler


def test_a_misspelt_dataset_gets_the_registered_name_it_is_closest_to():
    (cifar,) = problems_of("name: x\nseed: 1\ndata:\n  dataset: cifar1O\n")
    assert cifar.startswith("data.dataset (line 4): unknown dataset 'cifar1O'; did you mean 'cifar10'")
    (digits,) = problems_of("name: x\ndata: {dataset: digts}\n")
    assert digits == ("data.dataset (line 2): unknown dataset 'digts'; did you mean 'digits'? available: "
                      "'cifar10', 'cifar100', 'digits', 'fashion_mnist', 'imagefolder', 'kmnist', 'mnist', 'synthetic', "
                      "'tinyimagenet'")


def test_a_dataset_registered_in_adsearch_data_is_accepted_by_the_spec():
    from adsearch.data import registry as data
    from adsearch.data.arrays import synthetic

    @data.register_dataset
    def squares(spec, seed):
        return synthetic(spec, seed)

    @data.register_dataset(files=True)
    def scans(spec, seed):
        raise AssertionError("not loaded here")

    try:
        spec = parse_spec("name: x\ndata: {dataset: squares, num_classes: 3}\n")
        assert spec.data.dataset == "squares" and data.load_data(spec.data).num_classes == 3
        # built in, so it takes no root; one registered as read from disk does
        assert problems_of("name: x\ndata: {dataset: squares, root: /x}\n") == [
            "data.root (line 2): applies to datasets read from disk "
            "(cifar10, cifar100, tinyimagenet, imagefolder, mnist, fashion_mnist, kmnist, scans); squares is built in"]
        assert parse_spec("name: x\ndata: {dataset: scans, root: /data/scans}\n").data.root == "/data/scans"
    finally:
        del data._REGISTRY["squares"], data._REGISTRY["scans"]
    assert "squares" not in data.list_datasets() and "scans" not in data.file_datasets()
    (gone,) = problems_of("name: x\ndata: {dataset: squares}\n")
    assert gone.startswith("data.dataset (line 2): unknown dataset 'squares'; available: ")


def test_unknown_objective_metric_lists_the_metric_names():
    (problem,) = problems_of("name: x\nsearch:\n  objectives:\n    - {metric: acc}\n")
    assert problem.startswith("search.objectives.0.metric (line 4): ")
    for name in ("accuracy", "params", "train_macs", "acc"):
        assert f"'{name}'" in problem


def test_missing_name_is_reported():
    (problem,) = problems_of("seed: 1\n")
    assert problem == "name: Field required"


def test_compression_epochs_past_the_training_and_channels_last_on_a_cpu_are_warnings_not_errors():
    spec = parse_spec("name: x\ntrain: {epochs: 3}\npruning:\n  compress_at: [1, 3]\n")  # a smoke run's epochs
    assert spec_warnings(spec) == ["pruning.compress_at: epochs [3] are not before train.epochs (3), "
                                   "so no training follows them: they are skipped"]
    short = parse_spec("name: x\ntrain: {epochs: 1}\npruning:\n  compress_at: [1, 3]\n")
    assert spec_warnings(short)[0].endswith("no compression happens")
    assert spec_warnings(parse_spec("name: x\ntrain: {epochs: 4}\npruning:\n  compress_at: [1, 3]\n")) == []
    assert spec_warnings(parse_spec("name: x\ntrain: {epochs: 3}\npruning: {method: none, compress_at: [3]}")) == []
    (layout,) = spec_warnings(parse_spec("name: x\ntrain: {device: cpu, channels_last: true}\n"))
    assert layout.startswith("train.channels_last applies on a GPU only: on the cpu the network keeps")
    assert spec_warnings(parse_spec("name: x\ntrain: {device: auto, channels_last: true}\n")) == []
    (kept,) = spec_warnings(parse_spec("name: x\nsearch: {keep_prefixes: true}\n"))
    assert kept.startswith("search.keep_prefixes no longer does anything: the prefix cache is shared")


def test_invalid_yaml_gives_a_spec_error_with_a_line():
    (problem,) = problems_of("name: x\ntrain:\n  epochs: 3\n   bad: 1\n")
    assert problem.startswith("not valid YAML (line 4)")
    (flow,) = problems_of("name: x\ntrain: [epochs: 3\n")
    assert flow.startswith("not valid YAML (line ")


def test_a_document_that_is_not_a_mapping_is_rejected():
    (problem,) = problems_of("- name: x\n")
    assert "must be a mapping" in problem and "list" in problem


# --- the search space ---------------------------------------------------------------------------


def test_space_path_that_does_not_exist_is_named():
    (problem,) = problems_of("name: x\nsearch:\n  space:\n    train.optimizer.lrr: {values: [0.1]}\n")
    assert problem.startswith("search.space.train.optimizer.lrr (line 4): no field 'lrr' in train.optimizer")
    assert "available: name, lr, momentum" in problem


def test_space_path_reported_even_when_the_rest_of_the_spec_is_invalid():
    problems = problems_of("name: x\ntrain: {epochs: 0}\nsearch:\n  space:\n    pruning.nope: {values: [1]}\n")
    assert len(problems) == 2
    assert problems[0].startswith("train.epochs (line 2): ")
    assert problems[1].startswith("search.space.pruning.nope (line 5): no field 'nope' in pruning")


def test_space_path_is_checked_in_the_optimizer_the_spec_chose_even_when_the_spec_is_invalid():
    problems = problems_of("name: x\ntrain: {epochs: 0, optimizer: {name: adam}}\nsearch:\n  space:\n"
                           "    train.optimizer.momentum: {values: [0.5]}\n    train.optimizer: {values: [1]}\n")
    assert problems == [
        "train.epochs (line 2): Input should be greater than or equal to 1, got 0",
        "search.space.train.optimizer.momentum (line 5): no field 'momentum' in train.optimizer; "
        "available: name, lr, betas, weight_decay",
        "search.space.train.optimizer (line 6): train.optimizer is a section; "
        "name one of its fields: name, lr, betas, weight_decay",
    ]


def test_space_value_outside_the_field_bounds_is_rejected():
    (problem,) = problems_of(
        "name: x\nsearch:\n  space:\n    pruning.target_density: {values: [0.5, 1.5]}\n"
    )
    assert problem.startswith("search.space.pruning.target_density (line 4): value 1.5 is not allowed")
    assert "less than or equal to 1" in problem


def test_space_distribution_bounds_are_checked_against_the_field():
    (problem,) = problems_of(
        "name: x\nsearch:\n  space:\n    pruning.target_density: {distribution: uniform, low: 0.5, high: 2.0}\n"
    )
    assert problem.startswith("search.space.pruning.target_density (line 4): value 2.0 is not allowed")


def test_int_uniform_with_fractional_low_is_rejected_once():
    (problem,) = problems_of(
        "name: x\nsearch:\n  space:\n    pruning.min_channels: {distribution: int_uniform, low: 1.5, high: 4}\n"
    )
    assert problem.startswith("search.space.pruning.min_channels (line 4): int_uniform needs integer low and high")


def test_space_dimension_errors_report_only_the_branch_used():
    (typo,) = problems_of(
        "name: x\nsearch:\n  space:\n    pruning.min_channels: {distribution: uniform, low: 1, high: 4, stp: 1}\n"
    )
    assert typo == ("search.space.pruning.min_channels.stp (line 4): unknown key; "
                    "allowed: distribution, low, high, step")


STEPPED = """\
name: x
search:
  sampler: random
  space:
    train.label_smoothing: {distribution: uniform, low: 0.01, high: 0.05, step: 0.01}
    pruning.min_channels: {distribution: int_uniform, low: 2, high: 10, step: 2}
"""


def test_a_stepped_dimension_samples_on_its_grid_and_each_sample_is_a_valid_trial():
    spec = parse_spec(STEPPED)
    space = optuna_space(spec)
    smoothing, channels = space["train.label_smoothing"], space["pruning.min_channels"]
    assert isinstance(smoothing, optuna.distributions.FloatDistribution) and not smoothing.log
    assert (smoothing.low, smoothing.high, smoothing.step) == (0.01, 0.05, 0.01)
    assert isinstance(channels, optuna.distributions.IntDistribution)
    assert (channels.low, channels.high, channels.step) == (2, 10, 2)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = {"train.label_smoothing": set(), "pruning.min_channels": set()}
    for _ in range(30):
        params = study.ask(space).params
        steps = (params["train.label_smoothing"] - 0.01) / 0.01
        assert math.isclose(steps, round(steps), abs_tol=1e-9) and 0 <= round(steps) <= 4
        assert params["pruning.min_channels"] in {2, 4, 6, 8, 10}
        trial = apply_params(spec, params)
        assert trial.train.label_smoothing == params["train.label_smoothing"]
        assert trial.pruning.min_channels == params["pruning.min_channels"]
        for path, value in params.items():
            drawn[path].add(round(value, 6))
    assert len(drawn["train.label_smoothing"]) >= 3 and len(drawn["pruning.min_channels"]) >= 3


@pytest.mark.parametrize("dim, problem", [
    ("train.label_smoothing: {distribution: log_uniform, low: 0.01, high: 0.05, step: 0.01}",
     "search.space.train.label_smoothing (line 4): log_uniform takes no step"),
    ("train.label_smoothing: {distribution: uniform, low: 0.01, high: 0.05, step: -0.01}",
     "search.space.train.label_smoothing.step (line 4): Input should be greater than 0, got -0.01"),
    ("train.label_smoothing: {distribution: uniform, low: 0.01, high: 0.05, step: 0.1}",
     "search.space.train.label_smoothing (line 4): step must be at most high - low (0.04), got 0.1"),
    ("pruning.min_channels: {distribution: int_uniform, low: 2, high: 10, step: 0.5}",
     "search.space.pruning.min_channels (line 4): int_uniform needs an integer step, got 0.5"),
    ("pruning.min_channels: {distribution: int_uniform, low: 2, high: 10, step: 1.5}",
     "search.space.pruning.min_channels (line 4): int_uniform needs an integer step, got 1.5"),
])
def test_a_bad_step_is_a_spec_error_at_its_dimension(dim, problem):
    assert problems_of(f"name: x\nsearch:\n  space:\n    {dim}\n") == [problem]


def test_grid_sampler_takes_values_only():
    (problem,) = problems_of(
        "name: x\nsearch:\n  sampler: grid\n  space:\n"
        "    pruning.target_density: {distribution: uniform, low: 0.5, high: 0.9}\n"
    )
    assert "sampler grid needs {values: [...]}" in problem and "pruning.target_density" in problem


def test_search_settings_themselves_cannot_be_searched():
    (problem,) = problems_of("name: x\nsearch:\n  space:\n    search.trials: {values: [1, 2]}\n")
    assert problem.startswith("search.space.search.trials (line 4): cannot search over 'search.trials'")


def test_apply_params_puts_values_in_and_decodes_list_choices():
    spec = parse_spec(GOOD)
    trial = apply_params(spec, {
        "pruning.compress_at": encode_choice([1, 2]),
        "pruning.target_density": 0.75,
        "train.optimizer.lr": 0.05,
    })
    assert encode_choice([1, 2]) == "[1, 2]"
    assert trial.pruning.compress_at == [1, 2]
    assert trial.pruning.target_density == 0.75
    assert trial.train.optimizer.lr == 0.05
    assert trial.model == spec.model and trial.train.epochs == spec.train.epochs
    assert spec.pruning.target_density == 0.9  # the base spec is left as it was
    single = apply_params(spec, {"pruning.compress_at": encode_choice([1])})
    assert single.pruning.compress_at == [1]


def test_apply_params_validates_the_trial_as_a_whole():
    spec = parse_spec(GOOD)  # train.epochs is 5
    with pytest.raises(SpecError) as info:  # a stem fits a ResNet, not the spec's vgg11
        apply_params(spec, {"model.stem": "cifar"})
    assert any("model.stem applies to resnet18/34/50 only" in p for p in info.value.problems)
    with pytest.raises(SpecError):
        apply_params(spec, {"pruning.target_density": 1.5})


def test_int_uniform_samples_become_ints():
    spec = parse_spec("name: x\nsearch:\n  space:\n    pruning.min_channels: {distribution: int_uniform, low: 1, high: 8}\n")
    trial = apply_params(spec, {"pruning.min_channels": 3.0})
    assert trial.pruning.min_channels == 3 and isinstance(trial.pruning.min_channels, int)


def test_spec_without_a_search_space_is_the_default_study():
    spec = parse_spec("name: x\n")
    assert spec == StudySpec(name="x")
    assert spec.search.space == {} and spec.pruning.rounds(spec.train.epochs) == 0


def test_train_compile_takes_off_on_auto_or_a_yaml_boolean():
    assert TrainSpec().compile == "off"  # on a CPU a compile costs more than it saves (benchmarks/RESULTS.md)
    assert parse_spec("name: x\ntrain: {compile: off}\n").train.compile == "off"  # YAML reads `off` as false
    assert parse_spec("name: x\ntrain: {compile: true}\n").train.compile == "on"
    assert parse_spec("name: x\ntrain: {compile: auto}\n").train.compile == "auto"
    assert problems_of("name: x\ntrain: {compile: fast}\n") == [
        "train.compile (line 2): Input should be 'off', 'on' or 'auto', got 'fast'"]
    assert TrainSpec().drop_last is True


def test_a_date_that_does_not_exist_is_a_spec_error_not_a_traceback():
    with pytest.raises(SpecError, match=r"not valid YAML: month must be in 1\.\.12 \(quote the value"):
        parse_spec("name: x\nseed: 2020-13-45\n")


# --- criteria, width rules, the periodic schedule ------------------------------------------------


def test_a_periodic_schedule_compresses_from_start_every_so_many_epochs():
    spec = parse_spec("name: x\ntrain: {epochs: 12}\npruning: {start: 3, every: 4, max_rounds: 2}\n")
    assert spec.pruning.schedule(12) == [3, 7, 11]
    assert spec.pruning.rounds(12) == 2  # max_rounds caps it
    once = parse_spec("name: x\ntrain: {epochs: 12}\npruning: {start: 5}\n")
    assert once.pruning.schedule(12) == [5] and once.pruning.rounds(12) == 1
    listed = parse_spec("name: x\ntrain: {epochs: 6}\npruning: {compress_at: [2, 6, 9]}\n")
    assert listed.pruning.schedule(6) == [2]  # no training after epoch 6
    late = parse_spec("name: x\ntrain: {epochs: 6}\npruning: {start: 6, every: 2}\n")
    assert late.pruning.schedule(6) == [] and spec_warnings(late) == [
        "pruning.start: epoch 6 is not before train.epochs (6), so no training follows it: no compression happens"]


def test_start_with_compress_at_is_rejected_at_the_line_of_start():
    (problem,) = problems_of("name: x\npruning:\n  compress_at: [3]\n  start: 2\n  every: 2\n")
    assert problem.startswith("pruning.start (line 4): pruning.start and pruning.compress_at ([3]) both say when")
    assert "give one of the two" in problem
    (problem,) = problems_of("name: x\npruning:\n  every: 2\n")
    assert problem.startswith("pruning.every (line 3): pruning.every needs pruning.start")
    (problem,) = problems_of("name: x\npruning:\n  start: 0\n  every: 2\n")  # one error for a bad start, not two
    assert problem.startswith("pruning.start (line 3): Input should be greater than or equal to 1")


def test_a_space_searching_both_schedules_is_rejected():
    problems = problems_of("name: x\nsearch:\n  space:\n    pruning.compress_at: {values: [[2], [3]]}\n"
                           "    pruning.start: {distribution: int_uniform, low: 1, high: 4}\n")
    assert any(p.startswith("search.space.pruning.start (line 5): the space searches pruning.compress_at and "
                            "pruning.start") for p in problems)
    # a searched start over a base spec that lists compress_at: every value is said not to fit
    one, three = problems_of("name: x\npruning: {compress_at: [2]}\nsearch:\n  space:\n"
                             "    pruning.start: {values: [1, 3]}\n")
    assert one.startswith("search.space.pruning.start (line 5): value 1 is not allowed (pruning.start: ")
    assert three.startswith("search.space.pruning.start (line 5): value 3 is not allowed") and "give one" in three


def test_criterion_widths_and_keep_are_checked_and_searchable():
    (problem,) = problems_of("name: x\npruning: {criterion: taylor}\n")
    assert problem.startswith("pruning.criterion (line 2): ") and "'l1_norm', 'bn_scale' or 'random'" in problem
    (problem,) = problems_of("name: x\npruning: {widths: uniform, keep: 1.5}\n")
    assert problem.startswith("pruning.keep (line 2): Input should be less than 1")
    spec = parse_spec("name: x\nsearch:\n  space:\n    pruning.criterion: {values: [activation_density, random]}\n"
                      "    pruning.widths: {values: [density, uniform]}\n"
                      "    pruning.keep: {distribution: uniform, low: 0.25, high: 0.75}\n"
                      "    pruning.every: {distribution: int_uniform, low: 1, high: 3}\n"
                      "pruning: {start: 2}\n")
    trial = apply_params(spec, {"pruning.criterion": "random", "pruning.widths": "uniform", "pruning.keep": 0.4,
                                "pruning.every": 2})
    assert (trial.pruning.criterion, trial.pruning.widths, trial.pruning.keep) == ("random", "uniform", 0.4)
    assert trial.pruning.schedule(trial.train.epochs) == list(range(2, trial.train.epochs, 2))


def test_a_network_that_cannot_take_the_image_size_is_an_error_at_data_image_size():
    text = "name: x\nmodel: {arch: 'torchvision:densenet121'}\ndata:\n  dataset: digits\n  image_size: 8\n" \
           "pruning: {method: none}\n"
    assert problems_of(text) == [
        "data.image_size (line 5): torchvision:densenet121 cannot take 8x8 inputs (its feature maps shrink to "
        "nothing: features.transition2.pool (AvgPool2d) gets 1x1); the smallest size it takes is 29: "
        "set data.image_size: 29"]
    assert parse_spec(text.replace("image_size: 8", "image_size: 29")).data.image_size == 29


def test_an_unset_image_size_is_checked_at_the_dataset_native_size_with_pruning_on_and_in_the_space():
    # squeezenet1_1 takes 17 px and up (tests/models/test_models.py); digits are 8 px
    (problem,) = problems_of("name: x\nmodel: {arch: 'torchvision:squeezenet1_1'}\ndata: {dataset: digits}\n")
    assert problem.startswith("data.image_size (line 3): not set: digits gives its native 8 px; "
                              "torchvision:squeezenet1_1 cannot take 8x8 inputs (")
    assert problem.endswith("the smallest size it takes is 17: set data.image_size: 17")
    (problem,) = problems_of("name: x\nmodel: {arch: 'torchvision:squeezenet1_1'}\n"
                             "data: {dataset: digits, image_size: 17}\n"
                             "search:\n  space:\n    data.image_size: {values: [8, 17]}\n")
    assert problem.startswith("search.space.data.image_size (line 6): value 8 is not allowed: data.image_size: "
                              "torchvision:squeezenet1_1 cannot take 8x8 inputs")
    # imagefolder's size is read from its files: not checked here
    assert parse_spec("name: x\nmodel: {arch: 'torchvision:squeezenet1_1'}\n"
                      "data: {dataset: imagefolder, root: /nowhere}\n").data.image_size is None
