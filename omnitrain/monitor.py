"""Watching a training: validation loss and AP at monitored epochs, the best checkpoint, early stopping.

Omnipose 1.1.4 scores nothing during training (a ``test_dir`` is loaded and never used). Every
``monitor.every`` epochs and at the last epoch, :class:`Monitor` scores the network as it is at the end
of that epoch on the validation images (training source images set aside by the split, never packed or
trained on):

- validation loss: Omnipose's own loss (``CellposeModel.loss_fn``, the quantity of its "Epoch Loss")
  on fixed crops of the validation images, one at a time, without augmentation: the images are normalised as
  ``train`` does (``transforms.reshape_train_test``), cut into a grid of ``tyx`` crops, and their
  labels turned into Omnipose's training targets by its own ``masks_to_flows_batch`` and
  ``batch_labels``;
- validation AP@0.5 and mean AP (0.5-0.95): ``CellposeModel.eval`` on the whole validation images,
  scored by :mod:`omnitrain.metrics` (equal to cellpose_omni's average_precision).

The random states (torch, numpy, Python) are restored afterwards, so a monitored training draws the
same crops and weights as an unmonitored one. Nothing here copies Omnipose's loop: the scores are
computed from its functions, between its epochs.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .discovery import discover
from .imageio import read_array
from .labels import read_links
from .metrics import score_image

#: Higher is better for AP, lower for the loss.
BETTER = {"ap50": np.greater, "mean_ap": np.greater, "val_loss": np.less}
#: Omnipose's eval thresholds for the validation AP. Fixed on purpose: the held-out evaluation's own
#: thresholds (evaluation.*) are not training settings, and changing them must not retrain a model.
#: model_loaded: without it, eval of a model made from a pretrained file loads that file into the network
#: first (CellposeModel.eval), which would undo the training of a fine-tuning run.
EVAL_KWARGS = {"mask_threshold": 0.0, "flow_threshold": 0.4, "net_avg": False, "model_loaded": True}
COLUMNS = ("val_loss", "val_ap50", "val_mean_ap")


@dataclass
class ValidationSet:
    """Validation images (channels first when nchan > 1, as prepared) and their label matrices."""

    images: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    links: list[set | None] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


def load_validation_set(folder: str | Path) -> ValidationSet:
    """The monitor_set folder (<base>.tif + <base>_masks.tif [+ _links.txt]); empty when it has none."""
    vs = ValidationSet()
    for pair in discover(folder).pairs:
        vs.images.append(read_array(pair.image))
        vs.labels.append(read_array(pair.label))
        links = read_links(pair.links)
        vs.links.append(set(links) if links else None)
        vs.names.append(pair.base)
    return vs


def grid_starts(length: int, size: int) -> list[int]:
    """Starts of crops of ``size`` that cover ``length`` (the last one flush with the end; [0] if shorter)."""
    if length <= size:
        return [0]
    n = -(-length // size)
    return sorted({round(i * (length - size) / (n - 1)) for i in range(n)})


def validation_crops(images: list[np.ndarray], labels: list[np.ndarray], tyx) -> tuple[np.ndarray, ...]:
    """Every image (nchan, *spatial) and label cut into a grid of ``tyx`` crops, zero-padded where smaller:
    (crops (n, nchan, *tyx) float32, label crops (n, *tyx)).

    Crops with fewer than two label values are left out, as Omnipose never trains on such a crop (it
    draws another); its loss on an empty crop is not meaningful (it reaches millions)."""
    crops, lab_crops = [], []
    for img, lab in zip(images, labels, strict=True):
        spatial = lab.shape
        pad = [(0, max(t - s, 0)) for s, t in zip(spatial, tyx, strict=True)]
        img = np.pad(img, [(0, 0), *pad])
        lab = np.pad(lab, pad)
        for starts in np.ndindex(*[len(grid_starts(s, t)) for s, t in zip(lab.shape, tyx, strict=True)]):
            at = [grid_starts(s, t)[i] for s, t, i in zip(lab.shape, tyx, starts, strict=True)]
            window = tuple(slice(a, a + t) for a, t in zip(at, tyx, strict=True))
            if len(np.unique(lab[window])) < 2:
                continue
            crops.append(img[(slice(None), *window)])
            lab_crops.append(lab[window])
    if not crops:
        return np.zeros((0, 1, *tyx), np.float32), np.zeros((0, *tyx), np.int64)
    return np.stack(crops).astype(np.float32), np.stack(lab_crops)


def spread_sample(n: int, limit: int | None) -> np.ndarray:
    """Indices of at most ``limit`` of ``n`` items, evenly spread (first and last included), in order; all
    of them when ``limit`` is None or not smaller. Fixed, so every scoring sees the same crops."""
    if limit is None or n <= limit:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, limit)).astype(int))


def prepared_images(model, vs: ValidationSet, channel_axis) -> list[np.ndarray]:
    """The validation images as Omnipose's ``train`` prepares its training images (shape, normalisation)."""
    from cellpose_omni import transforms

    data = [np.asarray(im, dtype=np.float32) for im in vs.images]
    labels = [np.asarray(lab) for lab in vs.labels]
    out = transforms.reshape_train_test(data, labels, None, None, None, channel_axis, True, model.dim, True)
    return out[0]


def validation_loss(model, crops: np.ndarray, label_crops: np.ndarray) -> float:
    """Omnipose's training loss (its ``raw_loss``, the logged "Epoch Loss") of the network on fixed crops,
    without augmentation or a gradient step: the mean over crops of each crop's loss.

    One crop at a time because Omnipose's loss terms are normalised over a whole batch (the same 4 crops
    score 2.27 one by one, 11.06 in pairs and 9.08 together): so the value depends neither on batch_size
    nor on how many validation crops there are."""
    import omnipose
    import torch

    tyx = tuple(label_crops.shape[1:])
    if not hasattr(model, "WeightedMSE"):  # Omnipose's train() sets its loss terms up; outside it, do so
        model._set_criterion()
    total, n = 0.0, 0
    model.net.eval()
    with torch.no_grad():
        for start in range(len(crops)):
            x, lab = crops[start : start + 1], label_crops[start : start + 1]
            out = omnipose.core.masks_to_flows_batch(
                lab, [None] * len(lab), device=model.device, omni=True, dim=model.dim
            )
            fields, slices = out[:-4], out[-4]
            masks, bd, t, mu = [torch.stack([f[(Ellipsis, *slc)] for slc in slices]) for f in fields]
            lbl = omnipose.core.batch_labels(
                masks, bd, t, mu, tyx, dim=model.dim, nclasses=model.nclasses, device=model.device
            )
            y = model.net(model._to_device(x))[0]
            # raw_loss does not include ext_loss (training passes its symmetry loss there); a zero tensor
            # is what Omnipose's own step passes without symmetry (an int 0 fails in its scaling).
            _, raw = model.loss_fn(lbl, y, ext_loss=torch.zeros([], device=model.device))
            total, n = total + float(raw) * len(x), n + len(x)
    return total / max(n, 1)


def validation_ap(
    model, vs: ValidationSet, channel_axis, diameter: float
) -> tuple[float, float, list[np.ndarray]]:
    """Validation AP@0.5 and mean AP (0.5-0.95) over the validation images' objects, from Omnipose's eval,
    and the masks it found in each image.

    With ``diameter`` 0 (no rescaling in training) images are segmented at their own scale; otherwise
    each at its true median diameter (the validation labels are known), as a size model would aim to."""
    from cellpose_omni import utils

    rows_all, found = [], []
    for image, labels in zip(vs.images, vs.labels, strict=True):
        diam = float(utils.diameters(labels, omni=True)[0]) if diameter else None
        masks = model.eval(
            image, channels=None, channel_axis=channel_axis, omni=True, diameter=diam, **EVAL_KWARGS
        )[0]
        rows, _ = score_image(np.asarray(labels), np.asarray(masks))
        rows_all.append(rows)
        found.append(np.asarray(masks))
    # Summed over images (as the held-out summary does): AP = tp / (tp + fp + fn) at each threshold.
    aps = []
    for per_threshold in zip(*rows_all, strict=True):
        tp, fp, fn = (sum(r[k] for r in per_threshold) for k in ("tp", "fp", "fn"))
        aps.append(tp / (tp + fp + fn) if tp + fp + fn else 1.0)
    return float(aps[0]), float(np.mean(aps)), found


def _random_states():
    import torch

    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_random_states(states) -> None:
    import torch

    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


class Monitor:
    """Scores monitored epochs, keeps the best weights, and decides early stopping.

    The best epoch's weights are kept in memory and in the checkpoint (:meth:`state`, with the history
    and the patience count; omnitrain/resume.py), and written to ``best_path`` in Omnipose's format
    (a state_dict, as ``net.save_model`` writes it) at each improvement and by :meth:`write_best` at the
    end: Snakemake removes a job's outputs before a rerun, so the file alone would not survive a resume.
    """

    def __init__(
        self,
        model,
        vs: ValidationSet,
        *,
        every: int,
        n_epochs: int,
        metric: str,
        patience: int | None,
        tyx,
        channel_axis,
        diameter: float,
        best_path: str | Path,
        log: logging.Logger,
        loss_crops: int | None = None,
        on_scored: Callable[[], None] | None = None,
    ):
        self.model, self.vs, self.every, self.n_epochs = model, vs, every, n_epochs
        self.metric, self.patience = metric, patience
        self.channel_axis, self.diameter = channel_axis, diameter
        self.best_path, self.log = Path(best_path), log
        if not vs.images:
            raise ValueError("no validation image to monitor training with (the monitor_set folder is empty)")
        self.on_scored = on_scored  # e.g. redraw the learning curve
        self.images = prepared_images(model, vs, channel_axis)
        crops, label_crops = validation_crops(self.images, vs.labels, tuple(tyx))
        if not len(crops):
            raise ValueError(f"no crop of {tuple(tyx)} px of the validation images holds a cell")
        # The loss costs a forward pass per crop: a fixed sample of them bounds a scoring's cost whatever
        # the size of the validation images (monitor.loss_crops).
        keep = spread_sample(len(crops), loss_crops)
        self.crops, self.label_crops = crops[keep], label_crops[keep]
        self.grid_crops = len(crops)
        self.history: list[dict] = []
        self.best: dict | None = None
        self.best_state: dict | None = None  # the best epoch's weights (CPU copies)
        self.bad = 0  # monitored epochs since the best one
        self.stopped_early_at: int | None = None
        self.resumed_after = -1  # last epoch of the checkpoint a resumed run restored
        self.first_masks: np.ndarray | None = None  # what the latest scoring found in the first image

    def first_found(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(the first validation image, the objects the latest scoring found in it); None before a scoring."""
        return None if self.first_masks is None else (self.vs.images[0], self.first_masks)

    def due(self, epoch: int) -> bool:
        return (epoch + 1) % self.every == 0 or epoch == self.n_epochs - 1

    def on_epoch(self, epoch: int, loss: float) -> dict | None:
        """After each epoch (omnitrain.epochs.EpochRecorder): its validation scores, or None."""
        if epoch <= self.resumed_after:  # replayed for its data order: scores from the checkpoint
            return next((h for h in self.history if h["epoch"] == epoch), None)
        if not self.due(epoch):
            return None
        row = self.score(epoch, loss)
        if self.on_scored is not None:
            self.on_scored()
        return row

    def score(self, epoch: int, train_loss: float) -> dict:
        """Score the network after ``epoch`` (0-based), update the best weights and the patience count."""
        states = _random_states()
        try:
            val_loss = validation_loss(self.model, self.crops, self.label_crops)
            ap50, mean_ap, found = validation_ap(self.model, self.vs, self.channel_axis, self.diameter)
            self.first_masks = found[0]
        finally:
            _restore_random_states(states)
            self.model.net.train()
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss}
        row.update(ap50=ap50, mean_ap=mean_ap)
        self.history.append(row)
        value = row[self.metric]
        improved = self.best is None or bool(BETTER[self.metric](value, self.best[self.metric]))
        if improved:
            from .resume import cpu_copy

            net = self.model.net.module if hasattr(self.model.net, "module") else self.model.net
            self.best, self.bad, self.best_state = dict(row), 0, cpu_copy(net.state_dict())
            self.write_best()
        else:
            self.bad += 1
        mark = "  (best so far)" if improved else f"  (best: epoch {self.best['epoch'] + 1})"
        self.log.info(
            f"validation at epoch {epoch + 1}: loss {val_loss:.5f}  AP@0.5 {ap50:.3f}  mean AP {mean_ap:.3f}"
            f" ({len(self.vs.images)} image(s), {len(self.crops)} crop(s)){mark}"
        )
        if self.should_stop() and epoch < self.n_epochs - 1:
            self.stopped_early_at = epoch
            self.log.info(
                f"early stopping: {self.bad} monitored epoch(s) without a better {self.metric}"
                f" (monitor.patience {self.patience}); best epoch {self.best['epoch'] + 1}"
            )
        return row

    def should_stop(self) -> bool:
        return self.patience is not None and self.bad >= self.patience

    def write_best(self) -> None:
        """The best weights to ``best_path`` (written aside, then renamed: never half a file)."""
        import torch

        tmp = self.best_path.with_name(f".{self.best_path.name}.tmp")
        torch.save(self.best_state, tmp)
        os.replace(tmp, self.best_path)

    def state(self) -> dict:
        return {
            "history": [dict(r) for r in self.history],
            "best": dict(self.best) if self.best else None,
            "best_state": self.best_state,
            "bad": self.bad,
            "stopped_early_at": self.stopped_early_at,
        }

    def restore(self, state: dict, upto: int) -> None:
        """The state of a checkpoint whose last epoch is ``upto`` (later rows are recomputed)."""
        self.history = [dict(r) for r in state["history"] if r["epoch"] <= upto]
        self.resumed_after = upto
        self.best = dict(state["best"]) if state["best"] else None
        self.best_state = state["best_state"]
        self.bad = int(state["bad"])
        self.stopped_early_at = state.get("stopped_early_at")

    def summary(self) -> dict:
        """What the model card records."""
        return {
            "validation_images": self.vs.names,
            "validation_crops": len(self.crops),
            "validation_grid_crops": self.grid_crops,
            "every": self.every,
            "metric": self.metric,
            "patience": self.patience,
            "best_epoch": self.best["epoch"] + 1 if self.best else None,
            "best_score": self.best[self.metric] if self.best else None,
            "best": self.best,
            "stopped_early_at_epoch": None if self.stopped_early_at is None else self.stopped_early_at + 1,
            "history": self.history,
        }
