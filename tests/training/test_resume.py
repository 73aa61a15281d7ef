"""Resumable training: the hooks leave Omnipose's training unchanged; a stopped run continues exactly."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from test_training import config

from omnitrain.demo import make_image
from omnitrain.epochs import EpochRecorder
from omnitrain.resume import Interrupted, ResumableTraining
from omnitrain.training import model_kwargs, seed_everything, train_kwargs

models = pytest.importorskip("cellpose_omni.models")
N_EPOCHS = 4


def training_data():
    images, labels = [], []
    # 192 px windows full of cells: every 64 px crop Omnipose draws holds some (it gives up on empty ones)
    for demo, (y, x) in (("colony_dense_02", (128, 160)), ("colony_dense_03", (128, 224))):
        img, lab = make_image(demo)
        images.append(img[y : y + 192, x : x + 192].astype(np.float32))
        labels.append(lab[y : y + 192, x : x + 192])
    return images, labels


def stop_or_crash(model, hooks, stop_in_epoch=None, crash_in_epoch=None) -> None:
    """Request a stop (as SIGTERM does) or crash (as SIGKILL does: nothing saved) in epoch ``...in_epoch``."""
    if stop_in_epoch is None and crash_in_epoch is None:
        return
    step = model._train_step

    def trigger(*args, **kwargs):
        if model.epoch == stop_in_epoch:
            hooks.request_stop()  # what the SIGTERM handler does
        if model.epoch == crash_in_epoch:
            raise KeyboardInterrupt("killed")  # a kill: nothing saved on the way out
        return step(*args, **kwargs)

    model._train_step = trigger


def train(
    tmp_path,
    name,
    checkpoint=None,
    stop_in_epoch=None,
    crash_in_epoch=None,
    sgd=False,
    identity="v1",
    n_epochs=N_EPOCHS,
    save_every=2,
    dataparallel=False,
):
    """Omnipose's train() on two demo crops; returns (weights or None if stopped, per-epoch losses)."""
    torch.set_num_threads(1)
    cfg = config(n_epochs=n_epochs, save_every=save_every, RAdam=not sgd)
    seed_everything(0)
    model = models.CellposeModel(**model_kwargs(cfg, False, None))
    if dataparallel:  # as Omnipose 1.1.4 wraps the network on a GPU (over every GPU it sees)
        model.net = CpuDataParallel(model.net)
    log = logging.getLogger(f"test.resume.{name}")
    hooks = ResumableTraining(model, checkpoint, identity, log) if checkpoint else None
    stop_or_crash(model, hooks, stop_in_epoch, crash_in_epoch)
    recorder = EpochRecorder(model, n_epochs, tmp_path / f"{name}.tsv", log)
    images, labels = training_data()
    try:
        path = model.train(images, labels, [None, None], **train_kwargs(cfg, str(tmp_path / name), "net"))
    except (Interrupted, KeyboardInterrupt):
        return None, [r["loss"] for r in recorder.rows]
    finally:
        recorder.close()
    return torch.load(path, map_location="cpu", weights_only=True), [r["loss"] for r in recorder.rows]


class CpuDataParallel(torch.nn.DataParallel):
    """torch's DataParallel on the CPU (no devices: it runs its module): state_dict keys get ``module.``.
    Omnipose 1.1.4 saves through ``net.module.save_model`` on a GPU and ``net.save_model`` on the CPU: the
    wrapper passes that on, so the CPU path runs what the GPU path runs."""

    def save_model(self, filename):
        self.module.save_model(filename)

    def forward(self, *inputs, **kwargs):  # on the CPU even where torch sees GPUs (it would move the module)
        return self.module(*inputs, **kwargs)


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """Omnipose's own train(), without the hooks: the reference."""
    tmp = tmp_path_factory.mktemp("plain")
    return {sgd: train(tmp, f"plain_{sgd}", sgd=sgd) for sgd in (False, True)}


def test_hooks_leave_omnipose_training_unchanged(plain, tmp_path):
    weights, losses = train(tmp_path, "hooked", checkpoint=tmp_path / "ck.pt")
    assert same_weights(weights, plain[False][0]) and losses == plain[False][1]
    ck = torch.load(tmp_path / "ck.pt", weights_only=False)
    assert ck["epoch"] == N_EPOCHS - 1 and ck["identity"] == "v1"
    assert ck["losses"] == pytest.approx(losses, rel=1e-6)


@pytest.mark.parametrize("sgd", [False, True], ids=["RAdam", "SGD"])
def test_stopped_training_resumes_to_the_same_losses_and_weights(plain, tmp_path, sgd):
    ck = tmp_path / "ck.pt"
    weights, losses = train(tmp_path, "stopped", checkpoint=ck, stop_in_epoch=2, sgd=sgd)
    assert weights is None and len(losses) == 2  # epochs 0 and 1 finished, then the stop
    assert torch.load(ck, weights_only=False)["epoch"] == 1, "the last finished epoch is saved"
    weights, losses = train(tmp_path, "resumed", checkpoint=ck, sgd=sgd)
    ref_weights, ref_losses = plain[sgd]
    # Exact on the CPU with one thread (the stated tolerance is 0): the run continues, it does not restart.
    assert losses == pytest.approx(ref_losses, rel=1e-6) and losses[2:] == ref_losses[2:]
    assert same_weights(weights, ref_weights)


def test_killed_training_loses_at_most_save_every_epochs(plain, tmp_path):
    ck = tmp_path / "ck.pt"
    weights, _ = train(tmp_path, "killed", checkpoint=ck, crash_in_epoch=3)
    assert weights is None
    saved = torch.load(ck, weights_only=False)["epoch"]
    assert saved == 2 and 3 - (saved + 1) <= 2  # save_every 2: epochs 0 and 2 were checkpointed
    weights, losses = train(tmp_path, "resumed", checkpoint=ck)
    assert same_weights(weights, plain[False][0]) and losses[3:] == plain[False][1][3:]


def test_a_checkpoint_of_another_training_is_ignored(plain, tmp_path):
    ck = tmp_path / "ck.pt"
    train(tmp_path, "other", checkpoint=ck, stop_in_epoch=2, identity="another version")
    weights, losses = train(tmp_path, "fresh", checkpoint=ck, identity="v1")
    assert same_weights(weights, plain[False][0]) and losses == plain[False][1]


def test_stop_between_checkpoints_saves_the_last_finished_epoch(tmp_path):
    """12 epochs, save_every 100: Omnipose saves epoch 0 and the last 10 only, so the stop in epoch 2
    must write epoch 1's state itself (kept in memory since epoch 2 began)."""
    kwargs = {"n_epochs": 12, "save_every": 100}
    ref_weights, ref_losses = train(tmp_path, "reference", **kwargs)
    ck = tmp_path / "ck.pt"
    weights, _ = train(tmp_path, "stopped", checkpoint=ck, stop_in_epoch=2, **kwargs)
    assert weights is None and torch.load(ck, weights_only=False)["epoch"] == 1
    weights, losses = train(tmp_path, "resumed", checkpoint=ck, **kwargs)
    assert losses[2:] == ref_losses[2:] and same_weights(weights, ref_weights)


def test_checkpoint_of_the_last_epoch_still_gives_the_model(plain, tmp_path):
    """Killed after the last checkpoint but before the job ended: the rerun writes the model from it."""
    ck = tmp_path / "ck.pt"
    train(tmp_path, "complete", checkpoint=ck)  # leaves the checkpoint of the last epoch (no finished())
    weights, losses = train(tmp_path, "again", checkpoint=ck)
    assert same_weights(weights, plain[False][0]) and losses == pytest.approx(plain[False][1], rel=1e-6)


def test_stop_while_replaying_keeps_the_checkpoint(tmp_path):
    ck = tmp_path / "ck.pt"
    train(tmp_path, "first", checkpoint=ck, stop_in_epoch=3)
    saved = ck.read_bytes()
    weights, _ = train(tmp_path, "second", checkpoint=ck, stop_in_epoch=1)  # epoch 1 is replayed
    assert weights is None and ck.read_bytes() == saved


def test_a_dataparallel_training_resumes_from_its_checkpoint_to_the_same_weights(plain, tmp_path):
    """DataParallel's ``module.`` keys: the checkpoint and the model file hold the network's own keys, and a
    stopped DataParallel training resumes to the plain training's weights (one CPU thread: exactly)."""
    ck = tmp_path / "ck.pt"
    weights, losses = train(tmp_path, "stopped", checkpoint=ck, stop_in_epoch=2, dataparallel=True)
    assert weights is None and len(losses) == 2
    saved = torch.load(ck, weights_only=False)
    assert saved["epoch"] == 1 and not [k for k in saved["net"] if k.startswith("module.")]
    weights, losses = train(tmp_path, "resumed", checkpoint=ck, dataparallel=True)
    assert not [k for k in weights if k.startswith("module.")], "Omnipose's file format, loadable anywhere"
    assert same_weights(weights, plain[False][0]) and losses[2:] == plain[False][1][2:]
