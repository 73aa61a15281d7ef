"""Instance-segmentation scores: the Cellpose/Omnipose definitions, computed from sparse overlaps.

``match`` gives, at each IoU threshold, the true positives (one-to-one matches with IoU >= threshold),
false positives and false negatives, and AP = tp / (tp + fp + fn), the same numbers as
``cellpose_omni.metrics.average_precision`` on sequential labels (a test checks it). Speed comes from
two facts instead of a dense Hungarian assignment per threshold: overlaps are counted only over
foreground pixels, and a pair with IoU > 0.5 can have no rival (each object covers more than half of
the other), so above 0.5 the matches are simply the pairs over the threshold. At exactly 0.5 rivals are
possible and a maximum bipartite matching settles them, which is what the Hungarian assignment with
Cellpose's costs maximises.

Labels are relabelled 1..N first: Omnipose's metric counts objects by the maximum label value, so
non-consecutive ids would count as missing objects there. Where a score is 0/0 it is defined (never
NaN): 1.0 when there is nothing to find and nothing was found, else 0.0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching
from skimage.segmentation import relabel_sequential

#: IoU thresholds of the report: 0.50, 0.55, ..., 0.95.
THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


@dataclass
class Overlaps:
    """Sparse overlaps of two sequential label images: pairs (t, p) >= 1 with their pixel counts."""

    n_true: int
    n_pred: int
    t: np.ndarray
    p: np.ndarray
    overlap: np.ndarray
    area_true: np.ndarray  # index 0 = background
    area_pred: np.ndarray

    @property
    def iou(self) -> np.ndarray:
        # Same arithmetic as cellpose_omni.metrics._intersection_over_union (float64, union by areas).
        return self.overlap / (self.area_pred[self.p] + self.area_true[self.t] - self.overlap)


def sequential(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 1..N (0 stays background)."""
    lab = np.asarray(labels)
    if lab.dtype.kind == "f":
        lab = np.rint(lab).astype(np.int64)
    return relabel_sequential(lab.astype(np.int64, copy=False))[0]


@njit(cache=True)
def _table(t: np.ndarray, p: np.ndarray, nt: int, np_: int) -> np.ndarray:
    """Counts of every (true, pred) label pair. Labels come in runs along rows, so a run is counted
    in a register and written once (far fewer scattered writes than one per pixel)."""
    table = np.zeros((nt + 1, np_ + 1), np.int64)
    if t.size == 0:
        return table
    a, b, run = t[0], p[0], 0
    for i in range(t.size):
        x, y = t[i], p[i]
        if x == a and y == b:
            run += 1
        else:
            table[a, b] += run
            a, b, run = x, y, 1
    table[a, b] += run
    return table


def overlaps(true: np.ndarray, pred: np.ndarray) -> Overlaps:
    """Pixel overlaps of every touching (true, pred) pair; labels are renumbered 1..N on the way.

    One compiled pass over the pixels (numba, which Omnipose's own metric uses too) fills the table
    of raw label pairs; empty rows and columns are then dropped, which renumbers both images 1..N.
    numpy's bincount or unique on pair keys is several times slower on 512 x 512 images.
    """
    t, p = np.asarray(true), np.asarray(pred)
    if t.dtype.kind not in "iu" or p.dtype.kind not in "iu":
        t, p = sequential(t), sequential(p)
    t = np.ascontiguousarray(t).ravel()
    p = np.ascontiguousarray(p).ravel()
    top_t, top_p = int(t.max(initial=0)), int(p.max(initial=0))
    if (top_t + 1) * (top_p + 1) > 16_000_000:  # huge or sparse ids: renumber first
        t, p = sequential(t), sequential(p)
        top_t, top_p = int(t.max(initial=0)), int(p.max(initial=0))
    table = _table(t, p, top_t, top_p)
    rows = np.concatenate(([0], np.flatnonzero(table[1:].any(axis=1)) + 1))
    cols = np.concatenate(([0], np.flatnonzero(table[:, 1:].any(axis=0)) + 1))
    table = table[np.ix_(rows, cols)]
    tt, pp = np.nonzero(table[1:, 1:])
    return Overlaps(
        len(rows) - 1,
        len(cols) - 1,
        tt + 1,
        pp + 1,
        table[tt + 1, pp + 1],
        table.sum(axis=1),
        table.sum(axis=0),
    )


def true_positives(ov: Overlaps, threshold: float, iou: np.ndarray | None = None) -> int:
    """Number of one-to-one matches with IoU >= threshold (Cellpose's _true_positive)."""
    iou = ov.iou if iou is None else iou
    hit = iou >= threshold
    if threshold > 0.5:
        return int(hit.sum())  # IoU > 0.5 has no rival: the pairs over the threshold are the matches
    t, p = ov.t[hit], ov.p[hit]
    if len(np.unique(t)) == len(t) and len(np.unique(p)) == len(p):
        return int(len(t))
    graph = csr_matrix((np.ones(len(t)), (t - 1, p - 1)), shape=(ov.n_true, ov.n_pred))
    return int((maximum_bipartite_matching(graph, perm_type="column") >= 0).sum())


def _ratio(num: float, den: float, perfect: bool) -> float:
    return float(num / den) if den else (1.0 if perfect else 0.0)


def scores_of(tp: int, fp: int, fn: int) -> dict:
    """AP, precision, recall and F1 of match counts, with 0/0 defined (see the module docstring)."""
    nothing = fp == 0 and fn == 0
    return {
        "ap": _ratio(tp, tp + fp + fn, nothing),
        "precision": _ratio(tp, tp + fp, fn == 0),
        "recall": _ratio(tp, tp + fn, fp == 0),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, nothing),
    }


def match(
    true: np.ndarray, pred: np.ndarray, thresholds=THRESHOLDS, ov: Overlaps | None = None
) -> list[dict]:
    """tp, fp, fn, ap, precision, recall and f1 at each threshold, for one image."""
    ov = ov or overlaps(true, pred)
    iou = ov.iou
    rows = []
    for th in thresholds:
        tp = true_positives(ov, th, iou) if ov.n_pred and ov.n_true else 0
        fp, fn = ov.n_pred - tp, ov.n_true - tp
        rows.append({"iou_threshold": th, "tp": tp, "fp": fp, "fn": fn, **scores_of(tp, fp, fn)})
    return rows


def aggregated_jaccard_index(true: np.ndarray, pred: np.ndarray, ov: Overlaps | None = None) -> float:
    """Omnipose's AJI: overlap of the Hungarian-matched pairs / union of all foreground.

    The assignment uses Cellpose's costs, -(IoU >= 0.5) - IoU / (2 n_min), on the same IoU matrix
    as cellpose_omni.metrics.aggregated_jaccard_index, so the numbers are equal.
    """
    ov = ov or overlaps(true, pred)
    union = int(ov.area_true[1:].sum() + ov.area_pred[1:].sum() - ov.overlap.sum())
    if union == 0:
        return 1.0
    if not ov.n_true or not ov.n_pred:
        return 0.0
    iou = np.zeros((ov.n_true, ov.n_pred))
    iou[ov.t - 1, ov.p - 1] = ov.iou
    n_min = min(iou.shape)
    rows, cols = linear_sum_assignment(-(iou >= 0.5).astype(float) - iou / (2 * n_min))
    dense = np.zeros_like(iou, dtype=np.int64)
    dense[ov.t - 1, ov.p - 1] = ov.overlap
    return float(dense[rows, cols].sum() / union)


def panoptic_quality(
    true: np.ndarray, pred: np.ndarray, threshold: float = 0.5, ov: Overlaps | None = None
) -> float:
    """PQ = sum of matched IoUs / (tp + fp/2 + fn/2), matches at IoU >= threshold."""
    ov = ov or overlaps(true, pred)
    iou = ov.iou
    hit = iou >= threshold
    # Above 0.5 matches are unique; at exactly 0.5 keep one pair per object, the highest IoU first.
    order = np.argsort(-iou[hit], kind="stable")
    used_t, used_p, total, tp = set(), set(), 0.0, 0
    for t, p, v in zip(ov.t[hit][order], ov.p[hit][order], iou[hit][order], strict=True):
        if t not in used_t and p not in used_p:
            used_t.add(t)
            used_p.add(p)
            total += v
            tp += 1
    fp, fn = ov.n_pred - tp, ov.n_true - tp
    return _ratio(total, tp + 0.5 * fp + 0.5 * fn, fp == 0 and fn == 0)


def score_image(true: np.ndarray, pred: np.ndarray, thresholds=THRESHOLDS) -> tuple[list[dict], dict]:
    """Per-threshold rows and per-image scalars (mean AP, AJI, PQ, counts). A shape mismatch is scored
    as every object missed and every prediction false (and said in ``note``)."""
    note = ""
    if true.shape != pred.shape:
        note = f"shape mismatch: true {true.shape}, predicted {pred.shape}; scored as all missed"
        n_pred_real = int(len(np.unique(pred[pred > 0])))
        pred = np.zeros(true.shape, dtype=np.int64)
    ov = overlaps(true, pred)
    rows = match(true, pred, thresholds, ov)
    if note:
        for r in rows:
            r["fp"] += n_pred_real
            r.update(scores_of(r["tp"], r["fp"], r["fn"]))
    scalars = {
        "n_true": ov.n_true,
        "n_pred": n_pred_real if note else ov.n_pred,
        "mean_ap": float(np.mean([r["ap"] for r in rows])),
        "ap50": rows[0]["ap"] if thresholds and thresholds[0] == 0.5 else float("nan"),
        "aji": aggregated_jaccard_index(true, pred, ov),
        "pq": panoptic_quality(true, pred, ov=ov),
        "note": note,
    }
    return rows, scalars
