"""Fixtures shared by the whole suite; the helpers they use are in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import ROOT, cells, run_snakemake, write_pair


@pytest.fixture
def good_folder(tmp_path) -> Path:
    """A valid training folder of three pairs."""
    folder = tmp_path / "train"
    for i in range(3):
        write_pair(folder, f"img{i}", lab=cells(n=4 + i))
    return folder


@pytest.fixture(scope="session")
def demo_trained(tmp_path_factory):
    """The demo config (config/demo.yaml) trained through snakemake on the full demo set, once per session:
    tests/test_quality.py scores it, tests/test_workflow_segment.py starts the annotation loop from it.
    Returns (work folder, config, the version id it registered)."""
    from omnitrain.demo import write_demo

    work = tmp_path_factory.mktemp("demo_trained")
    config = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    config.update(dir="demo", pipeline={**config["pipeline"], "results": "results"})
    write_demo(work / "demo")
    run = run_snakemake(work, config, timeout=1800)
    assert run.returncode == 0, run.stderr[-4000:]
    return work, config, (work / "results/latest.txt").read_text().strip()
