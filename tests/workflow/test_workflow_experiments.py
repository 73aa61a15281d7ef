"""Experiments x cross-validation folds through snakemake: shared steps, the leaderboard, the registry."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import dry_run_jobs, one, run_snakemake
from runs import EXPERIMENTS as CONFIG
from runs import EXPERIMENTS_NAMES as NAMES

from omnitrain.demo import write_demo

pytestmark = pytest.mark.workflow
pytest.importorskip("cellpose_omni.models")


def test_two_experiments_by_two_folds_are_four_trainings_sharing_the_packing(experiments_run):
    _, planned = experiments_run
    assert planned["train"] == 4 and planned["evaluate"] == 4 and planned["register"] == 4
    assert planned["pack"] == 2, "an experiment that differs only in learning rate packs nothing of its own"
    assert planned["heldout_set"] == 1 and planned["leaderboard"] == 1


def test_each_fold_monitors_on_its_own_training_images(experiments_run):
    folder, _ = experiments_run
    splits = [pd.read_csv(p, sep="\t") for p in sorted((folder / "results/splits").glob("*/split.tsv"))]
    assert len(splits) == 2, "one split per fold, shared by both experiments"
    tests = [set(s.loc[s["role"] == "test", "name"]) for s in splits]
    assert tests[0] == tests[1] and len(tests[0]) == 1
    for s in splits:  # each table gives every training image's fold; its own fold's are the validation images
        trained = s[s["role"] != "test"]
        assert set(trained["fold"]) == {1, 2}
        assert trained.loc[trained["role"] == "validation", "fold"].nunique() == 1
    validation = [set(s.loc[s["role"] == "validation", "name"]) for s in splits]
    assert validation[0] and validation[1] and not validation[0] & validation[1]
    assert validation[0] | validation[1] == set(NAMES) - tests[0]


def test_the_leaderboard_ranks_two_experiments_with_mean_and_sd(experiments_run):
    folder, _ = experiments_run
    board = pd.read_csv(folder / "results/leaderboard.tsv", sep="\t")
    assert sorted(board["experiment"]) == ["base", "slow_lr"] and list(board["rank"]) == [1, 2]
    assert (board["folds"] == 2).all()
    for column in ("ap50_mean", "ap50_sd", "mean_ap_mean", "mean_ap_sd", "aji_mean", "pq_mean"):
        assert board[column].notna().all(), column
    assert board["ap50_mean"].is_monotonic_decreasing
    assert (board["seconds_per_epoch"] > 0).all() and board["device"].str.startswith("cpu").all()
    assert (folder / "results/leaderboard.png").stat().st_size > 0
    runs = pd.read_csv(folder / "results/leaderboard_runs.tsv", sep="\t")
    assert len(runs) == 4 and sorted(runs["fold"]) == [1, 1, 2, 2]
    # each run's 95 % bootstrap intervals over held-out images
    assert {"ap50_low", "ap50_high", "mean_ap_low", "mean_ap_high"} <= set(runs.columns)
    scored = runs.dropna(subset=["ap50_low"])
    assert (scored["ap50_low"] <= scored["ap50"] + 1e-9).all() and (
        scored["ap50"] <= scored["ap50_high"] + 1e-9
    ).all()
    registry = pd.read_csv(folder / "results/registry.tsv", sep="\t")
    assert sorted(zip(registry["experiment"], registry["fold"], strict=True)) == [
        ("base", 1), ("base", 2), ("slow_lr", 1), ("slow_lr", 2),
    ]  # fmt: skip
    assert registry["model_version"].nunique() == 4
    latest = one(folder, "results/latest.txt").read_text().strip()
    assert (
        latest == registry.loc[(registry["experiment"] == "base") & (registry["fold"] == 1), "version"].item()
    )


def test_changing_one_experiment_plans_only_its_trainings_and_what_follows(experiments_run):
    folder, _ = experiments_run
    assert dry_run_jobs(folder, CONFIG) == {}
    changed = {**CONFIG, "experiments": {"slow_lr": {"learning_rate": 0.01}}}
    jobs = dry_run_jobs(folder, changed)
    after_training = {"train": 2, "predict_heldout": 2, "evaluate": 2, "register": 2}
    assert jobs == {**after_training, "registry": 1, "leaderboard": 1, "all": 1}


def test_a_typo_in_an_experiment_stops_before_any_job(tmp_path):
    write_demo(tmp_path / "demo", names=NAMES[:2])
    cfg = {**CONFIG, "experiments": {"raw": {"packing": {"enable": False}}}}
    run = run_snakemake(tmp_path, cfg)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert (
        "experiments.raw: unknown key 'packing.enable'" in run.stderr
        and "did you mean 'enabled'" in run.stderr
    )
