"""The one end-to-end quality test: the demo config trains, through snakemake on the CPU, a model that
segments.

It is the test that fails when a change breaks training itself (a wrong flag mapping, a broken crop, a
wrong channel, scrambled labels), which no shape or file test sees. Seeded (pipeline.seed 0); the demo
reaches held-out AP@0.5 >= 0.9 and mean AP >= 0.7 on its three held-out images at each of pipeline.seed 0-4
(docs/quality.md, "The demo"); the bounds here are those minus a margin of 0.05, because the figures
repeat on one machine, not across CPUs. It costs minutes: it is the slowest test, kept in CI on purpose.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytestmark = [pytest.mark.workflow, pytest.mark.quality]
pytest.importorskip("cellpose_omni.models")

#: What the demo reaches at every seed (README), less the margin for another CPU's arithmetic.
MIN_AP50, MIN_MEAN_AP = 0.9 - 0.05, 0.7 - 0.05


def test_demo_config_trains_a_model_that_segments_the_heldout_images(demo_trained):
    work, config, version = demo_trained  # (conftest.py: the demo config, trained once per session)
    latest = work / "results/versions" / version
    scores = json.loads((latest / "evaluation/scores.json").read_text())
    card = json.loads((latest / "model/model_card.json").read_text())
    assert card["epochs"] == config["n_epochs"] and card["device"].startswith("cpu")
    assert scores["images"] >= 3
    summary = pd.read_csv(latest / "evaluation/summary.tsv", sep="\t").set_index("iou_threshold")
    ap50, mean_ap = scores["ap50"], scores["mean_ap"]
    assert ap50 >= MIN_AP50, f"held-out AP@0.5 {ap50:.2f} < {MIN_AP50:.2f}: no longer learns\n{summary}"
    assert mean_ap >= MIN_MEAN_AP, f"held-out mean AP {mean_ap:.2f} < {MIN_MEAN_AP:.2f}\n{summary}"


def test_the_demo_loss_falls(demo_trained):
    work, _, version = demo_trained
    losses = pd.read_csv(work / "results/versions" / version / "model/losses.tsv", sep="\t")["loss"]
    tenth = len(losses) // 10
    first, last = losses.iloc[:tenth].mean(), losses.iloc[-tenth:].mean()
    # The last tenth's mean over the first tenth's: 0.56-0.66 at seeds 0-4; the previous demo's 0.72, 0.82.
    assert last < 0.75 * first, f"the loss fell from {first:.2f} to {last:.2f} only"
