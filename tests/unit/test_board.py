"""The live view in TensorBoard (omnitrain/board.py), read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import tensorboard_events

from omnitrain.board import OVERLAY, SCALARS, VALIDATION, TrainingBoard, overlay, run_folder

pytest.importorskip("tensorboard")


def row(epoch, loss):
    return {"epoch": epoch, "loss": loss, "learning_rate": 0.1, "seconds": 0.5 + epoch}


def test_the_run_is_in_the_model_version_folder():
    assert run_folder("results/models/0123456789ab") == Path("results/models/0123456789ab/tensorboard")


@pytest.mark.parametrize("shape", [(20, 30), (5, 20, 30)], ids=["2D", "3D"])
def test_the_overlay_is_an_rgb_picture_of_the_image_or_the_middle_plane(shape):
    masks = np.zeros(shape, np.int32)
    masks[..., 2:8, 3:9] = 1
    picture = overlay(np.random.default_rng(0).random(shape), masks)
    assert picture.shape == (20, 30, 3) and picture.dtype == np.uint8
    assert not np.array_equal(picture[4, 5], picture[15, 20]), "the object is coloured"


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


def test_a_training_that_starts_over_hides_what_a_killed_part_wrote(tmp_path):
    """Killed before its first checkpoint: the next part starts at epoch 0, and only its epochs show."""
    with TrainingBoard(tmp_path) as board:
        for epoch in range(3):
            board.epoch(row(epoch, 10.0 + epoch))
    with TrainingBoard(tmp_path) as board:
        for epoch in range(2):
            board.epoch(row(epoch, 20.0 + epoch))
    steps = [(e.step, e.value) for e in tensorboard_events(tmp_path).Scalars(SCALARS["loss"])]
    assert steps == [(0, 20.0), (1, 21.0)]
