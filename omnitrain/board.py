"""A training's live view in TensorBoard (``monitor.tensorboard``): one run per training, in its model's
version folder (``<results>/models/<version>/tensorboard``), so that ``tensorboard --logdir results/`` lists
every training by its version.

Per finished epoch (step = the epoch's 0-based number, as in losses.tsv): ``train/loss``,
``train/learning_rate`` and ``train/seconds_per_epoch``; at monitored epochs ``validation/loss``,
``validation/AP@0.5``, ``validation/mean_AP`` and the image ``validation/overlay`` (the first validation image
with the objects the network finds, as the held-out overlays draw them). Written through torch's own
SummaryWriter and flushed every epoch. Each part of a training writes a new event file in the same folder,
which starts with a purge mark (``purge_step``) at its first new epoch (0 when it starts over): TensorBoard
then hides what a killed part had written from that epoch on, so no step is shown twice; epochs a resume
replays from the checkpoint are not written again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: TensorBoard's tags, by the per-epoch table's column (omnitrain/epochs.py).
SCALARS = {"loss": "train/loss", "learning_rate": "train/learning_rate", "seconds": "train/seconds_per_epoch"}
VALIDATION = {"val_loss": "validation/loss", "ap50": "validation/AP@0.5", "mean_ap": "validation/mean_AP"}
OVERLAY = "validation/overlay"


def overlay(image: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """RGB uint8: the objects filled in colours over the grey image (a volume: its middle plane). Drawn here,
    not with the held-out overlays' code (omnitrain/segment_image.py): the model's version covers the code the
    training imports, and a change to how evaluation draws must not retrain models."""
    from skimage.color import label2rgb

    grey = np.asarray(image, dtype=np.float64)
    grey = grey[0] if grey.ndim == masks.ndim + 1 else grey  # channels first: the first channel
    if masks.ndim == 3:
        middle = masks.shape[0] // 2
        grey, masks = grey[middle], masks[middle]
    low, high = np.percentile(grey, (1, 99))
    grey = np.clip((grey - low) / (high - low), 0, 1) if high > low else np.zeros_like(grey)
    rgb = label2rgb(masks, image=grey, alpha=0.35, bg_label=0, image_alpha=1.0)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def run_folder(model_folder: str | Path) -> Path:
    """The event folder of a training, in its model's version folder. Named by the version alone: experiments
    whose settings are equal share one training, and renaming an experiment must not retrain it (the registry
    and the leaderboard say which experiment and fold each version is)."""
    return Path(model_folder) / "tensorboard"


class TrainingBoard:
    """Writes a training's epochs to TensorBoard from ``start`` on (a resume replays those before)."""

    def __init__(self, folder: str | Path, start: int = 0):
        from torch.utils.tensorboard import SummaryWriter

        self.folder, self.start = Path(folder), start
        # purge_step, also 0: a training that starts over hides what an earlier, killed part had written
        self.writer = SummaryWriter(str(self.folder), purge_step=start)

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
