"""The leaderboard: held-out scores of every experiment, as mean and sd over cross-validation folds.

Rows come from the registered versions' records (omnitrain/registry.py) and their model cards: one row per
run (experiment, fold), then one per experiment, ranked by ``leaderboard.metric``. Each run's AP@0.5 and mean
AP carry their 95 % bootstrap interval over the held-out images (omnitrain/evaluation.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .evaluation import INTERVAL_KEYS

SCORES = ("ap50", "mean_ap", "aji", "pq")
RUN_COLUMNS = [
    "experiment", "fold", "version", "model_version", *SCORES, *INTERVAL_KEYS, "selected_epoch", "epochs",
    "seconds_per_epoch", "wall_seconds", "device",
]  # fmt: skip


def run_row(record: dict, card: dict) -> dict:
    """One run's held-out scores and training cost, from its record and model card."""
    summary = record["scores"]["summary"]
    selected = (record.get("model") or {}).get("selected") or {}
    epochs = card["epochs"]
    return {
        "experiment": record.get("experiment", "base"),
        "fold": record.get("fold") or "",
        "version": record["version"],
        "model_version": record["versions"]["model"],
        **{k: summary.get(k) for k in (*SCORES, *INTERVAL_KEYS)},
        "selected_epoch": selected.get("epoch", epochs),
        "epochs": epochs,
        "seconds_per_epoch": card["seconds_per_epoch"],  # over every part of a resumed training
        "wall_seconds": card["wall_seconds"],
        "device": card["device"],
    }


def run_table(record_files) -> pd.DataFrame:
    """One row per run, in the order the records are given."""
    rows = []
    for path in record_files:
        record = json.loads(Path(path).read_text())
        card = json.loads(Path(record["paths"]["files"]["card"]).read_text())
        rows.append(run_row(record, card))
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def leaderboard(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per experiment, best first by the mean of ``metric`` over its folds.

    With folds, the mean and sd are over the fold runs, and a refit run (fold "") adds its own scores as
    ``refit_<score>`` (with its interval); without folds, each experiment has one run, no sd (empty) and
    that run's bootstrap interval as ``<score>_low``/``<score>_high`` (empty with folds: each fold's interval
    is in the runs table)."""
    rows = []
    for name, group in runs.groupby("experiment", sort=False):
        folds = group[group["fold"] != ""]
        refit = group[group["fold"] == ""]
        scored = folds if len(folds) else refit
        row = {"experiment": name, "folds": len(folds)}
        for score in SCORES:
            values = pd.to_numeric(scored[score], errors="coerce")
            row[f"{score}_mean"] = values.mean()
            row[f"{score}_sd"] = values.std(ddof=1) if len(values) > 1 else np.nan
        for key in INTERVAL_KEYS:
            row[key] = pd.to_numeric(scored[key], errors="coerce").iloc[0] if len(scored) == 1 else np.nan
        row["selected_epoch_mean"] = scored["selected_epoch"].mean()
        row["seconds_per_epoch"] = scored["seconds_per_epoch"].mean()
        row["wall_seconds"] = group["wall_seconds"].sum()
        row["device"] = ", ".join(sorted(set(group["device"])))
        if len(folds) and len(refit):
            row |= {f"refit_{score}": refit[score].iloc[0] for score in (*SCORES, *INTERVAL_KEYS)}
        rows.append(row)
    table = pd.DataFrame(rows)
    table = table.sort_values(f"{metric}_mean", ascending=False, kind="stable", na_position="last")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


def plot(board: pd.DataFrame, runs: pd.DataFrame, metric: str, path) -> None:
    """Bars of each experiment's mean ``metric`` with its sd over folds (or, with one run, its 95 % bootstrap
    interval over held-out images where the metric has one), and a dot per fold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 0.55 * len(board) + 1.4))
    order = list(board["experiment"])[::-1]
    y = np.arange(len(order))
    rows = board.set_index("experiment").loc[order]
    means = rows[f"{metric}_mean"].to_numpy(float)
    sds = rows[f"{metric}_sd"].to_numpy(float)
    lows = rows.get(f"{metric}_low", pd.Series(np.nan, index=rows.index)).to_numpy(float)
    highs = rows.get(f"{metric}_high", pd.Series(np.nan, index=rows.index)).to_numpy(float)
    # An asymmetric bar per experiment: the sd over folds where there are folds, else the run's interval.
    below = np.where(np.isnan(sds), means - lows, sds)
    above = np.where(np.isnan(sds), highs - means, sds)
    # (clipped at 0: an interval of identical images can miss its mean by a rounding step, and matplotlib
    # refuses a negative error bar)
    ax.barh(y, means, xerr=np.clip(np.nan_to_num([below, above]), 0, None), color="#9ecae1", capsize=4)
    for i, name in enumerate(order):
        folds = runs[(runs["experiment"] == name) & (runs["fold"] != "")]
        ax.plot(pd.to_numeric(folds[metric]), np.full(len(folds), i), "o", color="#08519c", ms=4)
    ax.set_yticks(y, order)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"held-out {metric} (bars: mean ± sd over folds, or one run's 95 % interval; dots: folds)")
    ax.set_title("Experiments")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
