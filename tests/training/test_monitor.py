"""Monitoring against Omnipose itself: its loss on fixed crops, its eval scored by omnitrain.metrics, the best
weights, early stopping, and a stopped monitored training resumed to the same history and best file."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from test_resume import same_weights, stop_or_crash, training_data
from test_training import config

from omnitrain.demo import make_image
from omnitrain.epochs import EpochRecorder
from omnitrain.metrics import score_image
from omnitrain.monitor import (
    Monitor,
    ValidationSet,
    grid_starts,
    prepared_images,
    spread_sample,
    validation_ap,
    validation_crops,
    validation_loss,
)
from omnitrain.resume import EarlyStopped, Interrupted, ResumableTraining
from omnitrain.training import model_kwargs, seed_everything, train_kwargs

models = pytest.importorskip("cellpose_omni.models")
omnipose = pytest.importorskip("omnipose")
TYX = (64, 64)


def validation_set() -> ValidationSet:
    img, lab = make_image("colony_mixed_01")
    return ValidationSet([img[200:328, 180:308].astype(np.float32)], [lab[200:328, 180:308]], [None], ["v"])


def test_grid_crops_cover_every_pixel_once_or_more_and_pad_small_images():
    for length, size in ((130, 64), (64, 64), (65, 64), (500, 224)):
        starts = grid_starts(length, size)
        covered = np.zeros(length, int)
        for s in starts:
            covered[s : s + size] += 1
        assert covered.min() >= 1 and starts[-1] + size == length and starts[0] == 0
    assert grid_starts(40, 64) == [0]
    lab = np.arange(130 * 40).reshape(130, 40) + 1
    crops, labs = validation_crops([lab[None].astype(np.float32)], [lab], (64, 64))
    assert crops.shape == (3, 1, 64, 64) and labs.shape == (3, 64, 64)
    assert set(np.unique(labs)) - {0} == set(lab.ravel().tolist())  # every pixel in some crop, 0 = padding
    empty = np.zeros((64, 130), np.uint16)
    empty[:, 100:] = 1  # one object in the last crop only: crops without 2 label values are left out
    assert len(validation_crops([empty[None].astype(np.float32)], [empty], (64, 64))[0]) == 1


def test_the_loss_sample_is_fixed_spread_and_bounded(tmp_path):
    assert list(spread_sample(5, None)) == list(range(5)) == list(spread_sample(5, 5))
    assert list(spread_sample(10, 4)) == [0, 3, 6, 9] and list(spread_sample(3, 1)) == [0]
    log = logging.getLogger("test.monitor.sample")
    kwargs = dict(every=1, n_epochs=1, metric="val_loss", patience=None, tyx=TYX, channel_axis=None,
                  diameter=0, best_path=tmp_path / "best", log=log)  # fmt: skip
    every = Monitor(model_of(), validation_set(), **kwargs)
    bounded = Monitor(model_of(), validation_set(), loss_crops=2, **kwargs)
    assert every.grid_crops == bounded.grid_crops == len(every.crops) > 2 and len(bounded.crops) == 2
    assert np.array_equal(bounded.crops, every.crops[[0, -1]])
    assert bounded.summary()["validation_crops"] == 2 and bounded.summary()["validation_grid_crops"] > 2


def model_of(seed: int = 0):
    torch.set_num_threads(1)
    seed_everything(seed)
    return models.CellposeModel(**model_kwargs(config(), False, None))


def omnipose_loss_of_one_crop(model, crop, lab) -> float:
    """Omnipose's training loss of one crop, step by step as its training loop computes it."""
    out = omnipose.core.masks_to_flows_batch(lab[None], [None], device=model.device, omni=True, dim=2)
    masks, bd, t, mu = [torch.stack([f[(Ellipsis, *s)] for s in out[-4]]) for f in out[:-4]]
    lbl = omnipose.core.batch_labels(masks, bd, t, mu, TYX, dim=2, nclasses=2, device=model.device)
    model.net.eval()
    with torch.no_grad():
        y = model.net(torch.from_numpy(crop[None]))[0]
        return float(model.loss_fn(lbl, y, ext_loss=torch.zeros([]))[1])


def test_validation_loss_equals_omnipose_loss_on_the_same_crops_and_weights():
    vs = validation_set()
    model = model_of()
    crops, labs = validation_crops(prepared_images(model, vs, None), vs.labels, TYX)
    assert len(crops) == 4
    ours = validation_loss(model, crops, labs)
    direct = np.mean([omnipose_loss_of_one_crop(model, c, lab) for c, lab in zip(crops, labs, strict=True)])
    assert ours == pytest.approx(direct, rel=1e-6)  # float32, summed in float64
    other = validation_loss(model_of(seed=1), crops, labs)
    assert abs(other - ours) > 1e-3, "other weights, another loss"


def monitored_training(
    tmp_path,
    name,
    checkpoint=None,
    stop_in_epoch=None,
    crash_in_epoch=None,
    n_epochs=4,
    learning_rate=0.1,
    **monitor_kwargs,
):
    """Omnipose's train() on two demo crops, scored at every epoch on one validation crop.

    Returns (final weights or None when stopped, monitor, model folder)."""
    # RAdam refuses a learning rate of 0 (torch_optimizer); SGD takes it.
    cfg = config(n_epochs=n_epochs, save_every=2, tyx=list(TYX), batch_size=2, learning_rate=learning_rate)
    cfg["RAdam"] = learning_rate > 0
    model = model_of()
    log = logging.getLogger(f"test.monitor.{name}")
    hooks = ResumableTraining(model, checkpoint or tmp_path / f"{name}.pt", "v1", log)
    folder = tmp_path / name
    kwargs = {"every": 1, "metric": "val_loss", "patience": None} | monitor_kwargs
    monitor = Monitor(
        model, validation_set(), n_epochs=n_epochs, tyx=TYX, channel_axis=None, diameter=0,
        best_path=folder / "best", log=log, **kwargs,
    )  # fmt: skip
    folder.mkdir(exist_ok=True)
    recorder = EpochRecorder(model, n_epochs, tmp_path / f"{name}.tsv", log, on_epoch=monitor.on_epoch)
    hooks.attach_monitor(monitor)
    stop_or_crash(model, hooks, stop_in_epoch, crash_in_epoch)
    images, labels = training_data()
    try:
        path = model.train(images, labels, [None, None], **train_kwargs(cfg, str(folder), "net"))
    except (Interrupted, EarlyStopped, KeyboardInterrupt):
        return None, monitor, folder
    finally:
        recorder.close()
    return torch.load(path, map_location="cpu", weights_only=True), monitor, folder


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return monitored_training(tmp_path_factory.mktemp("monitored"), "whole")


def test_monitoring_changes_nothing_of_the_training_and_keeps_the_best_weights(uninterrupted, tmp_path):
    weights, monitor, folder = uninterrupted
    torch.set_num_threads(1)
    seed_everything(0)
    model = models.CellposeModel(**model_kwargs(config(), False, None))
    cfg = config(n_epochs=4, save_every=2, tyx=list(TYX), batch_size=2)
    images, labels = training_data()
    plain = model.train(images, labels, [None, None], **train_kwargs(cfg, str(tmp_path), "net"))
    assert same_weights(weights, torch.load(plain, map_location="cpu", weights_only=True)), "same training"
    assert [h["epoch"] for h in monitor.history] == [0, 1, 2, 3]
    best = min(monitor.history, key=lambda h: h["val_loss"])
    assert monitor.best == best
    # The best file holds that epoch's weights: Omnipose's copy of it (the last 10 epochs are kept).
    copy = torch.load(folder / "models" / f"net_epoch_{best['epoch']}", map_location="cpu", weights_only=True)
    assert same_weights(torch.load(folder / "best", map_location="cpu", weights_only=True), copy)


def test_validation_ap_equals_the_metrics_of_omnipose_eval(uninterrupted):
    _, monitor, folder = uninterrupted
    vs = validation_set()
    model = models.CellposeModel(
        gpu=False, pretrained_model=str(folder / "best"), nchan=1, nclasses=2, dim=2, omni=True
    )
    masks = model.eval(vs.images[0], channels=None, omni=True, mask_threshold=0.0, flow_threshold=0.4)[0]
    rows, scalars = score_image(vs.labels[0], np.asarray(masks))
    ap50, mean_ap, found = validation_ap(model, vs, None, 0)
    assert len(found) == len(vs.labels)
    np.testing.assert_array_equal(found[0], masks)  # what it scored is what it gives back
    assert (ap50, mean_ap) == (pytest.approx(scalars["ap50"]), pytest.approx(scalars["mean_ap"]))
    best = monitor.best
    assert (best["ap50"], best["mean_ap"]) == (pytest.approx(ap50), pytest.approx(mean_ap))


def test_scoring_a_fine_tuned_model_evaluates_the_weights_being_trained(tmp_path):
    """CellposeModel.eval reloads the pretrained file unless told the model is loaded: it must not."""
    pretrained = tmp_path / "pretrained"
    model_of().net.save_model(str(pretrained))
    cfg = config()
    model = models.CellposeModel(**model_kwargs(cfg, False, str(pretrained)))
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(0.01)  # what training does to the network in memory
    trained = {k: v.clone() for k, v in model.net.state_dict().items()}
    validation_ap(model, validation_set(), None, 0)
    assert same_weights(model.net.state_dict(), trained)


class Segments:
    """A stand-in model whose eval returns given masks (to check how the scores are summed over images)."""

    def __init__(self, masks):
        self.masks = list(masks)

    def eval(self, image, **kwargs):
        return (self.masks.pop(0),)


def test_validation_ap_sums_objects_over_images_like_the_heldout_summary():
    vs = validation_set()
    lab = vs.labels[0]
    two = ValidationSet([vs.images[0]] * 2, [lab, lab[:64]], [None, None], ["a", "b"])
    worse = lab.copy()
    worse[np.isin(worse, np.unique(lab)[1:4])] = 0  # three objects missed in the first image
    ap50, mean_ap, _ = validation_ap(Segments([worse, lab[:64]]), two, None, 0)
    n = len(np.unique(lab)) - 1 + len(np.unique(lab[:64])) - 1
    assert ap50 == pytest.approx((n - 3) / n) and 0 < mean_ap <= ap50


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_stopped_monitored_training_resumes_to_the_same_history_and_best_file(uninterrupted, tmp_path, how):
    weights, whole, whole_folder = uninterrupted
    ck = tmp_path / "ck.pt"
    if how == "SIGTERM":  # stops after saving epoch 2 (index 1)
        stopped, part, _ = monitored_training(tmp_path, "part", checkpoint=ck, stop_in_epoch=2)
    else:  # killed in epoch 4 (index 3): the checkpoint of epoch 3 (save_every 2, index 2) is the last
        stopped, part, _ = monitored_training(tmp_path, "part", checkpoint=ck, crash_in_epoch=3)
    saved = torch.load(ck, weights_only=False)["monitor"]
    assert stopped is None and saved["history"] and saved["best_state"] is not None
    (tmp_path / "part" / "best").unlink()  # Snakemake removes a failed job's outputs: the checkpoint has it
    assert [h["epoch"] for h in part.history] == ([0, 1] if how == "SIGTERM" else [0, 1, 2])
    resumed, monitor, folder = monitored_training(tmp_path, "part", checkpoint=ck)
    monitor.write_best()  # as the train script does at the end
    assert same_weights(resumed, weights)
    assert monitor.history == whole.history and monitor.best == whole.best  # exact on 1 CPU thread
    assert same_weights(
        torch.load(folder / "best", map_location="cpu", weights_only=True),
        torch.load(whole_folder / "best", map_location="cpu", weights_only=True),
    )


def test_early_stopping_after_patience_monitored_epochs_without_improvement(tmp_path):
    # Learning rate 0: the weights never change, so AP@0.5 never improves on the first monitored epoch.
    weights, monitor, _ = monitored_training(
        tmp_path, "flat", n_epochs=6, learning_rate=0.0, metric="ap50", patience=2
    )
    assert weights is None and monitor.stopped_early_at == 2 and len(monitor.history) == 3
