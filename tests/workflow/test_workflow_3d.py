"""dim 3 through snakemake: the 3D demo's volumes to a model that Omnipose loads as 3D, a 3D evaluation
table and the registry row; a 2D image, and a 2D model file, refused in a 3D run before anything trains."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import copy_run, one, run_snakemake
from runs import DEMO3D as CONFIG

from omnitrain.demo import make_volume, write_demo3d
from omnitrain.imageio import read_array

pytestmark = pytest.mark.workflow
models = pytest.importorskip("cellpose_omni.models")


def test_volumes_train_a_3d_model_that_omnipose_loads(demo3d_run):
    work, run = demo3d_run
    assert "packing.enabled is ignored with dim: 3" in run.stderr
    card = json.loads(one(work, "results/models/*/model_card.json").read_text())
    assert card["dim"] == 3 and card["tyx"] == [32, 32, 32] and card["flags"]["dim"] == 3
    assert card["model"].endswith("_dim_3_trainset")
    path = str(work / card["model"])  # relative to the folder snakemake ran in
    model = models.CellposeModel(
        gpu=False, pretrained_model=path, nchan=1, nclasses=2, dim=3, omni=True, diam_mean=0
    )
    assert model.dim == 3
    import torch

    saved = torch.load(path, map_location="cpu", weights_only=True)
    loaded = model.net.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)  # its weights, not random ones
    assert saved["output.2.weight"].ndim == 5  # a Conv3d


def test_the_training_set_is_the_volumes_tiles(demo3d_run):
    work, _ = demo3d_run
    prov = pd.read_csv(one(work, "results/trainsets/*/provenance.tsv"), sep="\t")
    split = pd.read_csv(one(work, "results/splits/*/split.tsv"), sep="\t")
    train = sorted(split.loc[split["role"] == "train", "source"])
    assert sorted(prov["source"].unique()) == train
    for source, rows in prov.groupby("source"):
        labels = read_array(work / "data" / f"{source}_masks.tif")
        cover = np.zeros(labels.shape, np.int32)
        for r in rows.itertuples():
            cover[r.src_z0 : r.src_z1, r.src_y0 : r.src_y1, r.src_x0 : r.src_x1] += 1
            tile = read_array(one(work, f"results/trainsets/*/trainset/{r.image}_masks.tif"))
            assert tile.shape == (r.src_z1 - r.src_z0, r.src_y1 - r.src_y0, r.src_x1 - r.src_x0)
        assert np.all(cover == 1), source  # every voxel in exactly one tile
    assert len(prov) > len(train)  # the larger volumes were cut
    stats = json.loads(one(work, "results/trainsets/*/packing_stats.json").read_text())
    assert "bins" not in stats and stats["tiles"] == len(prov)


def test_held_out_volumes_are_segmented_scored_and_registered(demo3d_run):
    work, _ = demo3d_run
    evaluation = one(work, "results/evaluations/*/summary.tsv").parent
    summary = pd.read_csv(evaluation / "summary.tsv", sep="\t")
    assert summary["iou_threshold"].round(2).tolist() == [round(0.5 + 0.05 * i, 2) for i in range(10)]
    per_image = pd.read_csv(evaluation / "per_image.tsv", sep="\t")
    held_out = [p.name.removesuffix("_masks.tif") for p in one(work, "results/heldout/*").glob("*_masks.tif")]
    assert sorted(per_image["image"]) == sorted(held_out) and held_out
    for name in held_out:
        true = read_array(work / "data" / f"{name}_masks.tif")
        pred = tifffile.imread(one(work, f"results/predictions/*/{name}_cp_masks.tif"))
        assert pred.shape == true.shape and pred.ndim == 3
        assert per_image.set_index("image").loc[name, "n_true"] == len(np.unique(true)) - 1
    assert {"aji", "pq"} <= set(per_image.columns)
    assert (evaluation / "overlays.png").stat().st_size > 10_000
    registry = pd.read_csv(work / "results/registry.tsv", sep="\t")
    assert len(registry) == 1
    row = registry.iloc[0]
    assert row["model"].endswith("_dim_3_trainset") and row["test_images"] == len(held_out)
    assert 0.0 <= row["heldout_ap50"] <= 1.0


def test_the_report_of_a_3d_run(demo3d_run, tmp_path):
    work = copy_run(demo3d_run[0], tmp_path / "work")
    run = run_snakemake(work, CONFIG, "--report", "report.html")
    assert run.returncode == 0, run.stderr[-2000:]
    html = (work / "report.html").read_text(errors="replace")
    assert "overlays.png" in html and "preview.png" in html and "_dim_3_" in html


def test_a_3d_version_segments_new_volumes_and_refuses_a_2d_image(demo3d_run, tmp_path):
    work = copy_run(demo3d_run[0], tmp_path / "work")  # segmenting adds to the run: on a copy
    image, _ = make_volume("cluster_mixed_01")
    (work / "new3d").mkdir()
    tifffile.imwrite(work / "new3d/volume.tif", image)
    run = run_snakemake(work, {**CONFIG, "segment_dir": "new3d"}, "segment")
    assert run.returncode == 0, run.stderr[-4000:]
    folder = (work / "results/segmentations/latest").resolve()
    masks = tifffile.imread(folder / "masks/volume_cp_masks.tif")
    assert masks.shape == image.shape  # the volume segmented whole
    assert tifffile.imread(folder / "drafts/volume_masks.tif").shape == image.shape
    outlines = iio.imread(folder / "masks/volume_outlines.png")
    assert outlines.shape[0] == image.shape[1] and outlines.shape[1] > 2 * image.shape[2]  # planes
    tifffile.imwrite(work / "new3d/flat.tif", image[10])
    run = run_snakemake(work, {**CONFIG, "segment_dir": "new3d"}, "segment")
    assert run.returncode != 0 and "new3d/flat.tif: image has 2 axes" in run.stderr
    assert "Traceback" not in run.stderr.split("These images cannot be segmented")[-1]


def test_a_2d_image_or_a_2d_model_is_refused_in_a_3d_run(tmp_path):
    write_demo3d(tmp_path / "data", names=["cluster_dense_03", "sparse3d_01"])
    flat = read_array(tmp_path / "data" / "sparse3d_01_masks.tif")[16]
    tifffile.imwrite(tmp_path / "data" / "flat.tif", (flat > 0).astype(np.uint16) * 200)
    tifffile.imwrite(tmp_path / "data" / "flat_masks.tif", flat)
    run = run_snakemake(tmp_path, CONFIG)
    assert run.returncode != 0
    assert "flat_masks.tif" in run.stderr and "dim is 3" in run.stderr and "dim: 2" in run.stderr
    assert not (tmp_path / "results/models").exists()

    for suffix in (".tif", "_masks.tif"):
        (tmp_path / "data" / f"flat{suffix}").unlink()
    two_d = tmp_path / "two_d_model"
    models.CellposeModel(gpu=False, nchan=1, nclasses=2, dim=2, omni=True).net.save_model(str(two_d))
    run = run_snakemake(tmp_path, {**CONFIG, "pretrained_model": str(two_d)})
    assert run.returncode != 0
    assert "dim = 2 in the model but dim: 3 in the config" in run.stderr
    assert "Training cannot start" not in run.stderr  # refused when the workflow starts, not by the train job
    assert not (tmp_path / "results/models").exists()
