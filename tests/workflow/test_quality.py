"""The one end-to-end quality test: the demo config trains, through snakemake on the CPU, a model that
segments.

It is the test that fails when a change breaks training itself (a wrong flag mapping, a broken crop, a
wrong channel, scrambled labels), which no shape or file test sees. Seeded; the bound (held-out AP@0.5 >=
0.7) sits below what the demo reaches (0.77-0.89 over seeds 0-3 on 2 CPU cores, README); the figures repeat on
one machine, not across CPUs. It costs minutes: it is the slowest test, kept in CI on purpose.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytestmark = [pytest.mark.workflow, pytest.mark.quality]
pytest.importorskip("cellpose_omni.models")


def test_demo_config_trains_a_model_that_segments_the_heldout_image(demo_trained):
    work, config, version = demo_trained  # (conftest.py: the demo config, trained once per session)
    latest = work / "results/versions" / version
    summary = pd.read_csv(latest / "evaluation/summary.tsv", sep="\t").set_index("iou_threshold")
    card = json.loads((latest / "model/model_card.json").read_text())
    assert card["epochs"] == config["n_epochs"] and card["device"].startswith("cpu")
    ap50 = summary.loc[0.5, "ap"]
    assert ap50 >= 0.7, f"held-out AP@0.5 {ap50:.2f} < 0.7: training no longer learns the demo\n{summary}"
