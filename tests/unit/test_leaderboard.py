"""The leaderboard's tables (omnitrain/leaderboard.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from omnitrain.leaderboard import leaderboard, plot, run_row


def record(experiment, fold, ap50, version="v"):
    return {
        "version": version,
        "experiment": experiment,
        "fold": fold,
        "versions": {"model": "m"},
        "scores": {
            "summary": {
                "ap50": ap50,
                "mean_ap": ap50 / 2,
                "aji": 0.5,
                "pq": 0.4,
                "ap50_low": ap50 - 0.1,
                "ap50_high": ap50 + 0.05,
                "mean_ap_low": None,
                "mean_ap_high": None,
            }
        },  # fmt: skip
        "model": {"selected": {"epoch": 4}},
    }


CARD = {"epochs": 10, "wall_seconds": 50.0, "seconds_per_epoch": 5.0, "device": "cpu"}


def test_experiments_are_ranked_by_the_mean_over_folds_with_their_sd(tmp_path):
    runs = pd.DataFrame(
        [
            run_row(record("base", 1, 0.6), CARD),
            run_row(record("base", 2, 0.8), CARD),
            run_row(record("radam", 1, 0.9), CARD),
            run_row(record("radam", 2, 0.9), CARD),
            run_row(record("radam", None, 0.95), CARD),
        ]
    )
    board = leaderboard(runs, "ap50")
    assert list(board["experiment"]) == ["radam", "base"] and list(board["rank"]) == [1, 2]
    base = board.set_index("experiment").loc["base"]
    assert math.isclose(base["ap50_mean"], 0.7) and math.isclose(base["ap50_sd"], pd.Series([0.6, 0.8]).std())
    radam = board.set_index("experiment").loc["radam"]
    assert radam["folds"] == 2 and radam["refit_ap50"] == 0.95 and radam["ap50_sd"] == 0
    assert radam["wall_seconds"] == 150 and radam["seconds_per_epoch"] == 5.0
    assert radam["selected_epoch_mean"] == 4
    plot(board, runs, "ap50", tmp_path / "board.png")
    assert (tmp_path / "board.png").stat().st_size > 0


def test_without_folds_each_experiment_has_one_score_and_no_sd():
    runs = pd.DataFrame([run_row(record("base", None, 0.5), CARD), run_row(record("b", None, 0.7), CARD)])
    board = leaderboard(runs, "mean_ap")
    assert list(board["experiment"]) == ["b", "base"] and board["ap50_sd"].isna().all()
    assert (board["folds"] == 0).all()


def test_one_run_per_experiment_shows_its_bootstrap_interval(tmp_path):
    runs = pd.DataFrame([run_row(record("base", None, 0.5), CARD), run_row(record("b", None, 0.7), CARD)])
    board = leaderboard(runs, "ap50").set_index("experiment")
    assert board.loc["b", "ap50_low"] == pytest.approx(0.6) and board.loc["b", "ap50_high"] == pytest.approx(
        0.75
    )
    assert board["mean_ap_low"].isna().all()  # a run with one held-out image has none
    plot(board.reset_index(), runs, "ap50", tmp_path / "board.png")
    # With folds the spread is the sd over folds; each fold's interval stays in the runs table, the refit's
    # comes as refit_<score>.
    runs = pd.DataFrame(
        [
            run_row(record("a", 1, 0.6), CARD),
            run_row(record("a", 2, 0.8), CARD),
            run_row(record("a", None, 0.9), CARD),
        ]
    )
    row = leaderboard(runs, "ap50").iloc[0]
    assert np.isnan(row["ap50_low"]) and row["refit_ap50_low"] == pytest.approx(0.8)
    assert list(runs["ap50_low"]) == pytest.approx([0.5, 0.7, 0.8])
