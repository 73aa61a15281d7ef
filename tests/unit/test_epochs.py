"""The per-epoch record from hooks on Omnipose's training loop (omnitrain/epochs.py), on a stand-in loop that
calls what Omnipose 1.1.4's _train_net calls: _train_step per batch, net.save_model at the epochs it saves."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pandas as pd
import pytest

from omnitrain.epochs import EpochRecorder

LOG = logging.getLogger("test.epochs")


class Loop:
    """model.train's skeleton: ``losses[epoch]`` are the batches' losses; saves every ``save_every`` epochs
    and at the last one, as Omnipose does (in the last 10 epochs too, twice: the model and _epoch_<n>)."""

    def __init__(self, losses, save_every=2):
        self.losses, self.save_every, self.events = losses, save_every, []
        self.learning_rate = [0.1 * (e + 1) for e in range(len(losses))]
        self.net = SimpleNamespace(save_model=lambda path: self.events.append(("save", self.epoch)))

    def _train_step(self, x, lbl):
        return self.losses[self.epoch][x]

    def train(self):
        for epoch, batches in enumerate(self.losses):
            self.epoch = epoch
            for b in range(len(batches)):
                self._train_step(b, None)
            if epoch % self.save_every == 0 or epoch == len(self.losses) - 1:
                self.net.save_model("model")
                self.net.save_model("model_epoch")


def test_each_epoch_is_recorded_once_with_the_mean_of_its_batches_before_it_is_saved(tmp_path):
    loop = Loop([[4.0, 2.0], [3.0], [1.0, 2.0, 3.0], [0.5, 0.5]])

    def scored(epoch, loss):
        loop.events.append(("scored", epoch))
        return {"val_loss": loss / 2, "ap50": 0.5, "mean_ap": 0.25} if epoch % 2 else None

    with EpochRecorder(loop, 4, tmp_path / "losses.tsv", LOG, on_epoch=scored) as recorder:
        loop.train()
    assert [r["epoch"] for r in recorder.rows] == [0, 1, 2, 3]
    assert [r["loss"] for r in recorder.rows] == [3.0, 3.0, 2.0, 0.5]
    assert [r["learning_rate"] for r in recorder.rows] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    # scored before the epoch's checkpoint is written, once per epoch
    assert [e for e in loop.events if e[1] == 0] == [("scored", 0), ("save", 0), ("save", 0)]
    assert [e for e in loop.events if e[0] == "scored"] == [("scored", e) for e in range(4)]
    table = pd.read_csv(tmp_path / "losses.tsv", sep="\t")
    assert list(table.columns[-3:]) == ["val_loss", "val_ap50", "val_mean_ap"]
    assert table["val_ap50"].isna().tolist() == [True, False, True, False]
    assert table["val_loss"][1] == 1.5
    # the hooks are gone afterwards
    assert loop._train_step.__func__ is Loop._train_step and loop.net.save_model.__name__ == "<lambda>"


def test_an_epoch_cut_short_is_not_recorded_and_an_error_of_a_scoring_stops_the_loop(tmp_path):
    loop = Loop([[1.0], [2.0], [3.0]], save_every=10)
    step = loop._train_step

    def stop_in_epoch_2(x, lbl):
        if loop.epoch == 2:
            raise KeyboardInterrupt("stopped")
        return step(x, lbl)

    loop._train_step = stop_in_epoch_2
    with EpochRecorder(loop, 3, tmp_path / "a.tsv", LOG) as recorder, pytest.raises(KeyboardInterrupt):
        loop.train()
    assert [r["epoch"] for r in recorder.rows] == [0, 1]

    def broken(epoch, loss):
        raise ValueError("scoring failed")

    loop = Loop([[1.0], [2.0]])
    with (
        EpochRecorder(loop, 2, tmp_path / "b.tsv", LOG, on_epoch=broken) as recorder,
        pytest.raises(ValueError),
    ):
        loop.train()
    assert loop.events == [], "no checkpoint claims an epoch whose scoring failed"
    assert recorder.finishing == 0, "the epoch an error message names"
