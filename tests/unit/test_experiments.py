"""Experiments and cross-validation folds (omnitrain/experiments.py, split.py and sources.py)."""

from __future__ import annotations

import pytest
from helpers import write_pair

from omnitrain.config import ConfigError, check_config
from omnitrain.discovery import discover
from omnitrain.experiments import deep_merge, experiment_configs, plan_runs, primary
from omnitrain.sources import build_sources
from omnitrain.split import assign_folds


@pytest.fixture
def folder(tmp_path):
    for i in range(12):
        write_pair(tmp_path / "data", f"img{i:02d}")
    return tmp_path / "data"


def test_every_training_source_is_in_exactly_one_fold_and_each_fold_validates_once(folder):
    cfg = check_config({"dir": str(folder), "cross_validation": {"folds": 3}})
    found = discover(folder)
    plain = build_sources(found, None, cfg)
    train = {s for s, v in plain.items() if v["role"] != "test"}
    validated = []
    for fold in (1, 2, 3):
        sources = build_sources(found, None, cfg, fold)
        assert {s for s, v in sources.items() if v["role"] == "test"} == {
            s for s, v in plain.items() if v["role"] == "test"
        }, "the held-out images are the same with and without folds"
        validation = {s for s, v in sources.items() if v["role"] == "validation"}
        assert validation and all(sources[s]["fold"] == fold for s in validation)
        assert {s for s, v in sources.items() if v["role"] == "train"} == train - validation
        validated += sorted(validation)
    assert sorted(validated) == sorted(train), "each training source validates in exactly one fold"


def test_folds_are_stable_when_a_source_is_added_and_keep_groups_together():
    names = [f"s{i:02d}" for i in range(30)]
    before = assign_folds(names, 4, seed=0)
    after = assign_folds([*names, "new"], 4, seed=0)
    assert {n: after[n] for n in names} == before
    assert set(before.values()) == {1, 2, 3, 4}
    frames = [f"{c}_t{t}" for c in "abcdef" for t in range(3)]
    folds = assign_folds(frames, 3, group_regex=r"^(.*)_t\d+$")
    assert all(len({folds[f"{c}_t{t}"] for t in range(3)}) == 1 for c in "abcdef")


def test_no_fold_is_empty_and_too_few_sources_are_refused():
    for n in range(3, 9):
        assert set(assign_folds([f"x{i}" for i in range(n)], 3).values()) == {1, 2, 3}
    with pytest.raises(ValueError, match=r"cross_validation.folds is 5 but there are only 3"):
        assign_folds(["a", "b", "c"], 5)


def test_experiments_are_the_config_with_overrides_checked_like_it(folder):
    cfg = check_config(
        {
            "dir": str(folder),
            "learning_rate": 0.2,
            "experiments": {
                "radam": {"RAdam": True, "learning_rate": 0.1},
                "raw": {"packing": {"enabled": False}},
            },
        }
    )
    configs = experiment_configs(cfg)
    assert list(configs) == ["base", "radam", "raw"]
    assert configs["radam"]["RAdam"] and configs["radam"]["learning_rate"] == 0.1
    assert configs["raw"]["packing"]["enabled"] is False and configs["raw"]["packing"]["gap"] == 3
    assert configs["base"]["learning_rate"] == 0.2 and configs["base"]["packing"]["enabled"]
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"packing": {"enable": False}}, ["experiments.raw", "packing.enable", "did you mean 'enabled'"]),
        ({"n_epoch": 3}, ["experiments.raw", "n_epoch", "did you mean 'n_epochs'"]),
        ({"tyx": [96, 128]}, ["experiments.raw", "square"]),
        (
            {"split": {"test_fraction": 0.5}},
            ["experiments.raw", "split", "same held-out images", "top level"],
        ),
        ({"dir": "elsewhere"}, ["experiments.raw", "dir"]),
        ({"dim": 3}, ["experiments.raw", "dim cannot differ"]),
        ({"export": {"license": "MIT"}}, ["experiments.raw", "export cannot differ", "name the version"]),
    ],
    ids=["typo-in-section", "typo", "bad-value", "split", "dir", "dim", "export"],
)
def test_a_bad_override_is_refused_naming_the_experiment(folder, overrides, words):
    cfg = check_config({"dir": str(folder), "experiments": {"raw": overrides}})
    with pytest.raises(ConfigError) as err:
        experiment_configs(cfg)
    for word in words:
        assert word in str(err.value)


def test_an_experiment_cannot_be_called_base(folder):
    cfg = check_config({"dir": str(folder), "experiments": {"base": {"n_epochs": 3}}})
    with pytest.raises(ConfigError, match="not 'base'"):
        experiment_configs(cfg)


def test_runs_are_experiments_times_folds_plus_refits(folder):
    cfg = check_config({"dir": str(folder), "experiments": {"b": {"n_epochs": 3}}})
    assert [r.name for r in plan_runs(cfg)] == ["base", "b"]
    cfg = check_config({**cfg, "cross_validation": {"folds": 2}})
    runs = plan_runs(cfg)
    assert [(r.name, r.experiment, r.fold) for r in runs] == [
        ("base/fold1", "base", 1), ("base/fold2", "base", 2), ("b/fold1", "b", 1), ("b/fold2", "b", 2),
    ]  # fmt: skip
    assert runs[2].config["n_epochs"] == 3 and runs[2].config["run"] == {"experiment": "b", "fold": 1}
    assert primary(runs).name == "base/fold1"
    cfg = check_config({**cfg, "cross_validation": {"folds": 2, "refit": True}})
    runs = plan_runs(cfg)
    assert [r.name for r in runs] == ["base/fold1", "base/fold2", "base", "b/fold1", "b/fold2", "b"]
    assert primary(runs).name == "base"


def test_folds_one_is_refused(folder):
    with pytest.raises(ConfigError, match="cross_validation.folds"):
        check_config({"dir": str(folder), "cross_validation": {"folds": 1}})


@pytest.mark.parametrize(
    ("experiments", "words"),
    [
        ({"raw": 5}, ["experiments.raw: 5 is a whole number; write a section of `name: value` lines"]),
        (None, ["experiments: null is null (nothing); write a section"]),
        ({True: {"n_epochs": 3}}, ["experiments.True", "rename it"]),
        ({1: {"n_epochs": 3}, "a": 6}, ["experiments"]),
    ],
    ids=["override-not-a-mapping", "null", "yes-as-a-name", "mixed-keys"],
)
def test_malformed_experiments_get_a_message_not_a_traceback(folder, experiments, words):
    with pytest.raises(ConfigError) as err:
        experiment_configs(check_config({"dir": str(folder), "experiments": experiments}))
    for word in words:
        assert word in str(err.value)
