"""Snakemake end to end through preprocessing: real data, per-image reruns, byte-identical outputs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import DSB, dry_run_jobs, needs, one, run_snakemake

from omnitrain.demo import write_demo
from omnitrain.tiling import tile_edges

pytestmark = pytest.mark.workflow

# Rule names (snakemake --until): their outputs live under version ids known only to the workflow.
# validate_inputs runs as split's input (an --until list must not name a rule and one of its descendants:
# Snakemake then stops with "Out of jobs ready to be started").
PREPROCESSED = ["split", "validate_training_set", "preview", "heldout_set"]


def digests(root):
    """sha256 of every output file, logs and Snakemake's own bookkeeping excepted."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not {"logs", "benchmarks"} & set(p.parts) and not p.name.startswith(".")
    }


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    write_demo(work / "demo")
    run = run_snakemake(work, {"dir": "demo"}, targets=PREPROCESSED)
    assert run.returncode == 0, run.stderr[-3000:]
    return work


def test_demo_preprocessing_outputs(demo_run):
    split = pd.read_csv(one(demo_run, "results/splits/*/split.tsv"), sep="\t")
    train = sorted(split[split.role == "train"].source)
    test = sorted(split[split.role == "test"].source)
    assert train and test and not set(train) & set(test)
    trainset_dir = one(demo_run, "results/trainsets/*")
    stats = json.loads((trainset_dir / "packing_stats.json").read_text())
    assert stats["packed_fg"] >= 2 * stats["raw_fg"]
    assert stats["cells"] == stats["tile_cells"]
    trainset = sorted(p.name for p in (trainset_dir / "trainset").glob("[!.]*"))
    assert trainset[:2] == ["packed_000.tif", "packed_000_masks.tif"]
    prov = pd.read_csv(trainset_dir / "provenance.tsv", sep="\t")
    assert set(prov.source) == set(train), "every training source is packed, no held-out one"
    # Large demo images were tiled; held-out images were not.
    for sid in train + test:
        tiles = one(demo_run, f"results/images/{sid}/*") / "tiles" / "tiles.json"
        assert tiles.is_file() == (sid in train)
    if "colony_large_02" in train:
        tiles = json.loads(
            (one(demo_run, "results/images/colony_large_02/*") / "tiles/tiles.json").read_text()
        )
        assert len(tiles["tiles"]) == 6
    held = sorted(p.name for p in one(demo_run, "results/heldout/*").glob("*_masks.tif"))
    assert held == [f"{s}_masks.tif" for s in test]
    checks = pd.read_csv(one(trainset_dir, "checks/*/validation.tsv"), sep="\t")
    assert len(checks) >= 1 and "sparse_crop_chance" in checks.columns
    assert (trainset_dir / "preview.png").stat().st_size > 10_000


def test_same_inputs_give_byte_identical_outputs(demo_run, tmp_path):
    shutil.copytree(demo_run / "demo", tmp_path / "demo")
    run = run_snakemake(tmp_path, {"dir": "demo"}, targets=PREPROCESSED)
    assert run.returncode == 0, run.stderr[-3000:]
    first, second = digests(demo_run / "results"), digests(tmp_path / "results")
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def test_editing_one_mask_redoes_only_that_image_and_the_aggregates(demo_run):
    split = pd.read_csv(one(demo_run, "results/splits/*/split.tsv"), sep="\t")
    sid = sorted(split[split.role == "train"].source)[0]
    assert dry_run_jobs(demo_run, {"dir": "demo"}, *PREPROCESSED) == {}
    path = demo_run / "demo" / f"{sid}_masks.tif"
    lab = tifffile.imread(path)
    lab[lab == lab.max()] = 0  # delete one cell
    tifffile.imwrite(path, lab, compression="zlib")
    jobs = dry_run_jobs(demo_run, {"dir": "demo"}, *PREPROCESSED)
    assert jobs == {
        "validate_inputs": 1,
        "split": 1,  # it waits for the new verdict on the inputs (a new, tiny table)
        "prepare_images": 1,  # the batch holding that image
        "pack": 1,
        "preview": 1,
        "validate_training_set": 1,
    }
    results = demo_run / "results"
    before = {  # (the run's hold on the folder, results/.pipeline.lock, is rewritten by each run)
        p: p.stat().st_mtime_ns
        for p in results.rglob("*")
        if p.is_file() and "logs" not in p.parts and not p.name.endswith(".lock")
    }
    run = run_snakemake(demo_run, {"dir": "demo"}, targets=PREPROCESSED)
    assert run.returncode == 0, run.stderr[-3000:]
    (table,) = [p for p in (results / "image_batches").glob("*.tsv") if p not in before]
    batch = pd.read_csv(table, sep="\t", dtype=str)
    assert len(batch) > 1 and sid in set(batch.source)
    # The batch prepared that one image again, into a new folder; it reused the others' folders.
    log = (results / "logs/prepare_images" / f"{table.stem}.log").read_text()
    assert re.findall(r"(\S+): made ", log) == [sid] and f"1 prepared, {len(batch) - 1} reused" in log
    new = {p for p in (results / "images").rglob("*") if p.is_file() and p not in before}
    assert {p.relative_to(results / "images").parts[0] for p in new} == {sid}
    folder = results / "images" / sid / batch.set_index("source").version[sid]
    umask = os.umask(0)
    os.umask(umask)
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask, "made with the usual permissions, not private"
    # Nothing of the earlier version was rewritten: batch tables, training and held-out sets included.
    assert [p for p, t in before.items() if p.stat().st_mtime_ns != t] == []


@needs(DSB)
def test_dsb_goes_through_channel_selection_tiling_and_validation(tmp_path):
    run = run_snakemake(
        tmp_path,
        # every image through tiling: none held out, none set aside as a validation image
        {"dir": str(DSB), "split": {"test_fraction": 0.0, "min_test": 0}, "monitor": {"every": 0}},
        targets=PREPROCESSED,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    colour_dir = one(tmp_path, "results/images/dsb_color_610f32e2d9d2/*")
    colour = json.loads((colour_dir / "dsb_color_610f32e2d9d2.json").read_text())
    assert colour["input_shape"][-1] == 3 and colour["channel_axis"] == 2 and colour["shape"][0] == 1
    assert tifffile.imread(colour_dir / "dsb_color_610f32e2d9d2.tif").ndim == 2
    manifest = pd.read_csv(DSB / "manifest.csv")
    counts = {}
    for row in manifest.itertuples():
        name = row.file[: -len(".tif")]
        tiles = json.loads((one(tmp_path, f"results/images/{name}/*") / "tiles/tiles.json").read_text())[
            "tiles"
        ]
        counts[(row.height, row.width)] = len(tiles)
        expected = (len(tile_edges(row.height, 512)) - 1) * (len(tile_edges(row.width, 512)) - 1)
        assert len(tiles) == expected, (name, row.height, row.width)
        assert all(max(t["shape"]) <= 640 for t in tiles)
    assert counts[(1024, 1024)] == 4 and counts[(603, 1272)] == 3 and counts[(256, 256)] == 1
    trainset_dir = one(tmp_path, "results/trainsets/*")
    stats = json.loads((trainset_dir / "packing_stats.json").read_text())
    assert stats["sources"] == 27 and stats["cells"] == stats["tile_cells"]
    summary = one(trainset_dir, "checks/*/validation_summary.txt").read_text()
    assert "0 error(s)" in summary
    for mask in (trainset_dir / "trainset").glob("*_masks.tif"):
        assert tifffile.imread(mask).dtype in (np.uint16, np.uint32)


def test_packing_off_trains_on_the_tiles(tmp_path):
    write_demo(tmp_path / "demo", names=["colony_large_02", "sparse_01", "colony_dense_02"])
    cfg = {"dir": "demo", "packing": {"enabled": False}, "split": {"test_fraction": 0.0, "min_test": 0}}
    run = run_snakemake(tmp_path, cfg, targets=["validate_training_set"])
    assert run.returncode == 0, run.stderr[-3000:]
    kept, n_tiles = [], 0
    for source in ("colony_large_02", "sparse_01", "colony_dense_02"):
        tiles = json.loads((one(tmp_path, f"results/images/{source}/*") / "tiles/tiles.json").read_text())[
            "tiles"
        ]
        kept += [t["name"] for t in tiles if t["kept"]]
        n_tiles += len(tiles)
        assert all(t["kept"] == (not t["empty"]) for t in tiles)  # empty tiles dropped, the rest kept
    assert n_tiles == 6 + 1 + 1
    trainset_dir = one(tmp_path, "results/trainsets/*")
    trainset = sorted(p.name[: -len("_masks.tif")] for p in (trainset_dir / "trainset").glob("*_masks.tif"))
    assert trainset == sorted(kept)
    prov = pd.read_csv(trainset_dir / "provenance.tsv", sep="\t")
    assert sorted(prov["image"]) == sorted(kept)
