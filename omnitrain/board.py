"""A training's live view in TensorBoard (``monitor.tensorboard``): one run per training, under its model's
version folder (``<results>/models/<version>/tensorboard/<experiment>[-fold<k>]``), so that
``tensorboard --logdir results/`` lists every training by version, experiment and fold.

Per finished epoch (step = the epoch's 0-based number, as in losses.tsv): ``train/loss``,
``train/learning_rate`` and ``train/seconds_per_epoch``; at monitored epochs ``validation/loss``,
``validation/AP@0.5``, ``validation/mean_AP`` and the image ``validation/overlay`` (the first validation image
with the objects the network finds, as the held-out overlays draw them). Written through torch's own
SummaryWriter and flushed every epoch. A resumed training writes a new event file in the same folder that
starts at its first new epoch with a purge mark (``purge_step``): TensorBoard then hides what the killed part
had written from that epoch on, so no step is shown twice; epochs replayed from the checkpoint are not written
again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: TensorBoard's tags, by the per-epoch table's column (omnitrain/epochs.py).
SCALARS = {"loss": "train/loss", "learning_rate": "train/learning_rate", "seconds": "train/seconds_per_epoch"}
VALIDATION = {"val_loss": "validation/loss", "ap50": "validation/AP@0.5", "mean_ap": "validation/mean_AP"}
OVERLAY = "validation/overlay"


def run_folder(model_folder: str | Path, run: dict) -> Path:
    """The event folder of a training: named by its experiment and fold below the model's version folder."""
    fold = f"-fold{run['fold']}" if run.get("fold") is not None else ""
    return Path(model_folder) / "tensorboard" / f"{run['experiment']}{fold}"


class TrainingBoard:
    """Writes a training's epochs to TensorBoard from ``start`` on (a resume replays those before)."""

    def __init__(self, folder: str | Path, start: int = 0):
        from torch.utils.tensorboard import SummaryWriter

        self.folder, self.start = Path(folder), start
        self.writer = SummaryWriter(str(self.folder), purge_step=start if start else None)

    def epoch(self, row: dict, scores: dict | None = None, overlay: np.ndarray | None = None) -> None:
        """One finished epoch: its row of losses.tsv, its validation scores and overlay when monitored."""
        step = int(row["epoch"])
        if step < self.start:
            return
        for key, tag in SCALARS.items():
            self.writer.add_scalar(tag, float(row[key]), step)
        for key, tag in VALIDATION.items():
            if scores:
                self.writer.add_scalar(tag, float(scores[key]), step)
        if overlay is not None:
            self.writer.add_image(OVERLAY, overlay, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> TrainingBoard:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()
