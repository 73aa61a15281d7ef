"""Omnipose 2's run records (omnitrain/run_record.py): the keys Omnipose main's own code writes, the summary
it computes, and the life of a record (running after the first epoch, completed or failed at the end).

The expected keys are Omnipose main's own (tests/omnipose_main.py names the file, commit and lines)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from omnipose_main import (
    OMNIPOSE_DATASET_ARRAYS,
    OMNIPOSE_HARDWARE,
    OMNIPOSE_HISTORY,
    OMNIPOSE_MODEL,
    OMNIPOSE_PROVENANCE,
    OMNIPOSE_RUN,
    OMNIPOSE_SUMMARY,
    OMNIPOSE_TRAIN_NET,
)

from omnitrain.config import check_config
from omnitrain.run_record import (
    RunRecord,
    dataset_info,
    hardware,
    hyperparameters,
    model_info,
    provenance,
    record_paths,
    summary,
)
from omnitrain.training import train_kwargs

torch = pytest.importorskip("torch")


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.nbase, self.residual_on, self.conv = [1, 32, 64], True, torch.nn.Conv2d(1, 2, 3)


def test_the_file_names_are_omnipose_2s(tmp_path):
    assert record_paths(tmp_path, "m") == (tmp_path / "m_run.json", tmp_path / "m_loss_history.json")


def test_the_sections_have_omnipose_2s_keys_in_its_order(tmp_path):
    assert list(hardware("cpu")) == OMNIPOSE_HARDWARE
    info = model_info(Net())
    assert list(info) == OMNIPOSE_MODEL and info["n_parameters"] == 1 * 2 * 9 + 2
    assert info["architecture"] == "Net" and info["nbase"] == [1, 32, 64] and not info["data_parallel"]
    assert model_info(torch.nn.DataParallel(Net()))["data_parallel"] is True
    images = [torch.zeros(1, 8, 9).numpy()] * 3
    assert list(dataset_info(images, [i[0] for i in images], tmp_path)) == OMNIPOSE_DATASET_ARRAYS
    assert list(provenance(tmp_path)) == OMNIPOSE_PROVENANCE
    cfg = check_config({"dir": str(tmp_path), "tyx": [64, 64]})
    model = SimpleNamespace(omni=True, nchan=1, nclasses=2, dim=2, diam_mean=0.0, loss=torch.nn.MSELoss())
    hp = hyperparameters(model, train_kwargs(cfg, str(tmp_path), "m", 4), True, False)
    model_keys = [f"model.{k}" for k in ("omni", "nchan", "nclasses", "dim", "diam_mean")]
    assert list(hp) == [*OMNIPOSE_TRAIN_NET, *model_keys, "loss_modules", "torch_seed"]
    assert hp["tyx"] == [64, 64] and hp["symmetry_weight"] == 0.0 and hp["tensorboard"] is True
    assert hp["loss_modules"] == ["loss"] and hp["SGD"] is (not cfg["RAdam"])
    assert hp["do_rescale"] is (cfg["diameter"] != 0) and hp["n_epochs"] == cfg["n_epochs"]


def test_the_summary_is_omnipose_2s():
    history = {"epoch": [0, 0, 1, 1, 2, 2], "train_loss": [5, 4, 3, 2.5, 2, 2.2], "raw_losses": [None] * 6}
    got = summary(history)
    assert list(got) == OMNIPOSE_SUMMARY
    assert got == {
        "final_loss_raw": 2.2, "min_loss_raw": 2.0, "min_loss_raw_epoch": 2, "total_batches": 6,
        "total_epochs_completed": 3, "n_loss_components": 0,
    }  # fmt: skip
    assert list(summary({"epoch": [], "train_loss": [], "raw_losses": []})) == OMNIPOSE_SUMMARY[:-1]


def test_a_record_runs_from_the_first_epoch_and_is_completed_at_the_end(tmp_path):
    described = {k: {} for k in ("hyperparameters", "model", "dataset", "hardware", "provenance")}
    record = RunRecord(tmp_path, "m", lambda: described, save_every=2)
    run, history = record_paths(tmp_path, "m")
    record.epoch(0, [(4.0, 1.0), (2.0, 2.0)], 0.1)
    first = json.loads(run.read_text())
    assert list(first) == OMNIPOSE_RUN and first["status"] == "running" and first["schema_version"] == 1
    assert first["summary"] == {} and first["finished_at"] is None and len(first["run_id"]) == 12
    assert not history.exists(), "the history is written at the epochs Omnipose saves"
    record.epoch(1, [(1.5, 3.0), (0.5, 4.0)], 0.2)
    assert json.loads(history.read_text())["batch"] == [1, 2, 1, 2]
    record.epoch(2, [(1.0, 5.0)], 0.2)
    record.finish("completed")
    done, losses = json.loads(run.read_text()), json.loads(history.read_text())
    assert done["status"] == "completed" and done["duration_s"] >= 0 and done["run_id"] == first["run_id"]
    assert done["summary"]["min_loss_raw"] == 0.5 and done["summary"]["total_epochs_completed"] == 3
    assert list(losses) == OMNIPOSE_HISTORY and losses["epoch"] == [0, 0, 1, 1, 2]
    assert losses["learning_rate"] == [0.1, 0.1, 0.2, 0.2, 0.2] and losses["epoch_loss"] == [None] * 5


def test_a_resumed_training_keeps_its_first_parts_batches_start_and_id(tmp_path):
    described = {k: {} for k in ("hyperparameters", "model", "dataset", "hardware", "provenance")}
    run, history = record_paths(tmp_path, "m")
    killed = RunRecord(tmp_path, "m", lambda: described, save_every=2)
    for epoch in range(3):  # the history is written after epoch 1; epoch 2 is lost with the kill
        killed.epoch(epoch, [(10.0 + epoch, 1.0), (20.0 + epoch, 2.0)], 0.1)
    first = json.loads(run.read_text())
    resumed = RunRecord(tmp_path, "m", lambda: described, save_every=2, resumed_at=2)
    for epoch in range(
        4
    ):  # the resume replays epochs 0 and 1 (their losses from the checkpoint), trains 2, 3
        resumed.epoch(epoch, [(0.5, 9.0)] if epoch < 2 else [(30.0 + epoch, 9.0)], 0.2)
    resumed.finish("completed")
    done, losses = json.loads(run.read_text()), json.loads(history.read_text())
    assert losses["epoch"] == [0, 0, 1, 1, 2, 3] and losses["train_loss"] == [
        10.0,
        20.0,
        11.0,
        21.0,
        32.0,
        33.0,
    ]
    assert (done["started_at"], done["run_id"]) == (first["started_at"], first["run_id"])
    assert done["status"] == "completed" and done["summary"]["total_epochs_completed"] == 4
    again = RunRecord(tmp_path, "m", lambda: described, save_every=2)  # starting over: a new run
    again.epoch(0, [(1.0, 1.0)], 0.1)
    assert json.loads(run.read_text())["started_at"] > first["started_at"], "its own start, not the old one's"
