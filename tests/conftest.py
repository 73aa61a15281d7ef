"""Fixtures shared by the whole suite; the helpers they use are in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import runs
import yaml
from helpers import ROOT, cells, dry_run_jobs, run_snakemake, shrink_pairs, write_pair


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
    tests/workflow/test_quality.py scores it, tests/workflow/test_workflow_segment.py starts the annotation
    loop from (a copy of) it. Returns (work folder, config, the version id it registered)."""
    from omnitrain.demo import write_demo

    config = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    config.update(dir="demo", pipeline={**config["pipeline"], "results": "results"})
    work, _ = trained_run(tmp_path_factory, "demo_trained", config, lambda w: write_demo(w / "demo"), 1800)
    return work, config, (work / "results/latest.txt").read_text().strip()


def trained_run(tmp_path_factory, name: str, config: dict, write, timeout: int = 1500):
    """A work folder in which ``write(folder)`` put the images and snakemake ran ``config`` to the end."""
    work = tmp_path_factory.mktemp(name)
    write(work)
    run = run_snakemake(work, config, timeout=timeout)
    assert run.returncode == 0, run.stderr[-4000:]
    return work, run


@pytest.fixture(scope="session")
def train_run(tmp_path_factory):
    """runs.TRAIN on four demo images (size model on, monitoring off): the work folder."""
    from omnitrain.demo import write_demo

    return trained_run(
        tmp_path_factory, "train", runs.TRAIN, lambda w: write_demo(w / "demo", names=runs.TRAIN_NAMES)
    )[0]


@pytest.fixture(scope="session")
def monitored_run(tmp_path_factory):
    """runs.MONITORED: monitored every 2 epochs on one validation image. The work folder."""
    from omnitrain.demo import write_demo

    def write(work):
        write_demo(work / "demo", names=runs.MONITORED_NAMES)
        shrink_pairs(work / "demo")  # each scoring segments the whole validation image: a small one

    return trained_run(tmp_path_factory, "monitor", runs.MONITORED, write)[0]


@pytest.fixture(scope="session")
def experiments_run(tmp_path_factory):
    """runs.EXPERIMENTS (two experiments x two folds): the work folder and the dry run's jobs."""
    from omnitrain.demo import write_demo

    planned = {}

    def write(work):
        write_demo(work / "demo", names=runs.EXPERIMENTS_NAMES)
        shrink_pairs(work / "demo")  # four trainings score three validation images each: small ones
        planned.update(dry_run_jobs(work, runs.EXPERIMENTS))

    work, _ = trained_run(tmp_path_factory, "experiments", runs.EXPERIMENTS, write)
    return work, planned


@pytest.fixture(scope="session")
def demo3d_run(tmp_path_factory):
    """runs.DEMO3D on four of the 3D demo's volumes: the work folder and the snakemake run."""
    from omnitrain.demo import write_demo3d

    write = lambda w: write_demo3d(w / "data", names=runs.DEMO3D_NAMES)  # noqa: E731
    return trained_run(tmp_path_factory, "three_d", runs.DEMO3D, write)
