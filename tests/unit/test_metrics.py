"""Scores equal Omnipose's (cellpose_omni.metrics) on random and real label pairs; edge cases are defined."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import BACT, DSB, needs
from scipy import ndimage as ndi

from omnitrain import metrics
from omnitrain.demo import make_image
from omnitrain.evaluation import bootstrap_intervals, matched_pairs, overlay, score, summary_line
from omnitrain.labels import relabel

cm = pytest.importorskip("cellpose_omni.metrics")
TH = list(metrics.THRESHOLDS)


def perturb(lab: np.ndarray, seed: int) -> np.ndarray:
    """A plausible prediction: shifted, eroded or dilated, some objects dropped, merged or added."""
    rng = np.random.default_rng(seed)
    pred = np.roll(lab.astype(np.int64), tuple(int(v) for v in rng.integers(-3, 4, 2)), axis=(0, 1))
    ids = np.unique(pred[pred > 0])
    if len(ids) > 4:
        pred[np.isin(pred, rng.choice(ids, len(ids) // 8, replace=False))] = 0
        a, b = rng.choice(ids, 2, replace=False)
        pred[pred == b] = a
    if rng.random() < 0.5:
        grown = ndi.grey_dilation(pred, size=3)
        pred = np.where(pred == 0, grown, pred)
    blob = np.zeros_like(pred)
    y, x = (int(v) for v in rng.integers(0, min(lab.shape) - 10, 2))
    blob[y : y + 8, x : x + 8] = pred.max() + 5
    return relabel(np.where(pred == 0, blob, pred))[0]


def assert_same_as_omnipose(true, pred):
    true, pred = relabel(true)[0], relabel(pred)[0]
    ap, tp, fp, fn = cm.average_precision(true, pred, threshold=TH)
    rows = metrics.match(true, pred)
    assert [r["tp"] for r in rows] == tp.astype(int).tolist()
    assert [r["fp"] for r in rows] == fp.astype(int).tolist()
    assert [r["fn"] for r in rows] == fn.astype(int).tolist()
    np.testing.assert_allclose([r["ap"] for r in rows], ap, rtol=0, atol=1e-6)
    if true.max() and pred.max():
        aji = cm.aggregated_jaccard_index([true], [pred])[0]
        assert metrics.aggregated_jaccard_index(true, pred) == pytest.approx(aji, abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_random_pairs_match_omnipose(seed):
    rng = np.random.default_rng(seed)
    true = np.zeros((96, 128), np.int32)
    for i in range(1, int(rng.integers(5, 30))):
        y, x = rng.integers(0, 88), rng.integers(0, 120)
        h, w = rng.integers(3, 12, 2)
        true[y : y + h, x : x + w] = i  # overlapping boxes: later ones win, some vanish
    assert_same_as_omnipose(true, perturb(true, seed))


@pytest.mark.parametrize("name", ["colony_dense_01", "sparse_01"])
def test_demo_pairs_match_omnipose(name):
    _, lab = make_image(name)
    for seed in range(3):
        assert_same_as_omnipose(lab, perturb(lab, seed))


@needs(DSB)
def test_real_nuclei_match_omnipose():
    for mask in sorted(DSB.glob("*_masks.tif"))[:10]:
        lab = tifffile.imread(mask)
        assert_same_as_omnipose(lab, perturb(lab, 1))


@needs(BACT)
def test_real_colonies_match_omnipose():
    for mask in sorted(BACT.glob("*_cp_masks.tif")):
        lab = tifffile.imread(mask)
        assert_same_as_omnipose(lab, perturb(lab, 2))


def test_tie_at_exactly_half_is_one_match():
    true = np.zeros((4, 4), np.int32)
    true[0, 0:2] = 1
    pred = np.zeros((4, 4), np.int32)
    pred[0, 0], pred[0, 1] = 1, 2  # each prediction has IoU exactly 0.5 with the same true object
    assert_same_as_omnipose(true, pred)
    assert metrics.match(true, pred)[0]["tp"] == 1


def test_non_consecutive_labels_are_relabelled_first():
    true = np.zeros((20, 20), np.int32)
    true[2:6, 2:6], true[10:15, 10:15] = 7, 300
    rows = metrics.match(true, true.copy())
    assert rows[0] == {"iou_threshold": 0.5, "tp": 2, "fp": 0, "fn": 0, "ap": 1.0, "precision": 1.0,
                       "recall": 1.0, "f1": 1.0}  # fmt: skip
    # Omnipose counts by the maximum label: 300 objects, 298 of them "missed".
    assert cm.average_precision(true, true.copy(), threshold=[0.5])[3][0] == 298


def test_edge_cases_are_defined_and_never_nan():
    true = np.zeros((16, 16), np.int32)
    true[2:6, 2:6] = 1
    empty = np.zeros_like(true)
    (r,), s = metrics.score_image(true, empty, [0.5])
    assert (r["tp"], r["fp"], r["fn"], r["ap"], r["precision"], r["recall"]) == (0, 0, 1, 0.0, 0.0, 0.0)
    (r,), s = metrics.score_image(empty, true, [0.5])
    assert (r["fp"], r["ap"], r["precision"], r["recall"]) == (1, 0.0, 0.0, 0.0)
    (r,), s = metrics.score_image(empty, empty, [0.5])
    assert (r["ap"], r["f1"], s["aji"], s["pq"]) == (1.0, 1.0, 1.0, 1.0)
    rows, s = metrics.score_image(true, np.ones((8, 8), np.int32))
    assert "shape mismatch" in s["note"] and rows[0]["fn"] == 1 and rows[0]["fp"] == 1
    per_threshold, per_image, summary, overall = score([("a", true, empty), ("b", empty, empty)])
    assert not summary.isna().any().any() and not per_image.drop(columns="note").isna().any().any()
    assert all(np.isfinite(v) for v in overall.values())
    _, _, summary, overall = score([])
    assert summary.empty and overall["images"] == 0 and overall["mean_ap"] is None


def test_summary_pools_counts_and_overlay_colours():
    _, lab = make_image("colony_dense_02")
    pred = perturb(lab, 3)
    per_threshold, per_image, summary, overall = score([("x", lab, pred), ("y", lab, lab)])
    row = summary.iloc[0]
    sub = per_threshold[per_threshold.iou_threshold == 0.5]
    assert row["tp"] == sub["tp"].sum() and row["ap"] == pytest.approx(
        row["tp"] / (row["tp"] + row["fp"] + row["fn"])
    )
    assert overall["ap50"] == row["ap"] and 0 < overall["mean_ap"] <= 1
    assert per_image.set_index("image").loc["y", "mean_ap"] == 1.0
    good_t, good_p = matched_pairs(lab, pred)
    assert len(good_t) == len(good_p) == sub[sub.image == "x"]["tp"].iloc[0]
    rgb = overlay(lab.astype(np.float32), lab, pred)
    assert rgb.shape == (*lab.shape, 3) and rgb.max() <= 1.0
    assert (rgb == np.array([1.0, 0.15, 0.1])).all(axis=-1).any(), "false positives drawn in red"


@pytest.mark.parametrize("shape", [(64, 64), (37, 53), (1, 7), (3, 1), (5, 7, 9), (2, 3, 1)])
def test_overlaps_are_the_same_for_every_label_dtype_and_odd_sizes(shape):
    """The pixel pass reads 64-bit words of 1, 2 or 4 labels and finishes odd sizes pixel by pixel; a volume
    is one flat run of voxels like an image (the last two shapes are Z, Y, X)."""
    rng = np.random.default_rng(sum(shape))
    true = rng.integers(0, 6, shape) * (rng.random(shape) < 0.7)
    pred = np.roll(true, 1, axis=-1) * (rng.random(shape) < 0.9)
    expected = metrics.match(true.astype(np.int64), pred.astype(np.int64))
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64, np.int32, np.float32):
        got = metrics.match(true.astype(dtype), pred.astype(dtype))
        assert got == expected, dtype
    ov = metrics.overlaps(true.astype(np.uint16), pred.astype(np.uint16))
    dense = np.zeros((ov.n_true + 1, ov.n_pred + 1), np.int64)
    t, p = relabel(true)[0], relabel(pred)[0]
    np.add.at(dense, (t.ravel(), p.ravel()), 1)  # the plain definition: one count per pixel
    assert np.array_equal(dense[ov.t, ov.p], ov.overlap)
    assert np.array_equal(dense.sum(axis=1), ov.area_true) and np.array_equal(dense.sum(axis=0), ov.area_pred)
    assert np.count_nonzero(dense[1:, 1:]) == len(ov.t)


def test_overlaps_refuse_what_they_cannot_count():
    a = np.zeros((4, 4), np.uint16)
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.overlaps(a, np.zeros((4, 5), np.uint16))
    with pytest.raises(ValueError, match="renumber"):
        metrics.overlaps(a.astype(np.uint64), np.full((4, 4), 2**63, np.uint64))


# Volumes (dim: 3, labels Z, Y, X): an object is matched by the IoU of its voxels, as in Omnipose.


def volume(seed: int, shape=(24, 48, 48)) -> np.ndarray:
    """Ellipsoids and boxes at random places; later ones cut into earlier ones (contacts, odd shapes)."""
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.int32)
    zz, yy, xx = np.indices(shape)
    for i in range(1, int(rng.integers(6, 14))):
        c = rng.integers((4, 7, 7), (shape[0] - 4, shape[1] - 7, shape[2] - 7))
        r = rng.integers((3, 4, 4), (7, 10, 10))
        if rng.random() < 0.5:
            inside = ((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2 <= 1
        else:
            inside = (abs(zz - c[0]) < r[0]) & (abs(yy - c[1]) < r[1]) & (abs(xx - c[2]) < r[2])
        lab[inside] = i
    return lab


def perturb_volume(lab: np.ndarray, seed: int) -> np.ndarray:
    """A plausible 3D prediction: each object moved by up to a voxel per axis (some eroded or dilated),
    one missed, two merged, one split across z, one false object added."""
    rng = np.random.default_rng(seed)
    pred = np.zeros(lab.shape, np.int64)
    for i in np.unique(lab[lab > 0]):  # moved one by one, so IoUs spread over the thresholds
        obj = np.roll(lab == i, tuple(int(v) for v in rng.integers(-1, 2, 3)), axis=(0, 1, 2))
        if rng.random() < 0.3:
            obj = ndi.binary_erosion(obj) if rng.random() < 0.5 else ndi.binary_dilation(obj)
        pred[obj] = i
    ids = np.unique(pred[pred > 0])
    rng.shuffle(ids)
    pred[pred == ids[0]] = 0
    pred[pred == ids[1]] = ids[2]
    planes = np.flatnonzero((pred == ids[3]).any(axis=(1, 2)))
    below = np.arange(lab.shape[0])[:, None, None] >= planes[len(planes) // 2]
    pred[(pred == ids[3]) & below] = pred.max() + 1
    corner = pred[1:4, 2:8, 40:46]
    corner[corner == 0] = pred.max() + 7
    return relabel(pred)[0]


@pytest.mark.parametrize("seed", range(8))
def test_random_volumes_match_omnipose(seed):
    true = volume(seed)
    pred = perturb_volume(relabel(true)[0], seed)
    assert_same_as_omnipose(true, pred)
    rows = metrics.match(true, pred)
    assert rows[0]["tp"] > rows[-1]["tp"], "the volumes should test more than one outcome"


def edited_volume() -> tuple[np.ndarray, np.ndarray]:
    """Seven true boxes in a 24 x 48 x 48 volume and a prediction with one known edit to each."""
    true = np.zeros((24, 48, 48), np.int32)
    pred = np.zeros_like(true)
    true[2:8, 2:12, 2:12] = pred[2:8, 2:12, 2:12] = 1  # exact: IoU 1
    true[2:10, 2:12, 20:30] = 2
    pred[3:11, 2:12, 20:30] = 2  # one plane deeper: IoU 7/9
    true[2:10, 20:30, 2:12] = 3
    pred[2:6, 20:30, 2:12], pred[6:10, 20:30, 2:12] = 3, 4  # split in z: two halves of IoU exactly 0.5
    true[12:20, 20:30, 20:27], true[12:20, 20:30, 27:31] = 4, 5
    pred[12:20, 20:30, 20:31] = 5  # merged: IoU 7/11 with 4, 4/11 with 5
    true[14:20, 2:12, 2:12] = 6  # missed
    pred[14:20, 36:44, 36:44] = 6  # false positive
    true[0:4, 36:46, 2:12] = 7
    pred[2:6, 36:46, 2:12] = 7  # identical on the planes both cross, but 3D IoU 2/6: no match
    return true, pred


def test_edited_volume_scores_by_3d_iou():
    true, pred = edited_volume()
    assert_same_as_omnipose(true, pred)
    tp = {r["iou_threshold"]: r["tp"] for r in metrics.match(true, pred)}
    # 0.5: exact, deeper, one half (the tie), the larger merged part; 0.55: not the halves; 0.65: not the
    # merged part (7/11 = 0.64); 0.8: not the deeper one (7/9 = 0.78).
    assert (tp[0.5], tp[0.55], tp[0.6], tp[0.65], tp[0.75], tp[0.8], tp[0.95]) == (4, 3, 3, 2, 2, 1, 1)
    rows, scalars = metrics.score_image(true, pred)
    assert (scalars["n_true"], scalars["n_pred"], rows[0]["fp"], rows[0]["fn"]) == (7, 7, 3, 3)
    matched_iou = 1 + 7 / 9 + 0.5 + 7 / 11
    assert scalars["pq"] == pytest.approx(matched_iou / (4 + 3 / 2 + 3 / 2))
    assert scalars["aji"] == pytest.approx(cm.aggregated_jaccard_index([true], [pred])[0], abs=1e-12)
    good_t, good_p = matched_pairs(true, pred)
    assert good_t == {1, 2, 3, 4} and len(good_p) == 4 and {1, 2, 5} <= good_p and 7 not in good_p


def test_volumes_are_pooled_and_a_shape_mismatch_is_all_missed():
    true, pred = edited_volume()
    per_threshold, per_image, summary, overall = score([("v1", true, pred), ("v2", true, true.copy())])
    assert summary.iloc[0]["tp"] == 4 + 7 and summary.iloc[0]["fp"] == 3 and overall["true_objects"] == 14
    assert per_image.set_index("image").loc["v2", "mean_ap"] == 1.0
    rows, scalars = metrics.score_image(true, pred[:, :, :47])
    assert "shape mismatch" in scalars["note"] and (rows[0]["tp"], rows[0]["fn"], rows[0]["fp"]) == (0, 7, 7)


def count_rows(outcomes: list[tuple[int, int, int]]) -> pd.DataFrame:
    """A per-threshold table of images whose (tp, fp, fn) are the same at every IoU threshold."""
    return pd.DataFrame(
        [
            {"image": f"im{i}", "iou_threshold": th, "tp": tp, "fp": fp, "fn": fn}
            for i, (tp, fp, fn) in enumerate(outcomes)
            for th in metrics.THRESHOLDS
        ]
    )


def test_bootstrap_interval_of_a_known_case():
    # 20 images of one true object each, 10 of them found: the pooled AP of a resample of 20 images is
    # Binomial(20, 1/2) / 20, whose 2.5 % and 97.5 % quantiles are 6/20 and 14/20 (scipy.stats.binom.ppf).
    table = count_rows([(1, 0, 0)] * 10 + [(0, 0, 1)] * 10)
    for seed in (0, 1, 2):
        got = bootstrap_intervals(table, n_resamples=20000, seed=seed)
        assert got["ap50"] == pytest.approx((0.3, 0.7)) and got["mean_ap"] == pytest.approx((0.3, 0.7))
        assert got["ap"][0] == pytest.approx([0.3] * 10) and got["ap"][1] == pytest.approx([0.7] * 10)
    # The same tables, the same interval (fixed seed); images that all score alike leave no spread.
    assert bootstrap_intervals(table) == bootstrap_intervals(table)
    assert bootstrap_intervals(count_rows([(3, 1, 0)] * 4))["ap50"] == pytest.approx((0.75, 0.75))


def test_bootstrap_interval_is_per_threshold_and_needs_two_images():
    # Image a is matched at IoU 0.5 only; b at every threshold: at 0.5 every resample scores 1, above it
    # a resample of two a's scores 0.
    rows = count_rows([(1, 0, 0), (1, 0, 0)])
    rows.loc[(rows.image == "im0") & (rows.iou_threshold > 0.5), ["tp", "fp", "fn"]] = (0, 1, 1)
    got = bootstrap_intervals(rows)
    assert got["ap"][0][0] == got["ap"][1][0] == 1.0 and got["ap"][0][1] == 0.0 and got["ap"][1][1] == 1.0
    assert got["mean_ap"][0] < 1.0 and got["mean_ap"][1] == 1.0
    one = bootstrap_intervals(count_rows([(5, 0, 0)]))
    assert np.isnan(one["ap50"]).all() and np.isnan(one["ap"][0]).all()


def test_summary_and_scores_carry_the_interval(tmp_path):
    _, lab = make_image("colony_dense_02")
    pairs = [("x", lab, perturb(lab, 3)), ("y", lab, lab), ("z", lab, np.zeros_like(lab))]
    per_threshold, _, summary, overall = score(pairs)
    assert (summary["ap_low"] <= summary["ap"]).all() and (summary["ap"] <= summary["ap_high"]).all()
    assert (
        overall["ap50_low"] == summary["ap_low"].iloc[0]
        and overall["ap50_high"] == summary["ap_high"].iloc[0]
    )
    assert overall["ap50_low"] < overall["ap50"] < overall["ap50_high"]
    assert overall["mean_ap_low"] < overall["mean_ap"] < overall["mean_ap_high"]
    # One held-out image: no interval (null in scores.json, empty in summary.tsv), and the line says none.
    _, _, summary, overall = score(pairs[:1])
    assert summary["ap_low"].isna().all() and overall["ap50_low"] is None and overall["mean_ap_high"] is None
    summary.to_csv(tmp_path / "summary.tsv", sep="\t", index=False)
    (tmp_path / "scores.json").write_text(json.dumps(overall))
    assert "[" not in summary_line(tmp_path) and "(1 image;" in summary_line(tmp_path)
    _, _, summary, overall = score(pairs)
    summary.to_csv(tmp_path / "summary.tsv", sep="\t", index=False)
    (tmp_path / "scores.json").write_text(json.dumps(overall))
    line = summary_line(tmp_path)
    assert f"AP@0.5 {overall['ap50']:.2f} [{overall['ap50_low']:.2f}, {overall['ap50_high']:.2f}]" in line
    assert "(3 images, [95 % bootstrap interval over images];" in line


def test_negative_labels_are_refused_not_counted_as_objects():
    true = np.array([[0, 1], [1, 0]], dtype=np.int32)
    with pytest.raises(ValueError, match="negative labels"):
        metrics.overlaps(true, -true)
