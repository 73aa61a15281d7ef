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

from .labels import relabel

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


def _make_runs(per: int, rep: int):
    """A compiled pass finding the runs of equal (true, pred) label pairs, for labels of 64/per bits.

    The pass reads the pixels as 64-bit words of ``per`` pixels: a word equal to the current pair
    repeated (``rep``: 0x0001000100010001 for 16-bit labels) extends the run by ``per`` pixels at once,
    which covers most of an image (background, and rows through one object). ``per`` and ``rep`` are
    compile-time constants (closure variables), so the per-pixel loop of a word is unrolled.
    """
    rep = np.uint64(rep)

    @njit(cache=True)
    def runs(t, p, tw, pw):
        # At most one run per pixel: np.empty reserves the memory, only the pages used are touched.
        n = t.size
        ra, rb, rc = np.empty(n + 1, np.int64), np.empty(n + 1, np.int64), np.empty(n + 1, np.int64)
        if n == 0:
            return ra[:0], rb[:0], rc[:0], 0, 0
        k, top_a, top_b = 0, 0, 0
        a, b, run = np.int64(t[0]), np.int64(p[0]), 0
        wa, wb = np.uint64(a) * rep, np.uint64(b) * rep
        for w in range(tw.size):
            if tw[w] == wa and pw[w] == wb:
                run += per
                continue
            for i in range(w * per, w * per + per):
                x, y = np.int64(t[i]), np.int64(p[i])
                if x != a or y != b:
                    ra[k], rb[k], rc[k] = a, b, run
                    k += 1
                    top_a, top_b = max(top_a, a), max(top_b, b)
                    a, b, run = x, y, 0
                run += 1
            wa, wb = np.uint64(a) * rep, np.uint64(b) * rep
        # The pixels after the last whole word: the same body as above, written out again on purpose
        # (a shared @njit(inline="always") helper measured 2.5x instead of 5x in bench_metrics.py).
        for i in range(tw.size * per, n):
            x, y = np.int64(t[i]), np.int64(p[i])
            if x != a or y != b:
                ra[k], rb[k], rc[k] = a, b, run
                k += 1
                top_a, top_b = max(top_a, a), max(top_b, b)
                a, b, run = x, y, 0
            run += 1
        ra[k], rb[k], rc[k] = a, b, run
        return ra[: k + 1], rb[: k + 1], rc[: k + 1], max(top_a, a), max(top_b, b)

    return runs


# One pass per label width (bytes per pixel): 16-bit labels, 4 pixels per word; 32-bit, 2; 64-bit, 1.
_RUNS = {2: _make_runs(4, 0x0001000100010001), 4: _make_runs(2, 0x0000000100000001), 8: _make_runs(1, 1)}


@njit(cache=True)
def _table(ra, rb, rc, nt: int, np_: int) -> np.ndarray:
    """Counts of every (true, pred) label pair, from the runs."""
    table = np.zeros((nt + 1, np_ + 1), np.int64)
    for i in range(ra.size):
        table[ra[i], rb[i]] += rc[i]
    return table


@njit(cache=True)
def _sparse(table: np.ndarray):
    """The table's touching pairs with labels renumbered 1..N (empty rows and columns dropped):
    n_true, n_pred, t, p, overlap, area_true, area_pred (the fields of Overlaps)."""
    area_t, area_p = table.sum(axis=1), table.sum(axis=0)
    new_t, new_p = np.zeros(area_t.size, np.int64), np.zeros(area_p.size, np.int64)
    nt = np_ = pairs = 0
    for i in range(1, area_t.size):
        if area_t[i]:
            nt += 1
            new_t[i] = nt
            pairs += np.count_nonzero(table[i, 1:])
    for j in range(1, area_p.size):
        if area_p[j]:
            np_ += 1
            new_p[j] = np_
    t, p, overlap = np.empty(pairs, np.int64), np.empty(pairs, np.int64), np.empty(pairs, np.int64)
    at, ap = np.zeros(nt + 1, np.int64), np.zeros(np_ + 1, np.int64)
    at[0], ap[0] = area_t[0], area_p[0]
    k = 0
    for i in range(1, area_t.size):
        if not area_t[i]:
            continue
        at[new_t[i]] = area_t[i]
        for j in range(1, area_p.size):
            if table[i, j]:
                t[k], p[k], overlap[k] = new_t[i], new_p[j], table[i, j]
                k += 1
    for j in range(1, area_p.size):
        if area_p[j]:
            ap[new_p[j]] = area_p[j]
    return nt, np_, t, p, overlap, at, ap


def _pair_runs(t: np.ndarray, p: np.ndarray):
    """Runs of two flat label arrays of one unsigned dtype (8-bit labels are widened to 16)."""
    if t.itemsize == 1:
        t, p = t.astype(np.uint16), p.astype(np.uint16)
    per = 8 // t.itemsize
    whole = t.size // per * per
    return _RUNS[t.itemsize](t, p, t[:whole].view(np.uint64), p[:whole].view(np.uint64))


def overlaps(true: np.ndarray, pred: np.ndarray) -> Overlaps:
    """Pixel overlaps of every touching (true, pred) pair; labels are renumbered 1..N on the way.

    One compiled pass over the pixels (numba, which Omnipose's own metric uses too) finds the runs of
    equal label pairs along rows, comparing 64-bit words of several pixels at once, and the largest
    labels; the table of pairs is filled from the runs, and its empty rows and columns are dropped
    (compiled too: a dozen small numpy calls cost as much as the pass over the pixels), which
    renumbers both images 1..N. numpy's bincount or unique on pair keys is several times slower
    on 512 x 512 images. (Written here because no library counts label-pair overlaps this way; skimage's
    contingency tables go through scipy.sparse and are slower than Omnipose's own loop.)
    """
    t, p = np.asarray(true), np.asarray(pred)
    if t.shape != p.shape:
        raise ValueError(f"label images differ in shape: {t.shape} and {p.shape}")
    wide = np.dtype(np.uint64) in (t.dtype, p.dtype)  # the pass reads labels as signed 64-bit
    if wide and max(int(t.max(initial=0)), int(p.max(initial=0))) >= 2**62:
        raise ValueError("labels of 2**62 and above are not supported: renumber them (1..N)")
    if t.dtype.kind != "u" or p.dtype.kind != "u":  # floats, or signed ints that might be negative
        if min(t.min(initial=0), p.min(initial=0)) < 0:
            raise ValueError("negative labels: 0 is background and objects are 1..N")
        t, p = relabel(t)[0], relabel(p)[0]
    common = np.dtype(f"u{max(t.itemsize, p.itemsize)}")
    t = np.ascontiguousarray(t, dtype=common).ravel()
    p = np.ascontiguousarray(p, dtype=common).ravel()
    ra, rb, rc, top_t, top_p = _pair_runs(t, p)
    if (top_t + 1) * (top_p + 1) > 16_000_000:  # huge or sparse ids: renumber first
        t, p = relabel(t)[0].astype(np.uint64), relabel(p)[0].astype(np.uint64)
        ra, rb, rc, top_t, top_p = _pair_runs(t, p)
    return Overlaps(*_sparse(_table(ra, rb, rc, top_t, top_p)))


def true_positives(ov: Overlaps, threshold: float, iou: np.ndarray | None = None) -> int:
    """Number of one-to-one matches with IoU >= threshold (Cellpose's _true_positive)."""
    iou = ov.iou if iou is None else iou
    hit = iou >= threshold
    if threshold > 0.5:
        return int(hit.sum())  # IoU > 0.5 has no rival: the pairs over the threshold are the matches
    t, p = ov.t[hit], ov.p[hit]
    if not len(t) or (np.bincount(t).max() == 1 and np.bincount(p).max() == 1):
        return int(len(t))  # no object in two pairs: no rivals
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
    n_true, n_pred = int(ov.n_true), int(ov.n_pred)
    # Above 0.5 the matches are the pairs over the threshold: count them for every threshold at once.
    over = (len(iou) - np.searchsorted(np.sort(iou), thresholds, side="left")).tolist()
    rows = []
    for th, n_over in zip(thresholds, over, strict=True):
        tp = n_over if th > 0.5 else true_positives(ov, th, iou)
        fp, fn = n_pred - tp, n_true - tp
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
