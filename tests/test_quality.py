"""The one end-to-end quality test: the demo config, through snakemake on the CPU, gives a working model.

It is the test that fails when a change breaks training itself (a wrong flag mapping, a broken crop, a wrong
channel, scrambled labels): every other workflow test trains for 1-3 epochs and checks files, not quality.
It takes about five minutes on 2 cores (40 epochs of 16 crops at 96 x 96, seeded).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from conftest import ROOT, run_snakemake

from omnitrain.demo import write_demo

pytestmark = [pytest.mark.workflow, pytest.mark.quality]
pytest.importorskip("cellpose_omni.models")

#: Comfortably below what the demo reaches (0.9 and above), so that the test does not flake.
MIN_AP50 = 0.7


def test_the_demo_model_segments_its_held_out_image(tmp_path):
    write_demo(tmp_path / "resources" / "demo")
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    run = run_snakemake(tmp_path, {**config, "resources": {"train_threads": 2}}, timeout=1500)
    assert run.returncode == 0, run.stderr[-4000:]
    evaluation = (tmp_path / "results/demo/latest/evaluation").resolve()
    scores = json.loads((evaluation / "scores.json").read_text())
    summary = pd.read_csv(evaluation / "summary.tsv", sep="\t").set_index("iou_threshold")
    assert scores["images"] >= 1
    assert summary.loc[0.5, "ap"] >= MIN_AP50, f"held-out AP@0.5 {summary.loc[0.5, 'ap']:.3f} < {MIN_AP50}"
