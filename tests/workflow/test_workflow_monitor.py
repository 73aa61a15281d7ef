"""Monitoring through snakemake (CPU, tiny crops): validation images set aside at source level, scored
epochs in the log, the table and the picture, the best model sent to evaluation, early stopping."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import assert_logged, copy_run, dry_run_jobs, run_snakemake, tensorboard_events
from omnipose_main import OMNIPOSE_HISTORY, OMNIPOSE_MODEL, OMNIPOSE_RUN
from runs import MONITORED as CONFIG
from runs import MONITORED_NAMES as NAMES

from omnitrain.demo import write_demo
from omnitrain.training import model_name

pytestmark = pytest.mark.workflow
models = pytest.importorskip("cellpose_omni.models")

NAME = model_name(1, 2, 2, "trainset")


def latest(work):
    return (work / "results/latest").resolve()


def test_validation_images_are_neither_trained_on_nor_held_out(monitored_run):
    v = latest(monitored_run)
    split = pd.read_csv(v / "split/split.tsv", sep="\t")
    validation = set(split[split.role == "validation"].source)
    assert len(validation) == 1 and set(split.role) == {"train", "test", "validation"}
    provenance = pd.read_csv(v / "trainset/provenance.tsv", sep="\t")
    assert validation.isdisjoint(set(provenance["source"]))
    assert {p.name for p in (v / "monitor_set").glob("[!.]*")} == {
        f"{s}{x}" for s in validation for x in (".tif", "_masks.tif")
    }
    assert not any(p.name.startswith(tuple(validation)) for p in (v / "heldout").iterdir())


def test_scored_epochs_are_in_the_log_the_table_the_picture_and_the_card(monitored_run):
    v = latest(monitored_run)
    card = json.loads((v / "model/model_card.json").read_text())
    log = (monitored_run / f"results/logs/train/{v.joinpath('model').resolve().name}.log").read_text()
    assert "validation at epoch 2: loss" in log and "validation at epoch 4: loss" in log
    losses = pd.read_csv(v / "model/losses.tsv", sep="\t")
    scored = losses.dropna(subset=["val_loss"])
    assert list(scored["epoch"]) == [1, 3] and scored[["val_ap50", "val_mean_ap"]].notna().all().all()
    assert (v / "model/loss_curve.png").stat().st_size > 10_000
    mon = card["monitoring"]
    assert mon["on"] and [h["epoch"] for h in mon["history"]] == [1, 3] and mon["metric"] == "ap50"
    record = json.loads((v / "record.json").read_text())
    selected = record["model"]["selected"]
    assert selected["select"] == "best" and selected["epoch"] == mon["best_epoch"]
    assert selected["file"].endswith(f"{NAME}_best") and card["best_file"] == selected["file"]
    assert record["model"]["monitoring"]["best_epoch"] == mon["best_epoch"]


def test_tensorboard_shows_every_epoch_and_the_scorings_at_their_steps(monitored_run):
    v = latest(monitored_run)
    losses = pd.read_csv(v / "model/losses.tsv", sep="\t")
    events = tensorboard_events(v / "model/tensorboard")  # in the model version's folder
    assert_logged(events, "train/loss", losses.epoch, losses.loss)
    assert_logged(events, "train/learning_rate", losses.epoch, losses.learning_rate)
    assert_logged(
        events, "train/seconds_per_epoch", losses.epoch, losses.seconds, atol=1e-3
    )  # 3 decimals kept
    scored = losses.dropna(subset=["val_loss"])
    assert_logged(events, "validation/loss", scored.epoch, scored.val_loss)
    assert_logged(events, "validation/AP@0.5", scored.epoch, scored.val_ap50)
    assert_logged(events, "validation/mean_AP", scored.epoch, scored.val_mean_ap)
    assert [i.step for i in events.Images("validation/overlay")] == [1, 3]
    off = {**CONFIG, "monitor": {**CONFIG["monitor"], "tensorboard": False}}
    assert dry_run_jobs(monitored_run, off) == {}, "the live view is no part of any version: nothing reruns"


def test_omnipose_2s_run_record_and_loss_history_beside_the_model(monitored_run):
    v = latest(monitored_run)
    run = json.loads((v / f"model/{NAME}_run.json").read_text())
    assert list(run) == OMNIPOSE_RUN and run["status"] == "completed" and run["name"] == NAME
    assert list(run["model"]) == OMNIPOSE_MODEL and run["model"]["architecture"] == "CPnet"
    assert run["hyperparameters"]["n_epochs"] == CONFIG["n_epochs"] and run["dataset"]["n_train"] > 0
    history = pd.DataFrame(json.loads((v / f"model/{NAME}_loss_history.json").read_text()))
    assert list(history.columns) == OMNIPOSE_HISTORY
    losses = pd.read_csv(v / "model/losses.tsv", sep="\t")
    per_epoch = history.groupby("epoch")["train_loss"].mean()
    assert list(per_epoch.index) == list(losses.epoch), "every epoch, once"
    np.testing.assert_allclose(per_epoch.values, losses.loss.values, atol=1e-5)  # the table keeps 6 decimals
    assert run["summary"]["total_epochs_completed"] == len(losses)
    assert run["summary"]["final_loss_raw"] == history.train_loss.iloc[-1]


def test_best_model_loads_equals_its_epoch_and_goes_to_evaluation(monitored_run):
    v = latest(monitored_run)
    record = json.loads((v / "record.json").read_text())
    best = v / "model/models" / f"{NAME}_best"
    models.CellposeModel(gpu=False, pretrained_model=str(best), nchan=1, nclasses=2, dim=2, omni=True)
    epoch = record["model"]["selected"]["epoch"] - 1  # Omnipose numbers its copies from 0
    copy = torch.load(v / "model/models" / f"{NAME}_epoch_{epoch}", map_location="cpu", weights_only=True)
    weights = torch.load(best, map_location="cpu", weights_only=True)
    assert all(torch.equal(weights[k], copy[k]) for k in copy)
    predict_log = next((monitored_run / "results/logs/predict_heldout").glob("*.log")).read_text()
    assert f"{NAME}_best" in predict_log, "select: best sends <model>_best to the held-out evaluation"


# tests/training/test_monitor.py checks early stopping in CI; this is the same through snakemake
@pytest.mark.slow
def test_early_stopping_after_patience_scorings_without_improvement(monitored_run, tmp_path):
    monitored_run = copy_run(monitored_run, tmp_path / "work")  # trains again: on a copy
    # A learning rate of 1e-9 (0 is refused): the weights barely move, AP@0.5 never beats the first scoring.
    cfg = {**CONFIG, "learning_rate": 1e-9, "RAdam": False, "n_epochs": 6}
    cfg["monitor"] = {"every": 1, "patience": 2}
    run = run_snakemake(monitored_run, cfg, targets=["train"])
    assert run.returncode == 0, run.stderr[-4000:]
    card = next(
        json.loads(p.read_text())
        for p in (monitored_run / "results/models").glob("*/model_card.json")
        if json.loads(p.read_text())["settings"]["monitor"].get("patience") == 2
    )
    assert card["monitoring"]["stopped_early_at_epoch"] == 3 and card["epochs"] == 3
    model = str(monitored_run / card["model"])
    models.CellposeModel(gpu=False, pretrained_model=model, nchan=1, nclasses=2, dim=2, omni=True)


def test_too_few_images_turn_monitoring_off(tmp_path):
    write_demo(tmp_path / "demo", names=NAMES)
    assert "monitor_set" not in dry_run_jobs(tmp_path, {**CONFIG, "split": {}})  # min_train 8: none set aside
