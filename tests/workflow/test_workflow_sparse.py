"""Sparse training images through snakemake: refused before training, or named when Omnipose gives up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import one, run_snakemake, write_pair

pytestmark = pytest.mark.workflow
pytest.importorskip("cellpose_omni.models")


def colony(shape=(128, 128), size=8) -> np.ndarray:
    lab = np.zeros(shape, np.uint16)
    n = 0
    for y in range(2, shape[0] - size, size + 2):
        for x in range(2, shape[1] - size, size + 2):
            n += 1
            lab[y : y + size, x : x + size] = n
    return lab


def sparse(shape=(400, 400)) -> np.ndarray:
    """Five small cells in one corner of a large empty field."""
    lab = np.zeros(shape, np.uint16)
    for i in range(5):
        lab[20:25, 20 + 7 * i : 25 + 7 * i] = i + 1
    return lab


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("sparse")
    write_pair(work / "data", "dense_a", lab=colony())
    write_pair(work / "data", "dense_b", lab=colony((120, 136)))
    write_pair(work / "data", "sparse", lab=sparse())
    write_pair(work / "test", "held", lab=colony((96, 96)))
    return work


BASE = {
    "dir": "data",
    "test_dir": "test",
    "tyx": [32, 32],
    "n_epochs": 2,
    "training": {"nimg_per_epoch": 16},
    "resources": {"train_threads": 2},
}


def test_a_sparse_image_is_refused_before_training_and_trains_when_packed(work):
    cfg = {**BASE, "packing": {"enabled": False}}
    run = run_snakemake(work, cfg)
    assert run.returncode != 0
    assert "sparse-image" in run.stderr and "sparse_t00.tif" in run.stderr
    assert f"{work / 'data' / 'sparse.tif'}" in run.stderr or "data/sparse.tif" in run.stderr
    assert "packing" in run.stderr and "Traceback" not in run.stderr
    assert not list((work / "results").glob("models/*/model_card.json")), "nothing was trained"
    assert not list((work / "results").glob("trainsets/*/checks/*/validation.tsv"))
    # The same images with packing on: the sparse image's cells are packed densely, and it trains.
    run = run_snakemake(work, {**BASE, "n_epochs": 1}, targets=("train",))
    assert run.returncode == 0, run.stderr[-3000:]
    table = pd.read_csv(one(work, "results/trainsets/*/checks/*/validation.tsv"), sep="\t")
    assert table["sparse_failures"].max() < 1e-3 and table["sparse_crop_chance"].notna().all()


def test_when_omnipose_gives_up_anyway_the_train_job_names_the_image(work):
    """An accepted risk too high for this image lets it through; Omnipose then gives up in training."""
    cfg = {**BASE, "n_epochs": 3, "packing": {"enabled": False}, "validation": {"sparse_crop_risk": 1e9}}
    run = run_snakemake(work, cfg)
    assert run.returncode != 0
    log = run.stderr
    assert "Error in rule train" in log, log[-3000:]
    assert "Omnipose gave up on the training image" in log and "sparse_t00.tif" in log
    assert "data/sparse.tif" in log and "fix: turn packing on" in log
    assert "Traceback" not in log
