"""Training through snakemake on CPU: the model Omnipose loads, its card, the size model, fine-tuning."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
from conftest import dry_run_jobs, run_snakemake

from omnitrain import sizemodel
from omnitrain.demo import write_demo
from omnitrain.training import model_name

pytestmark = pytest.mark.workflow
models = pytest.importorskip("cellpose_omni.models")

MODEL = "results/model/models/" + model_name(1, 2, 2, "trainset")
CONFIG = {
    "dir": "demo",
    "n_epochs": 3,
    "learning_rate": 0.1,
    "RAdam": True,
    "save_every": 2,
    "train_size": True,
    "size_model": {"n_epochs": 3},
    "resources": {"train_threads": 2},
}
CARD_FIELDS = {
    "nchan", "nclasses", "dim", "diam_mean", "tyx", "flags", "training_set", "device", "versions",
    "wall_seconds", "final_loss", "model_sha256", "seed", "epochs", "checkpoints",
}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("train")
    write_demo(work / "demo", names=["colony_dense_02", "colony_dense_03", "colony_mixed_01", "sparse_02"])
    run = run_snakemake(work, CONFIG)
    assert run.returncode == 0, run.stderr[-4000:]
    return work


def test_model_loads_in_omnipose_and_segments(trained):
    card = json.loads((trained / "results/model/model_card.json").read_text())
    assert set(card) >= CARD_FIELDS
    assert card["flags"]["n_epochs"] == 3 and card["epochs"] == 3 and card["device"].startswith("cpu")
    assert card["training_set"]["images"] >= 1 and len(card["training_set"]["files"]) >= 2
    assert card["versions"]["omnipose"] == "1.1.4" and np.isfinite(card["final_loss"])
    # save_every 2 over 3 epochs: checkpoints of epochs 0..2 (the last 9 are always kept) beside the model
    assert f"{MODEL.rsplit('/', 1)[1]}_epoch_2" in card["checkpoints"]
    model = models.CellposeModel(
        gpu=False, pretrained_model=str(trained / MODEL), nchan=1, nclasses=2, dim=2, omni=True,
        diam_mean=card["diam_mean"],
    )  # fmt: skip
    image = tifffile.imread(next((trained / "results/trainset").glob("packed_000.tif")))
    masks = model.eval(image, channels=None, omni=True, rescale=None, diameter=None, mask_threshold=0.0,
                       flow_threshold=0.4)[0]  # fmt: skip
    assert masks.max() > 0
    losses = pd.read_csv(trained / "results/model/losses.tsv", sep="\t")
    assert list(losses["epoch"]) == [0, 1, 2] and (losses["eta_seconds"] >= 0).all()
    assert (trained / "results/model/loss_curve.png").stat().st_size > 5000
    log = (trained / "results/logs/train.log").read_text()
    assert "device: cpu" in log and "epoch 3/3" in log and "ETA" in log


def test_size_model_predicts_training_diameters(trained):
    params = sizemodel.load(trained / f"{MODEL}_size.npy")
    assert set(params) == {"A", "smean", "diam_mean", "ymean"} and params["A"].shape == (256,)
    card = json.loads((trained / "results/model/model_card.json").read_text())
    model = models.CellposeModel(gpu=False, pretrained_model=str(trained / MODEL), nchan=1, nclasses=2, dim=2,
                                 omni=True, diam_mean=card["diam_mean"])  # fmt: skip
    for mask in sorted((trained / "results/trainset").glob("*_masks.tif")):
        image = tifffile.imread(str(mask).replace("_masks", ""))
        true = sizemodel.diameters([tifffile.imread(mask)])[0]
        predicted = sizemodel.predict(params, sizemodel.style_of(model, image, None))
        assert abs(predicted - true) / true < 0.25, (mask.name, true, predicted)
    table = pd.read_csv(trained / "results/model/size_heldout.tsv", sep="\t")
    assert len(table) >= 1 and (table["true_diameter"] > 0).all()


def test_heldout_evaluation_tables_pictures_and_report(trained):
    ev = trained / "results/evaluation"
    summary = pd.read_csv(ev / "summary.tsv", sep="\t")
    assert list(summary["iou_threshold"]) == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    assert not summary.isna().any().any()
    heldout = sorted(p.name[: -len("_masks.tif")] for p in (trained / "results/heldout").glob("*_masks.tif"))
    per_image = pd.read_csv(ev / "per_image.tsv", sep="\t")
    assert sorted(per_image["image"]) == heldout and len(heldout) >= 1
    for name in heldout:
        pred = tifffile.imread(ev / "predictions" / f"{name}_cp_masks.tif")
        true = tifffile.imread(trained / "results/heldout" / f"{name}_masks.tif")
        assert pred.shape == true.shape
    assert (summary["tp"] + summary["fn"] == per_image["n_true"].sum()).all()
    scores = json.loads((ev / "scores.json").read_text())
    assert {"mean_ap", "ap50", "aji", "pq", "images"} <= set(scores) and scores["images"] == len(heldout)
    for picture in ("ap_curve.png", "overlays.png"):
        assert (ev / picture).stat().st_size > 5000
    run = run_snakemake(trained, CONFIG, "--report", "report.html")
    assert run.returncode == 0, run.stderr[-3000:]
    html = (trained / "report.html").read_text(errors="replace")
    for name in ("ap_curve.png", "overlays.png", "summary.tsv", "loss_curve.png", "preview.png"):
        assert name in html, name


def test_fine_tuning_starts_from_the_pretrained_weights(trained, tmp_path):
    pretrained = tmp_path / "pretrained_model"
    shutil.copyfile(trained / MODEL, pretrained)
    # SGD's learning rate is 0 in epoch 0: one epoch leaves the loaded weights exactly as they were
    # (only batch-norm running statistics move); from random weights nothing would match.
    cfg = {**CONFIG, "pretrained_model": str(pretrained), "n_epochs": 1, "RAdam": False, "train_size": False}
    jobs = {"train": 1, "predict_heldout": 1, "evaluate": 1, "all": 1}
    assert dry_run_jobs(trained, cfg) == jobs, "preprocessing is reused"
    run = run_snakemake(trained, cfg)
    assert run.returncode == 0, run.stderr[-4000:]
    before = torch.load(pretrained, map_location="cpu", weights_only=True)
    after = torch.load(trained / MODEL, map_location="cpu", weights_only=True)
    weights = [k for k in before if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert len(weights) > 100 and all(torch.equal(before[k], after[k]) for k in weights)
    card = json.loads((trained / "results/model/model_card.json").read_text())
    assert card["pretrained_model"]["path"] == str(pretrained)
    assert "fine-tuning" in (trained / "results/logs/train.log").read_text()


def test_pretrained_model_with_wrong_nclasses_is_refused_before_training(trained, tmp_path):
    pretrained = tmp_path / "pretrained_model"
    shutil.copyfile(trained / MODEL, pretrained)
    run = run_snakemake(trained, {**CONFIG, "pretrained_model": str(pretrained), "nclasses": 3})
    assert run.returncode != 0
    assert "nclasses = 2 in the model but nclasses: 3 in the config" in run.stderr
    assert "epoch 1/" not in (trained / "results/logs/train.log").read_text()
