"""Per-epoch figures of Omnipose's own training loop, from hooks on it (not from its log text).

Omnipose 1.1.4's ``CellposeModel.train`` runs ``model._train_step(x, lbl)`` once per batch (returning
the batch's loss) and ``net.save_model(path)`` at the end of every epoch it saves (every ``save_every``
epochs, the last 10 and the last one), with ``model.epoch`` set to the epoch in progress. An epoch is
finished when the first batch of the next one arrives or when it is saved, whichever comes first; its loss
is the mean of its batches' losses (what Omnipose logs as "<Epoch Loss>"). :class:`EpochRecorder` wraps
both methods (on top of any hooks already there, such as :class:`omnitrain.resume.ResumableTraining`, so
that a finished epoch is recorded and scored before a checkpoint of it is written) and writes one row per
epoch to a TSV file.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np


class EpochRecorder:
    """Records epoch, loss, learning rate, seconds and ETA of every finished epoch of ``model.train``.

    ``on_epoch(epoch, loss)`` runs once per finished epoch, before that epoch's checkpoint, and returns its
    validation scores ({"val_loss", "ap50", "mean_ap"}) or None; an error in it stops the training (it is
    raised inside Omnipose's loop, which does not catch it). ``after(row, scores, batches)`` runs once the
    epoch's row is written, with its batches' (loss, time) (omnitrain.board's live view, the run record).
    Use as a context manager, or call :meth:`close`: it removes the hooks and closes the table."""

    #: Validation columns, filled at monitored epochs (omnitrain/monitor.py) and empty otherwise.
    MONITORED = ("val_loss", "val_ap50", "val_mean_ap")

    def __init__(self, model, n_epochs: int, tsv: str | Path, log: logging.Logger, on_epoch=None, after=None):
        self.model, self.n_epochs, self.log, self.on_epoch, self.after = model, n_epochs, log, on_epoch, after
        self.rows: list[dict] = []
        self.tsv = open(tsv, "w")  # noqa: SIM115 (closed by close())
        columns = ["epoch", "loss", "learning_rate", "seconds", "elapsed", "eta_seconds"]
        self.tsv.write("\t".join(columns + (list(self.MONITORED) if on_epoch else [])) + "\n")
        self.start = self.last = time.perf_counter()
        self._epoch: int | None = None  # the epoch whose batches are being summed
        self.finishing: int | None = None  # the epoch being recorded (and scored) right now
        self._sum, self._batches = 0.0, 0
        self._batch_losses: list[tuple[float, float]] = []  # (loss, time) of the epoch's batches
        self.net = model.net.module if hasattr(model.net, "module") else model.net
        self._step, self._save = model._train_step, self.net.save_model
        model._train_step, self.net.save_model = self._hooked_step, self._hooked_save

    def __enter__(self) -> EpochRecorder:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def _hooked_step(self, *args, **kwargs):
        epoch = self.model.epoch
        if self._epoch is not None and epoch != self._epoch:
            self._finish(self._epoch)
        loss = self._step(*args, **kwargs)
        self._epoch, self._sum, self._batches = epoch, self._sum + float(loss), self._batches + 1
        self._batch_losses.append((float(loss), time.time()))
        return loss

    def _hooked_save(self, *args, **kwargs):
        if self._epoch is not None and self._epoch == self.model.epoch:
            self._finish(self._epoch)
        return self._save(*args, **kwargs)

    def _finish(self, epoch: int) -> None:
        loss, batches = self._sum / self._batches, self._batch_losses
        self._epoch, self._sum, self._batches, self._batch_losses = None, 0.0, 0, []
        self.record(epoch, loss, batches)

    def record(self, epoch: int, loss: float, batches: list[tuple[float, float]] | None = None) -> None:
        """One finished epoch: its row (table and log) and, when monitored, its scores."""
        self.finishing = epoch  # stays set when the scoring fails: the epoch an error message names
        now = time.perf_counter()
        lr = self.model.learning_rate
        rate = (
            float(lr[epoch]) if isinstance(lr, list | np.ndarray) else float(self.model.learning_rate_const)
        )
        seconds, elapsed = now - self.last, now - self.start
        self.last = now
        eta = elapsed / (epoch + 1) * (self.n_epochs - epoch - 1)
        row = {"epoch": epoch, "loss": loss, "learning_rate": rate, "seconds": seconds, "elapsed": elapsed}
        row["eta"] = eta
        self.rows.append(row)
        line = f"{epoch}\t{loss:.6f}\t{rate:.6g}\t{seconds:.3f}\t{elapsed:.1f}\t{eta:.0f}"
        self.log.info(
            f"epoch {epoch + 1}/{self.n_epochs}  loss {loss:.5f}  lr {rate:.4g}  {seconds:.2f} s"
            f"  elapsed {elapsed:.0f} s  ETA {eta:.0f} s"
        )
        scores = None
        if self.on_epoch is not None:
            scores = self.on_epoch(epoch, loss)
            keys = ("val_loss", "ap50", "mean_ap")
            row.update({k: scores[k] for k in keys} if scores else {})
            line += "".join(f"\t{scores[k]:.6f}" if scores else "\t" for k in keys)
        self.tsv.write(line + "\n")
        self.tsv.flush()
        if self.after is not None:
            self.after(row, scores, batches if batches is not None else [(loss, time.time())])
        self.finishing = None

    def close(self) -> None:
        """Remove the hooks (an epoch cut short by a stop is not recorded) and close the table."""
        if self.model._train_step == self._hooked_step:
            self.model._train_step = self._step
        if self.net.save_model == self._hooked_save:
            self.net.save_model = self._save
        if not self.tsv.closed:
            self.tsv.close()
