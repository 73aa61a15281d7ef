"""The sparse-image estimate: the chance of a uniform crop, against Omnipose's own crops."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import cells

from omnitrain.sparsity import (
    DRAWS_BEFORE_FAILURE,
    crop_scales,
    crops_per_image,
    expected_failures,
    largest_uniform_chance,
    sparse_image_problems,
    uniform_crop_chance,
)


def one_cell(shape=(512, 512), size=6, at=(20, 20)) -> np.ndarray:
    lab = np.zeros(shape, np.uint16)
    lab[at[0] : at[0] + size, at[1] : at[1] + size] = 1
    return lab


def colony(shape=(256, 256), size=8) -> np.ndarray:
    """Cells of ``size`` on a grid with 2-pixel gaps: every crop holds boundaries."""
    lab = np.zeros(shape, np.uint32)
    step = size + 2
    n = 0
    for y in range(0, shape[0] - size, step):
        for x in range(0, shape[1] - size, step):
            n += 1
            lab[y : y + size, x : x + size] = n
    return lab


def test_crop_scales_follow_omniposes_distribution():
    for rescale, low, high in ((True, 1 / 1.5, 1.5), (False, 0.5, 2.0)):
        q = crop_scales(rescale, n=2000)
        assert low < q.min() < q.max() < high
        assert abs(q.mean() - 1.0) < 0.01  # Omnipose chooses beta so that the mean scale is 1


def test_uniform_crop_chance_of_crafted_labels():
    assert uniform_crop_chance(np.zeros((64, 64), np.uint16), (32, 32)) == 1.0
    assert uniform_crop_chance(one_cell(), (64, 64), rescale=False) > 0.97
    assert uniform_crop_chance(colony(), (64, 64), rescale=False) == 0.0
    # Over-dense: one cell larger than every crop is uniform too.
    big = np.ones((256, 256), np.uint16)
    big[:4] = 0
    assert uniform_crop_chance(big, (32, 32), rescale=False) > 0.9
    # A larger crop (or a larger diameter relative to diam_mean) sees more of the image.
    small, large = (uniform_crop_chance(one_cell(), (t, t), rescale=False) for t in (32, 224))
    assert large < small
    assert uniform_crop_chance(one_cell(), (64, 64), 3.0) < uniform_crop_chance(one_cell(), (64, 64), 1.0)


def test_the_estimate_matches_omniposes_own_crops():
    """Each call of Omnipose's random_crop_warp at depth 100 is one draw: a uniform crop makes it
    redraw at depth 101, which raises 'Sparse or over-dense image detected'."""
    core = pytest.importorskip("omnipose.core")
    rng_state = np.random.get_state()
    np.random.seed(0)
    lab = np.zeros((160, 200), np.uint16)
    lab[30:60, 40:70] = 1
    lab[100:112, 150:170] = 2
    img = (lab > 0).astype(np.float32)[None] + 0.1
    tyx = (32, 32)
    draws, uniform = 400, 0
    try:
        for _ in range(draws):
            try:
                core.random_crop_warp(
                    img, lab, tyx, [0, 1], [1, 0], 1, 1, 2.0, [0.75, 2.5], True, 0, depth=100
                )
            except ValueError as exc:
                assert "Sparse or over-dense" in str(exc)
                uniform += 1
    finally:
        np.random.set_state(rng_state)
    measured = uniform / draws
    estimate = uniform_crop_chance(lab, tyx, rescale=False)
    assert 0.3 < measured < 0.95, measured  # the image is neither hopeless nor safe
    assert abs(estimate - measured) < 0.08, (estimate, measured)


def test_give_up_arithmetic():
    assert crops_per_image(4000, None, 7) == 4000  # one crop per image per epoch
    assert crops_per_image(40, 16, 8) == 80
    assert expected_failures(0.5, 1000) == pytest.approx(1000 * 0.5**DRAWS_BEFORE_FAILURE)
    threshold = largest_uniform_chance(0.001, 4000)
    assert expected_failures(threshold, 4000) == pytest.approx(0.001)
    assert 0.85 < threshold < 0.87


def test_one_cell_in_a_large_image_is_refused_and_a_dense_colony_passes():
    images = {
        "train/sparse.tif": {"labels": one_cell(), "diameter": 6.0, "source": "data/sparse.tif"},
        "train/dense.tif": {"labels": colony(), "diameter": 9.0, "source": "data/dense.tif"},
        "train/also_dense.tif": {"labels": cells((128, 128), n=60), "diameter": 9.0, "source": "data/d2.tif"},
    }
    found, problems = sparse_image_problems(images, (96, 96), 0.0, 100, None, 1, 0.001)
    assert [p.file for p in problems] == ["train/sparse.tif"]
    (p,) = problems
    assert p.code == "sparse-image" and p.severity == "error"
    assert "data/sparse.tif" in p.what and "packing" in p.fix and "tyx" in p.fix
    assert found["train/dense.tif"][1] < 1e-12 and found["train/sparse.tif"][1] > 0.001
    # Omnipose drops images with fewer objects than min_train_masks: they are not checked.
    found, problems = sparse_image_problems(images, (96, 96), 0.0, 100, None, 2, 0.001)
    assert "train/sparse.tif" not in found and not problems
    # A large accepted risk lets it through (what the forced-failure workflow test relies on).
    assert not sparse_image_problems(images, (96, 96), 0.0, 100, None, 1, 1e9)[1]


def test_in_3d_the_sparse_image_fix_does_not_offer_packing():
    volume = np.zeros((32, 96, 96), np.uint16)
    volume[14:18, 46:50, 46:50] = 1  # one small cell in a large volume
    images = {"train/v.tif": {"labels": volume, "diameter": 0.0, "source": "data/v.tif"}}
    (p,) = sparse_image_problems(images, (16, 16, 16), 0.0, 100, None, 1, 0.001)[1]
    assert "16x16x16" in p.what and "packing" not in p.fix and "tyx" in p.fix and "data/v.tif" in p.fix


def test_empty_tiles_kept_on_purpose_cannot_make_omnipose_give_up():
    """tiling.keep_empty turns on Omnipose's allow_blank_masks, which accepts blank crops: an empty
    tile at the last redraw (depth 100) does not raise (validate_training_set skips the check then)."""
    from omnitrain.training import model_kwargs

    core = pytest.importorskip("omnipose.core")
    config = {"diameter": 0, "nchan": 1, "nclasses": 2, "dim": 2, "tiling": {"keep_empty": True}}
    config["pretrained_model"] = None
    assert model_kwargs(config, False, None)["allow_blank_masks"] is True
    assert (
        model_kwargs({**config, "tiling": {"keep_empty": False}}, False, None)["allow_blank_masks"] is False
    )
    blank = np.zeros((128, 128), np.uint16)
    img = np.full((1, 128, 128), 0.5, np.float32)
    args = (img, blank, (32, 32), [0, 1], [1, 0], 1, 1, 2.0, [0.75, 2.5], True, 0)
    core.random_crop_warp(*args, depth=100, allow_blank_masks=True)  # no ValueError
    with pytest.raises(ValueError, match="Sparse or over-dense"):
        core.random_crop_warp(*args, depth=100, allow_blank_masks=False)
