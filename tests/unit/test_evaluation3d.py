"""Overlays of held-out volumes (dim: 3): planes side by side, coloured by the 3D match; 2D ones unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.segmentation import find_boundaries

from omnitrain.demo import make_image
from omnitrain.evaluation import (
    FN_COLOUR,
    FP_COLOUR,
    PLANE_GAP,
    TP_COLOUR,
    matched_pairs,
    overlay,
    volume_planes,
)
from omnitrain.labels import relabel

DEPTH, SIDE = 24, 48


def labelled_volume() -> tuple[np.ndarray, np.ndarray]:
    """Objects in planes 4-19 of a 24 x 48 x 48 volume: 1 predicted exactly, 2 missed, 3 predicted only in
    planes 10-13 (identical there, but 3D IoU 4/16), and a false positive (pred 9) where nothing is."""
    true = np.zeros((DEPTH, SIDE, SIDE), np.uint16)
    pred = np.zeros_like(true)
    true[4:20, 4:20, 4:20] = pred[4:20, 4:20, 4:20] = 1
    true[4:20, 26:42, 26:42] = 2
    true[4:20, 30:44, 4:18] = 3
    pred[10:14, 30:44, 4:18] = 3
    pred[4:20, 4:20, 28:44] = 9
    return true, pred


def image_of(true: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (100 + 50 * (true > 0) + rng.integers(0, 20, true.shape)).astype(np.uint16)


def plane(rgb: np.ndarray, i: int) -> np.ndarray:
    """The i-th plane of a volume's overlay."""
    start = i * (SIDE + PLANE_GAP)
    return rgb[:, start : start + SIDE]


def coloured(rgb: np.ndarray, colour) -> np.ndarray:
    return (rgb == np.array(colour)).all(axis=-1)


def edge_of(lab: np.ndarray, value: int) -> np.ndarray:
    """The outline of one object in one plane, as the overlay draws it."""
    return find_boundaries(lab, mode="inner") & (lab == value)


def test_planes_are_quarters_of_the_occupied_depth():
    true, pred = labelled_volume()
    assert volume_planes(true, pred) == [8, 12, 15]  # 4 + round((0.25, 0.5, 0.75) * 15)
    far = pred.copy()
    far[0, 0, 0] = 5  # a false positive above the true objects widens the range shown
    assert volume_planes(true, far)[0] < 8
    assert volume_planes(np.zeros((9, 4, 4), np.uint8)) == [2, 4, 6]  # nothing anywhere: the whole depth
    assert volume_planes(np.ones((1, 4, 4), np.uint8)) == [0]  # a single plane is shown once


def test_volume_overlay_is_its_planes_side_by_side():
    true, pred = labelled_volume()
    rgb = overlay(image_of(true), true, pred)
    assert rgb.shape == (SIDE, 3 * SIDE + 2 * PLANE_GAP, 3) and rgb.dtype == np.float64
    assert rgb.min() >= 0 and rgb.max() <= 1
    gaps = [rgb[:, SIDE : SIDE + PLANE_GAP], rgb[:, 2 * SIDE + PLANE_GAP : 2 * (SIDE + PLANE_GAP)]]
    assert all((g == 1).all() for g in gaps), "planes are separated by white columns"
    one_channel = overlay(image_of(true), true, pred)
    channels_first = np.stack([image_of(true), image_of(true, seed=1)])  # (nchan, Z, Y, X): shows the first
    assert np.array_equal(overlay(channels_first, true, pred), one_channel)
    channels_last = np.stack([image_of(true)] * 3, axis=-1)  # an RGB stack: the mean of its channels
    assert np.array_equal(overlay(channels_last, true, pred), one_channel)


def test_volume_overlay_colours_each_object_by_its_3d_match():
    true, pred = labelled_volume()
    good_t, good_p = matched_pairs(true, pred)
    assert (good_t, good_p) == ({1}, {1})
    rgb = overlay(image_of(true), true, pred)
    for i, z in enumerate(volume_planes(true, pred)):
        tile = plane(rgb, i)
        assert coloured(tile, TP_COLOUR)[edge_of(pred[z], 1)].all(), f"matched object, z {z}"
        assert coloured(tile, FN_COLOUR)[edge_of(true[z], 2)].all(), f"missed object, z {z}"
        assert coloured(tile, FP_COLOUR)[edge_of(pred[z], 9)].all(), f"false positive, z {z}"
        inside = tile[10, 10]  # inside object 1, away from its outline: the grey image
        assert inside[0] == inside[1] == inside[2] <= 0.8
    # Plane 12 cuts object 3 and its prediction identically (a 2D overlay would call it matched), but the
    # prediction covers 4 of its 16 planes: red for the prediction, yellow in the planes it does not reach.
    assert volume_planes(true, pred)[1] == 12
    assert coloured(plane(rgb, 1), FP_COLOUR)[edge_of(pred[12], 3)].all()
    assert not coloured(plane(rgb, 1), TP_COLOUR)[edge_of(true[12], 3)].any()
    assert coloured(plane(rgb, 0), FN_COLOUR)[edge_of(true[8], 3)].all()


def test_volume_with_a_prediction_of_another_shape_is_drawn_grey():
    true, pred = labelled_volume()
    rgb = overlay(image_of(true), true, pred[:, :, :40])
    assert rgb.shape == (SIDE, 3 * SIDE + 2 * PLANE_GAP, 3)
    assert all(not coloured(rgb, c).any() for c in (TP_COLOUR, FP_COLOUR, FN_COLOUR))


def test_volume_image_that_does_not_fit_its_labels_is_refused():
    true, pred = labelled_volume()
    with pytest.raises(ValueError, match="does not fit"):
        overlay(np.zeros((DEPTH, SIDE, SIDE + 1)), true, pred)


@pytest.mark.parametrize("name", ["colony_dense_01", "sparse_01"])
def test_2d_overlay_colours_each_outline_by_omniposes_own_matching(name):
    """Independent of the overlay's code: which objects match comes from cellpose_omni.metrics.mask_ious
    (Omnipose's one-to-one matching), the outlines from skimage; grey, two-channel and RGB images agree."""
    cm = pytest.importorskip("cellpose_omni.metrics")
    img, lab = make_image(name)
    true = relabel(lab)[0]
    pred = np.roll(true, 2, axis=1)
    pred[pred == pred.max()] = 0  # one object missed
    pred[40:50, 40:50][pred[40:50, 40:50] == 0] = pred.max() + 1  # one false positive
    iou, preds = cm.mask_ious(true, pred)
    good_true = set((np.flatnonzero(iou >= 0.5) + 1).tolist())
    good_pred = {int(preds[t - 1]) for t in good_true}
    assert good_true and len(good_pred) < pred.max() and len(good_true) < true.max()
    pred_edges = find_boundaries(pred, mode="inner")
    missed = find_boundaries(np.where(np.isin(true, list(good_true)), 0, true), mode="inner") & ~pred_edges
    for image in (img, np.stack([img, img[::-1]]), np.stack([img] * 3, axis=-1)):  # grey, 2 channels, RGB
        rgb = overlay(image, true, pred)
        assert rgb.shape == (*true.shape, 3)
        for k in range(1, int(pred.max()) + 1):
            colour = TP_COLOUR if k in good_pred else FP_COLOUR
            assert coloured(rgb, colour)[pred_edges & (pred == k)].all(), (k, colour)
        assert coloured(rgb, FN_COLOUR)[missed].all() and missed.any()
        plain = ~(pred_edges | find_boundaries(true, mode="inner"))
        assert (rgb[plain][:, 0] == rgb[plain][:, 1]).all() and (rgb[plain][:, 1] == rgb[plain][:, 2]).all()
    assert not any(
        coloured(overlay(img, true, pred[:-1]), c).any() for c in (TP_COLOUR, FP_COLOUR, FN_COLOUR)
    )
