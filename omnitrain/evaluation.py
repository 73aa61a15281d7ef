"""Held-out evaluation: score tables from label folders, and the pictures for people."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.segmentation import find_boundaries

from .metrics import THRESHOLDS, overlaps, score_image, scores_of

PER_THRESHOLD = ["image", "iou_threshold", "tp", "fp", "fn", "ap", "precision", "recall", "f1"]
PER_IMAGE = ["image", "n_true", "n_pred", "mean_ap", "ap50", "aji", "pq", "note"]
SUMMARY = [
    "iou_threshold", "images", "tp", "fp", "fn", "ap", "ap_low", "ap_high", "precision", "recall", "f1",
    "mean_image_ap",
]  # fmt: skip
#: The held-out scores' intervals: 95 % percentile bootstrap over held-out images, 2000 resamples and a fixed
#: seed (the same tables give the same interval on every run).
CONFIDENCE, RESAMPLES, BOOTSTRAP_SEED = 0.95, 2000, 0
INTERVAL_KEYS = ("ap50_low", "ap50_high", "mean_ap_low", "mean_ap_high")

#: Overlay colours (RGB, 0-1): matched prediction, false positive, missed true object.
TP_COLOUR, FP_COLOUR, FN_COLOUR = (0.1, 0.85, 0.2), (1.0, 0.15, 0.1), (1.0, 0.85, 0.0)
#: Where a volume's overlay cuts it: at a quarter, half and three quarters of the z range its objects
#: occupy, so the planes go through cells even in a stack with empty planes above and below them.
VOLUME_PLANES = (0.25, 0.5, 0.75)
#: White columns between the planes of a volume's overlay, so that one plane's edge is not read as the next's.
PLANE_GAP = 4


def score(
    pairs: list[tuple[str, np.ndarray, np.ndarray]],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Scores of (name, true labels, predicted labels) pairs.

    Returns the per-image-per-threshold table, the per-image table, the summary per threshold (counts
    pooled over all images, their AP's 95 % bootstrap interval, and the mean of the per-image AP) and the
    overall scores (with ``<score>_low``/``<score>_high`` for AP@0.5 and mean AP).
    """
    rows, images = [], []
    for name, true, pred in pairs:
        per, scalars = score_image(true, pred)
        rows += [{"image": name, **r} for r in per]
        images.append({"image": name, **scalars})
    per_threshold = pd.DataFrame(rows, columns=PER_THRESHOLD)
    per_image = pd.DataFrame(images, columns=PER_IMAGE)
    summary = []
    if not pairs:  # nothing held out: empty tables and null scores, rather than a vacuous 1.0
        empty = pd.DataFrame(columns=SUMMARY)
        overall = dict.fromkeys(("mean_ap", "ap50", "ap75", "aji", "pq", *INTERVAL_KEYS))
        return (
            per_threshold,
            per_image,
            empty,
            {"images": 0, "true_objects": 0, "predicted_objects": 0, **overall},
        )
    intervals = bootstrap_intervals(per_threshold)
    for th, low, high in zip(THRESHOLDS, *intervals["ap"], strict=True):
        sub = per_threshold[per_threshold["iou_threshold"] == th]
        tp, fp, fn = int(sub["tp"].sum()), int(sub["fp"].sum()), int(sub["fn"].sum())
        summary.append(
            {
                "iou_threshold": th,
                "images": len(sub),
                "tp": tp,
                "fp": fp,
                "fn": fn,
                **scores_of(tp, fp, fn),
                "ap_low": low,
                "ap_high": high,
                "mean_image_ap": float(sub["ap"].mean()) if len(sub) else 0.0,
            }
        )
    summary = pd.DataFrame(summary, columns=SUMMARY)
    overall = {
        "images": len(per_image),
        "true_objects": int(per_image["n_true"].sum()) if len(per_image) else 0,
        "predicted_objects": int(per_image["n_pred"].sum()) if len(per_image) else 0,
        "mean_ap": float(summary["ap"].mean()),
        "ap50": float(summary["ap"].iloc[0]),
        "ap75": float(summary.loc[summary["iou_threshold"] == 0.75, "ap"].iloc[0]),
        **{
            f"{k}_{end}": None if np.isnan(v) else v  # JSON has no NaN: no interval is null
            for k in ("ap50", "mean_ap")
            for end, v in zip(("low", "high"), intervals[k], strict=True)
        },
        "aji": float(per_image["aji"].mean()) if len(per_image) else 0.0,
        "pq": float(per_image["pq"].mean()) if len(per_image) else 0.0,
    }
    return per_threshold, per_image, summary, overall


def _pooled_ap(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, axis: int = -1) -> np.ndarray:
    """AP of match counts summed along ``axis`` (images), the same 0/0 rule as scores_of: nothing true and
    nothing predicted is a perfect 1."""
    tp, fp, fn = tp.sum(axis), fp.sum(axis), fn.sum(axis)
    total = tp + fp + fn
    return np.where(total > 0, tp / np.maximum(total, 1), 1.0)


def _ap_and_mean(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pooled AP per threshold (rows) with their mean appended as the last row."""
    ap = _pooled_ap(tp, fp, fn, axis)
    return np.concatenate([ap, ap.mean(axis=0, keepdims=True)])


def bootstrap_intervals(
    per_threshold: pd.DataFrame, confidence=CONFIDENCE, n_resamples=RESAMPLES, seed=BOOTSTRAP_SEED
) -> dict[str, tuple]:
    """Percentile bootstrap intervals of the pooled held-out scores, resampling whole images.

    Each resample draws as many held-out images as there are, with replacement, and pools their match counts
    as ``score`` does: the interval says how far the score would move on another draw of images like these, so
    two models whose intervals overlap widely are not shown to differ. Returns ``{"ap": (lows, highs)}`` per
    IoU threshold, and ``{"ap50": (low, high), "mean_ap": (low, high)}``; NaN with fewer than two images (no
    spread to resample). Percentile rather than BCa: with the few images a held-out set often has, BCa's
    jackknife of a ratio is unstable, and AP bounded in [0, 1] stays there with percentiles.
    """
    # Imported here: scipy.stats takes most of a second, and register and the leaderboard import this module
    # for INTERVAL_KEYS only.
    from scipy.stats import bootstrap

    counts = per_threshold.pivot(index="iou_threshold", columns="image")
    n_images = counts["tp"].shape[1] if len(counts) else 0
    if n_images < 2:
        nan = (float("nan"), float("nan"))
        return {"ap": ([nan[0]] * len(THRESHOLDS), [nan[1]] * len(THRESHOLDS)), "ap50": nan, "mean_ap": nan}
    # Thresholds x images per count; scipy resamples the image axis of the three tables together (paired).
    tp, fp, fn = (counts[k].loc[list(THRESHOLDS)].to_numpy(float) for k in ("tp", "fp", "fn"))
    options = {
        "paired": True, "vectorized": True, "axis": -1, "method": "percentile",
        "confidence_level": confidence, "n_resamples": n_resamples,
        "batch": 200,  # resamples at a time: memory of 10 thresholds x 200 x images, not x 2000
    }  # fmt: skip
    # One resampling for both: the per-threshold APs and, as the last row, their mean (mean AP).
    result = bootstrap((tp, fp, fn), _ap_and_mean, rng=np.random.default_rng(seed), **options)
    lows, highs = (np.asarray(v, dtype=float) for v in result.confidence_interval)
    return {
        "ap": (lows[:-1].tolist(), highs[:-1].tolist()),
        "ap50": (float(lows[0]), float(highs[0])),
        "mean_ap": (float(lows[-1]), float(highs[-1])),
    }


def matched_pairs(true: np.ndarray, pred: np.ndarray, threshold: float = 0.5) -> tuple[set[int], set[int]]:
    """Raw label values of the true and predicted objects matched one-to-one at IoU >= threshold."""
    t_ids = np.unique(true[true > 0])
    p_ids = np.unique(pred[pred > 0])
    ov = overlaps(true, pred)
    iou = ov.iou
    hit = np.flatnonzero(iou >= threshold)
    hit = hit[np.argsort(-iou[hit], kind="stable")]
    used_t, used_p = set(), set()
    for k in hit:
        t, p = int(ov.t[k]), int(ov.p[k])
        if t not in used_t and p not in used_p:
            used_t.add(t)
            used_p.add(p)
    return {int(t_ids[t - 1]) for t in used_t}, {int(p_ids[p - 1]) for p in used_p}


def _grey(img: np.ndarray) -> np.ndarray:
    """Intensities stretched from their 1st to 99th percentile onto 0-0.8: below white, so that the
    outlines and the white gaps between a volume's planes stand out."""
    lo, hi = np.percentile(img, [1, 99])
    return np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1) * 0.8


def _draw_outlines(rgb: np.ndarray, true: np.ndarray, pred: np.ndarray, good_t: set, good_p: set) -> None:
    """Colours, in place, one plane's outlines by their objects' match (raw labels in good_t, good_p)."""
    missed = find_boundaries(np.where(np.isin(true, list(good_t)), 0, true), mode="inner")
    pred_edges = find_boundaries(pred, mode="inner")
    matched = pred_edges & np.isin(pred, list(good_p))
    rgb[missed] = FN_COLOUR
    rgb[pred_edges & ~matched] = FP_COLOUR
    rgb[matched] = TP_COLOUR


def volume_planes(true: np.ndarray, pred: np.ndarray | None = None) -> list[int]:
    """The z indices a volume's overlay shows: VOLUME_PLANES of the z range holding true or predicted
    objects (the whole depth when there is none), in order, without repeats (a thin stack gives fewer)."""
    occupied = (true > 0).any(axis=(1, 2))
    if pred is not None and pred.shape == true.shape:
        occupied |= (pred > 0).any(axis=(1, 2))  # a false positive outside the true objects' range counts
    z = np.flatnonzero(occupied)
    lo, hi = (int(z[0]), int(z[-1])) if len(z) else (0, true.shape[0] - 1)
    return sorted({lo + round(f * (hi - lo)) for f in VOLUME_PLANES})


def _volume_grey(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The grey volume (Z, Y, X) of a held-out image: its first channel when it has several, as in 2D.

    The held-out sets hold channels first (nchan, Z, Y, X), as predict_heldout hands them to Omnipose
    (channel_axis 0); a channel-last volume is averaged over its channels, like an RGB picture in 2D.
    """
    img = image.astype(np.float64)
    if img.shape == shape:
        return img
    if img.ndim == 4 and img.shape[1:] == shape:
        return img[0]
    if img.ndim == 4 and img.shape[:-1] == shape:
        return img.mean(axis=-1)
    raise ValueError(f"image of shape {image.shape} does not fit labels of shape {shape} (Z, Y, X)")


def _volume_overlay(image: np.ndarray, true: np.ndarray, pred: np.ndarray, threshold: float) -> np.ndarray:
    """The planes of ``volume_planes`` side by side, PLANE_GAP apart, coloured by the 3D match."""
    grey = _grey(_volume_grey(image, true.shape))  # one contrast for the whole volume: planes compare
    same_shape = true.shape == pred.shape
    good_t, good_p = matched_pairs(true, pred, threshold) if same_shape else (set(), set())
    gap = np.ones((true.shape[1], PLANE_GAP, 3))
    tiles = []
    for z in volume_planes(true, pred):
        rgb = np.repeat(grey[z][..., None], 3, axis=2)
        if same_shape:  # as in 2D, a prediction of another shape is not drawn (it is scored as all missed)
            _draw_outlines(rgb, true[z], pred[z], good_t, good_p)
        tiles += [gap, rgb] if tiles else [rgb]
    return np.concatenate(tiles, axis=1)


def overlay(image: np.ndarray, true: np.ndarray, pred: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """RGB picture: the image in grey; outlines of matched predictions green, false positives red,
    missed true objects yellow.

    Labels of a volume (Z, Y, X; the image Z, Y, X or with a channel axis) give the planes of
    ``volume_planes`` side by side, PLANE_GAP white columns apart: (Y, n X + (n - 1) PLANE_GAP, 3). An
    object's colour is its 3D match (IoU of the whole object, as scored), the same on every plane it
    crosses; the outlines are those of its cross-section in each plane.
    """
    if true.ndim == 3:  # 2D labels are always Y, X: three axes can only be a volume
        return _volume_overlay(image, true, pred, threshold)
    img = image.astype(np.float64)
    if img.ndim == 3:
        img = img[0] if img.shape[0] <= 4 else img.mean(axis=-1)
    rgb = np.repeat(_grey(img)[..., None], 3, axis=2)
    if true.shape != pred.shape:
        return rgb
    good_t, good_p = matched_pairs(true, pred, threshold)
    _draw_outlines(rgb, true, pred, good_t, good_p)
    return rgb


def interval_text(scores: dict, key: str) -> str:
    """A score's 95 % bootstrap interval in ``scores`` (scores.json) as text to append, " [0.71, 0.88]", or ""
    without one (fewer than two held-out images, or scores written before intervals were)."""
    low, high = scores.get(f"{key}_low"), scores.get(f"{key}_high")
    return "" if low is None or high is None else f" [{low:.2f}, {high:.2f}]"


def summary_line(folder: str | Path) -> str:
    """One line of an evaluation's held-out scores, from its summary table and scores (for `make demo`)."""
    folder = Path(folder)
    summary = pd.read_csv(folder / "summary.tsv", sep="\t")
    if summary.empty:
        return "held-out: no held-out image (set split.test_fraction or test_dir)"
    scores = json.loads((folder / "scores.json").read_text())
    at = summary.set_index("iou_threshold")
    tp, fp, fn = (int(at.loc[0.5, k]) for k in ("tp", "fp", "fn"))
    images = f"{scores['images']} image" + ("s" if scores["images"] != 1 else "")
    if interval_text(scores, "ap50"):
        images += ", [95 % bootstrap interval over images]"
    return (
        f"held-out AP@0.5 {at.loc[0.5, 'ap']:.2f}{interval_text(scores, 'ap50')}, mean AP"
        f" {summary['ap'].mean():.2f}{interval_text(scores, 'mean_ap')} over IoU 0.50-0.95 ({images};"
        f" {tp} matched, {fp} false positive, {fn} missed at IoU 0.5; {folder / 'summary.tsv'})"
    )


if __name__ == "__main__":  # python -m omnitrain.evaluation <evaluation folder>
    import sys

    print(summary_line(sys.argv[1]))
