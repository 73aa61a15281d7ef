"""The packing benchmark's arithmetic (benchmarks/bench_quality.py): training time without the monitor's
scorings, and the time-to-accuracy ratio, on hand-made learning curves."""

from __future__ import annotations

import sys

import pandas as pd
import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_quality  # noqa: E402


def curve(seconds, ap):
    """A losses.tsv table: per-epoch seconds, validation AP@0.5 at the scored epochs (None elsewhere)."""
    return pd.DataFrame(
        {
            "epoch": range(len(seconds)),
            "seconds": seconds,
            "val_ap50": [float("nan") if a is None else a for a in ap],
        }
    )


def test_training_time_leaves_the_scorings_out():
    # Epoch 1 was scored; epoch 2's 31 s hold the scoring's 30 s: it counts as the median epoch (1 s).
    table = curve([1, 1, 31, 1], [None, 0.2, None, 0.5])
    assert bench_quality.training_seconds(table).tolist() == [1, 2, 3, 4]


def test_time_to_accuracy_is_packed_time_to_raw_final_ap_over_raw_time():
    raw = curve([2, 2, 2, 2], [None, 0.3, None, 0.6])
    packed = curve([2, 2, 2, 2], [None, 0.6, None, 0.7])
    for table in (raw, packed):
        table["train_seconds"] = bench_quality.training_seconds(table)
    ratios = bench_quality.time_to_accuracy({("raw", 1): raw, ("base", 1): packed}, [1])
    row = ratios.iloc[0]
    assert row["raw_final_val_ap50"] == 0.6 and row["packed_seconds"] == 4 and row["raw_seconds"] == 8
    assert row["ratio"] == pytest.approx(0.5)


def test_packed_that_never_reaches_raw_has_no_ratio():
    raw = curve([1, 1], [None, 0.8])
    packed = curve([1, 1], [None, 0.5])
    for table in (raw, packed):
        table["train_seconds"] = bench_quality.training_seconds(table)
    row = bench_quality.time_to_accuracy({("raw", 0): raw, ("base", 0): packed}, [0]).iloc[0]
    assert pd.isna(row["packed_seconds"]) and pd.isna(row["ratio"])
