"""The live view in TensorBoard (omnitrain/board.py), read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tensorboard_events

from omnitrain.board import OVERLAY, SCALARS, VALIDATION, TrainingBoard, run_folder

pytest.importorskip("tensorboard")


def row(epoch, loss):
    return {"epoch": epoch, "loss": loss, "learning_rate": 0.1, "seconds": 0.5 + epoch}


def test_the_run_is_named_by_experiment_and_fold_below_the_model_folder(tmp_path):
    model = tmp_path / "models/0123456789ab"
    assert run_folder(model, {"experiment": "base", "fold": None}) == model / "tensorboard/base"
    assert run_folder(model, {"experiment": "raw", "fold": 2}) == model / "tensorboard/raw-fold2"


def test_epochs_scores_and_overlays_at_their_steps(tmp_path):
    overlay = np.zeros((20, 30, 3), np.uint8)
    with TrainingBoard(tmp_path) as board:
        for epoch in range(4):
            monitored = epoch % 2 == 1
            scores = {"val_loss": 1.0 / (epoch + 1), "ap50": 0.2 * epoch, "mean_ap": 0.1 * epoch}
            shown = (scores, overlay) if monitored else (None, None)
            board.epoch(row(epoch, 4.0 - epoch), *shown)
    events = tensorboard_events(tmp_path)
    assert set(events.Tags()["scalars"]) == {*SCALARS.values(), *VALIDATION.values()}
    losses = events.Scalars(SCALARS["loss"])
    assert [(e.step, e.value) for e in losses] == [(0, 4.0), (1, 3.0), (2, 2.0), (3, 1.0)]
    assert [e.value for e in events.Scalars(SCALARS["seconds"])] == [0.5, 1.5, 2.5, 3.5]
    assert [(e.step, round(e.value, 6)) for e in events.Scalars(VALIDATION["ap50"])] == [(1, 0.2), (3, 0.6)]
    images = events.Images(OVERLAY)
    assert [i.step for i in images] == [1, 3] and (images[0].width, images[0].height) == (30, 20)


def test_a_resumed_training_continues_its_steps_without_repeating_any(tmp_path):
    """The killed part wrote epochs 0-4, its checkpoint holds 0-2: the resume writes 3-5, and TensorBoard
    shows each step once, epochs 3 and 4 as the resumed part trained them."""
    with TrainingBoard(tmp_path) as board:
        for epoch in range(5):
            board.epoch(row(epoch, 10.0 + epoch))
    with TrainingBoard(tmp_path, start=3) as board:
        for epoch in range(6):  # a resume replays 0-2 (skipped) before training 3-5
            board.epoch(row(epoch, 20.0 + epoch))
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2, "the resumed part appends a file"
    steps = [(e.step, e.value) for e in tensorboard_events(tmp_path).Scalars(SCALARS["loss"])]
    assert steps == [(0, 10.0), (1, 11.0), (2, 12.0), (3, 23.0), (4, 24.0), (5, 25.0)]
