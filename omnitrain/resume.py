"""Training that survives a kill: full checkpoints around Omnipose's own training loop.

Omnipose 1.1.4 saves weights only, so a job killed at its time limit starts over. This module keeps
Omnipose's ``CellposeModel.train`` (its data order, augmentation, loss and optimiser, unchanged) and
hooks two of the model's methods:

- ``net.save_model``, called by Omnipose every ``save_every`` epochs, in the last 10 epochs and at the
  end, also writes a checkpoint: network and optimiser state, the epoch, torch's RNG state and the
  per-epoch losses so far (written to a temporary file, then renamed, so a kill never leaves half a
  checkpoint). A SIGKILL loses at most ``save_every`` epochs.
- ``_train_step``, called once per batch, (1) replays the epochs a checkpoint already holds without
  training (Omnipose draws each epoch's images from a sequence fixed up front and reseeds numpy with
  the epoch number, so the epochs after them see exactly the data they would have seen; while
  replaying, Omnipose's augmentation and flow computation are skipped too, see
  :func:`_skip_while_replaying`, so a resume costs about one epoch wherever it stopped), (2) restores
  the checkpoint right before the first batch that trains, and (3) after a stop request (SIGTERM, which
  SLURM sends before its time limit) writes the state of the last completed epoch (kept in memory at
  each epoch start) at the next batch and stops: nothing of the finished epochs is lost.

Why hooks rather than a copy of Omnipose's loop: the training stays Omnipose's own, so an uninterrupted
run equals ``train()`` exactly (tested) and a resumed one continues it (tested epoch by epoch).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

FORMAT = 1

#: The training whose finished epochs are being replayed (None otherwise); see _skip_while_replaying.
_REPLAYING = None


def _skip_while_replaying(module, name: str, cheap) -> None:
    """Replace ``module.name`` by a wrapper that returns ``cheap(...)`` while a resumed training replays.

    A replayed batch's data is thrown away (its loss comes from the checkpoint), and nothing after
    depends on computing it: numpy is reseeded at every epoch and torch's random state is restored
    from the checkpoint before the first batch that trains. So the augmentation and flows of
    thousands of finished epochs need not be computed. Installed once per process; outside a replay
    the wrapper calls the original.
    """
    original = getattr(module, name)
    if getattr(original, "_omnitrain_original", None) is not None:
        return

    def wrapper(*args, **kwargs):
        # Omnipose sets model.epoch in its loop: before it (a warm-up call) nothing is being replayed.
        if _REPLAYING is not None and getattr(_REPLAYING.model, "epoch", None) is not None \
                and _REPLAYING.model.epoch < _REPLAYING.start:  # fmt: skip
            return cheap(*args, **kwargs)
        return original(*args, **kwargs)

    wrapper._omnitrain_original = original
    setattr(module, name, wrapper)


def _cheap_crops(X, *args, **kwargs):
    """Stand-in for transforms.random_rotate_and_resize: (images, labels, scales) of one pixel each."""
    n = len(X)
    return np.zeros((n, 1, 1, 1), np.float32), np.zeros((n, 1, 1), np.int64), np.ones(n, np.float32)


def _cheap_flows(batch, *args, **kwargs):
    """Stand-in for omnipose.core.masks_to_flows_batch: its 8 outputs, of the right kinds only."""
    z = torch.zeros(1)
    return z, z, z, z, [()] * len(batch), None, None, None


def _cheap_labels(masks, *args, **kwargs):
    """Stand-in for omnipose.core.batch_labels."""
    return torch.zeros((len(masks), 1))


def _install_replay_shortcuts() -> None:
    import omnipose.core
    from cellpose_omni import transforms

    _skip_while_replaying(transforms, "random_rotate_and_resize", _cheap_crops)
    _skip_while_replaying(omnipose.core, "masks_to_flows_batch", _cheap_flows)
    _skip_while_replaying(omnipose.core, "batch_labels", _cheap_labels)


class Interrupted(RuntimeError):
    """Training stopped on request after saving a checkpoint; rerun to continue."""


class EarlyStopped(RuntimeError):
    """The monitor's patience ran out: training ends with the weights of the last monitored epoch."""


def cpu_copy(obj):
    """A copy of (nested) state with every tensor cloned to the CPU."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(cpu_copy(v) for v in obj)
    return obj


class ResumableTraining:
    """Attach to a CellposeModel before calling its ``train(...)``; see the module docstring.

    Parameters
    ----------
    model : cellpose_omni.models.CellposeModel
    path : checkpoint file (kept beside the model; removed by :meth:`finished`)
    identity : what the training is (the model's version id): a checkpoint of anything else is ignored
    log : logger for what happens (resume, checkpoint, stop)
    """

    def __init__(
        self, model, path: str | Path, identity: str, log: logging.Logger, replay_shortcuts: bool = True
    ):
        """``replay_shortcuts``: skip the crops and flows of replayed epochs (not with Omnipose's
        DataLoader, whose worker processes compute them out of reach)."""
        self.model, self.path, self.identity, self.log = model, Path(path), identity, log
        self.monitor = None  # omnitrain.monitor.Monitor (attach_monitor): its state travels in the checkpoint
        self.between_epochs = None  # called before the first batch of every epoch that trains
        self.saved: dict | None = None
        self.start = 0
        if self.path.is_file():
            ck = torch.load(self.path, map_location="cpu", weights_only=False)
            if ck.get("identity") == identity and ck.get("format") == FORMAT:
                self.saved, self.start = ck, ck["epoch"] + 1
                log.info(
                    f"resuming from the checkpoint of epoch {ck['epoch'] + 1} ({self.path}): epochs"
                    f" 1-{self.start} are replayed for their data order, without training or computing"
                    " their crops"
                )
            else:
                log.info(f"ignoring {self.path}: it belongs to another training")
        self.losses: list[float] = list(self.saved["losses"]) if self.saved else []
        # Training time over every run of this training: earlier runs' time up to their last
        # checkpoint, and how many runs (parts) it took; the card reports both.
        self.previous_seconds = float(self.saved.get("seconds", 0.0)) if self.saved else 0.0
        self.parts = int(self.saved.get("parts", 1)) + 1 if self.saved else 1
        self._started = time.perf_counter()
        self.stop_requested = False
        self._epoch: int | None = None  # epoch of the last batch seen
        self._sum, self._batches = 0.0, 0
        self._snapshot: tuple[int, dict] | None = None  # (epoch, state) of the last completed epoch
        self._written = -1
        # The bare network: on a GPU Omnipose wraps it in DataParallel, whose state keys differ.
        self.net = model.net.module if hasattr(model.net, "module") else model.net
        self._save_weights = self.net.save_model
        self.net.save_model = self._save_model
        self._train_step = model._train_step
        model._train_step = self._step
        self.replay_shortcuts = replay_shortcuts
        self._train = model.train
        model.train = self._train_scoped

    def _train_scoped(self, *args, **kwargs):
        """Omnipose's train(), with the replay shortcuts on for this call only."""
        global _REPLAYING
        if self.start and self.replay_shortcuts:
            _install_replay_shortcuts()
            _REPLAYING = self
        try:
            return self._train(*args, **kwargs)
        finally:
            self._end_replay()

    def attach_monitor(self, monitor) -> None:
        """Keep ``monitor``'s state (omnitrain/monitor.py) in the checkpoints. A checkpoint's monitoring
        history, best epoch and patience count are restored into it, and ``EarlyStopped`` is raised before
        the first epoch after its patience ran out. (The epochs are scored by the epoch recorder,
        omnitrain/epochs.py, before their checkpoint is written.)"""
        self.monitor = monitor
        if self.saved and self.saved.get("monitor"):
            monitor.restore(self.saved["monitor"], upto=self.saved["epoch"])

        def between_epochs():
            if monitor.should_stop():
                raise EarlyStopped(f"early stopping after epoch {monitor.stopped_early_at + 1}")

        self.between_epochs = between_epochs

    def request_stop(self, *_signal) -> None:
        """Stop at the next batch, after saving the last completed epoch (a signal handler)."""
        self.stop_requested = True

    # -- the hooks ---------------------------------------------------------------------------------
    def _step(self, x, lbl, *args, **kwargs):
        epoch = self.model.epoch
        if epoch < self.start:  # already done before the kill: keep Omnipose's log line truthful
            if self.stop_requested:  # nothing trained yet in this run: the checkpoint stands
                self._end_replay()
                raise Interrupted(
                    f"training stopped while replaying epoch {epoch + 1}; checkpoint {self.path}"
                )
            return self.saved["losses"][epoch]
        self._end_replay()
        if epoch != self._epoch:  # the first batch of an epoch: the previous epoch is complete
            if self._epoch is not None or epoch > 0:
                self._close_epoch(epoch - 1)
            if self.saved is not None and epoch == self.start:
                self._restore()
            self._epoch = epoch
            self._snapshot = (epoch - 1, self._state())
            if self.between_epochs is not None:  # may raise EarlyStopped (or a monitoring error)
                self.between_epochs()
        if self.stop_requested:
            self._stop()
        loss = self._train_step(x, lbl, *args, **kwargs)
        self._sum, self._batches = self._sum + loss, self._batches + 1
        return loss

    def _save_model(self, filename):
        epoch = self.model.epoch
        if epoch < self.start:  # a replayed epoch: the checkpoint's weights are newer
            if (
                epoch == self.model.n_epochs - 1
            ):  # the checkpoint holds the last epoch: its weights are the model
                self._restore()
                self._save_weights(filename)
            return
        self._save_weights(filename)
        if epoch != self._written:
            self._close_epoch(epoch)
            self._write(epoch, self._state())

    # -- state -------------------------------------------------------------------------------------
    def _close_epoch(self, epoch: int) -> None:
        """Record the mean loss of a finished epoch (once)."""
        if epoch >= 0 and len(self.losses) == epoch and self._batches:
            self.losses.append(float(self._sum) / self._batches)
            self._sum, self._batches = 0.0, 0

    def _state(self) -> dict:
        state = {
            "monitor": self.monitor.state() if self.monitor is not None else None,
            "net": cpu_copy(self.net.state_dict()),
            "optimizer": cpu_copy(self.model.optimizer.state_dict()),
            "torch_rng": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def _restore(self) -> None:
        ck = self.saved
        self.net.load_state_dict(ck["net"])
        # Omnipose has already set this epoch's learning rate; the optimiser's saved one is older.
        rates = [g["lr"] for g in self.model.optimizer.param_groups]
        self.model.optimizer.load_state_dict(ck["optimizer"])
        for group, rate in zip(self.model.optimizer.param_groups, rates, strict=True):
            group["lr"] = rate
        torch.set_rng_state(ck["torch_rng"])
        if "cuda_rng" in ck and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ck["cuda_rng"])
        self.log.info(f"restored network, optimiser and RNG state of epoch {ck['epoch'] + 1}")

    def _write(self, epoch: int, state: dict) -> None:
        checkpoint = {
            "format": FORMAT,
            "identity": self.identity,
            "epoch": epoch,
            "losses": self.losses[: epoch + 1],
            "seconds": self.previous_seconds + time.perf_counter() - self._started,
            "parts": self.parts,
            **state,
        }
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        torch.save(checkpoint, tmp)
        os.replace(tmp, self.path)
        self._written = epoch

    def save_progress(self) -> None:
        """Write the state of the last completed epoch, if the checkpoint is older (training failed)."""
        if self._snapshot is not None:
            epoch, state = self._snapshot
            if epoch >= 0 and epoch > self._written:
                self._write(epoch, state)

    def _stop(self) -> None:
        self.save_progress()
        done = max(self._written, -1) + 1
        self.log.info(
            f"stop requested: {done} epoch(s) saved in {self.path}; run the workflow again to continue"
        )
        raise Interrupted(f"training stopped after epoch {done}; checkpoint {self.path}")

    def _end_replay(self) -> None:
        global _REPLAYING
        if _REPLAYING is self:
            _REPLAYING = None

    def save_weights(self, filename: str) -> None:
        """The network's weights in Omnipose's format, without a checkpoint (the unhooked save_model)."""
        self._save_weights(filename)

    def finished(self) -> None:
        """Training completed: the checkpoint is no longer needed."""
        self._end_replay()
        self.path.unlink(missing_ok=True)
