"""dim 3: volumes through validation, channel selection, tiling and the config checks."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from helpers import cells, image_for, save, write_pair

from omnitrain.channels import plan_from_config
from omnitrain.config import ConfigError, check_config
from omnitrain.preprocess import prepare_source, source_crops
from omnitrain.problems import ERROR
from omnitrain.tiling import cut_tiles, tile_boxes
from omnitrain.validation import validate_folder


def volume(shape=(12, 48, 48), n=6, size=6) -> np.ndarray:
    """A label volume of ``n`` separate cubes labelled 1..n."""
    lab = np.zeros(shape, np.uint16)
    per_row = (shape[2] - 2) // (size + 3)
    for i in range(n):
        r, c = divmod(i, per_row)
        z, y, x = 2 + (i % 2) * 2, 2 + r * (size + 3), 2 + c * (size + 3)
        lab[z : z + size, y : y + size, x : x + size] = i + 1
    return lab


def run(folder, **overrides):
    config = check_config({"dir": str(folder), "dim": 3, "tyx": [32, 32, 32], **overrides})
    return validate_folder(config)


def errors_of(problems):
    return [p for p in problems if p.severity == ERROR]


# ---------------------------------------------------------------- validation


def test_volumes_are_accepted(tmp_path):
    lab = volume()
    for i in range(2):
        write_pair(tmp_path / "one", f"zyx{i}", lab=lab, img=image_for(lab, i))
        write_pair(tmp_path / "two", f"czyx{i}", lab=lab, img=np.stack([image_for(lab), image_for(lab, i)]))
    for folder, overrides in (("one", {}), ("two", {"nchan": 2, "chan": 1, "chan2": 2})):
        table, problems = run(tmp_path / folder, **overrides)
        # 12 planes under a cubic crop of 32: padded in z by Omnipose's warp, no warning (y and x are 48)
        assert problems == [], [(p.file, p.what) for p in problems]
        assert list(table["objects"]) == [6, 6]


def _float_labels(lab):
    return lab.astype(np.float32) + 0.5 * (lab > 0)


def _split(lab):
    out = lab.copy()
    out[2:6, 40:44, 40:44] = 1  # a second piece of label 1
    return out


@pytest.mark.parametrize(
    "bad, code",
    [
        (lambda lab: lab > 0, "binary-mask"),
        (_float_labels, "float-labels"),
        (np.zeros_like, "empty-labels"),
    ],
    ids=["binary", "float", "empty"],
)
def test_label_volume_problems_are_those_of_2d(tmp_path, bad, code):
    lab = volume()
    write_pair(tmp_path, "ok", lab=lab)
    write_pair(tmp_path, "bad", lab=lab, img=image_for(lab))
    save(tmp_path / "bad_masks.tif", bad(lab))
    _, problems = run(tmp_path)
    hits = [p for p in errors_of(problems) if p.code == code]
    assert hits and all(p.file.endswith("bad_masks.tif") for p in hits), [(p.code, p.file) for p in problems]


def test_split_labels_and_shape_mismatch_in_3d(tmp_path):
    lab = volume()
    write_pair(tmp_path, "split", lab=_split(lab), img=image_for(lab))
    write_pair(tmp_path, "cut", lab=lab, img=image_for(lab)[:, :40])
    _, problems = run(tmp_path)
    by_code = {p.code: p for p in problems}
    assert by_code["split-labels"].file.endswith("split_masks.tif")
    assert by_code["shape-mismatch"].file.endswith("cut.tif")
    assert "12x40x48" in by_code["shape-mismatch"].what and "12x48x48" in by_code["shape-mismatch"].what


def test_a_2d_image_in_a_3d_run_is_refused_with_the_fix(tmp_path):
    write_pair(tmp_path, "vol", lab=volume())
    write_pair(tmp_path, "flat", lab=cells())
    _, problems = run(tmp_path)
    hits = errors_of(problems)
    assert hits and all("flat" in p.file for p in hits), [(p.code, p.file) for p in hits]
    label = next(p for p in hits if p.code == "label-dimensions")
    assert label.file.endswith("flat_masks.tif")
    assert "dim is 3" in label.what and "dim: 2" in label.fix


def test_a_2d_image_next_to_a_label_volume_is_refused(tmp_path):
    lab = volume()
    write_pair(tmp_path, "mixed", lab=lab, img=image_for(lab)[0])
    _, problems = run(tmp_path)
    hit = next(p for p in errors_of(problems) if p.code == "image-axes")
    assert hit.file.endswith("mixed.tif") and "2D image" in hit.what and "dim is 3" in hit.what


def test_a_volume_in_a_2d_run_is_refused_with_the_fix(tmp_path):
    write_pair(tmp_path, "flat0", lab=cells())
    write_pair(tmp_path, "flat1", lab=cells())
    write_pair(tmp_path, "vol", lab=volume())
    _, problems = validate_folder(check_config({"dir": str(tmp_path)}))
    hits = errors_of(problems)
    assert [p.code for p in hits] == ["label-dimensions"]
    assert hits[0].file.endswith("vol_masks.tif")
    assert "label volume" in hits[0].what and "dim is 2" in hits[0].what and "dim: 3" in hits[0].fix


# ---------------------------------------------------------------- config


def test_tyx_is_rounded_up_as_omnipose_does_and_said(tmp_path):
    notes = []
    cfg = check_config(
        {"dir": str(tmp_path), "dim": 3, "tyx": "50,50,50", "packing": {"enabled": False}}, notes=notes
    )
    assert cfg["tyx"] == [56, 56, 56]
    assert len(notes) == 1 and "50 -> 56" in notes[0] and "trained as tyx [56, 56, 56]" in notes[0]
    notes.clear()
    assert check_config({"dir": str(tmp_path), "tyx": [220, 224]}, notes=notes)["tyx"] == [224, 224]
    assert "220 -> 224" in notes[0]  # square once rounded: not refused
    with pytest.raises(ConfigError, match="not square"):
        check_config({"dir": str(tmp_path), "tyx": [220, 240]})
    with pytest.raises(ConfigError, match="has 2 value"):
        check_config({"dir": str(tmp_path), "dim": 3, "tyx": [64, 64]})
    with pytest.raises(ConfigError, match=r"not a cube.*use \[64, 64, 64\]"):  # Omnipose 1.1.4 dies on it
        check_config({"dir": str(tmp_path), "dim": 3, "tyx": [48, 64, 64]})
    assert check_config({"dir": str(tmp_path), "dim": 3, "tyx": [60, 64, 64]})["tyx"] == [64, 64, 64]


def test_pages_saved_one_by_one_are_the_planes_of_a_volume(tmp_path):
    lab = volume()
    write_pair(tmp_path / "data", "paged", lab=lab)
    for i in range(2):
        write_pair(tmp_path / "data", f"whole{i}", lab=lab)
    image = image_for(lab)
    tifffile.imwrite(tmp_path / "data/paged.tif", image[0])
    for plane in image[1:]:
        tifffile.imwrite(tmp_path / "data/paged.tif", plane, append=True)  # one series per plane
    table, problems = run(tmp_path / "data")
    assert problems == [], [(p.file, p.what) for p in problems]
    assert list(table["objects"]) == [6, 6, 6]


def test_packing_is_turned_off_in_3d_with_a_note(tmp_path):
    notes = []
    cfg = check_config({"dir": str(tmp_path), "dim": 3}, notes=notes)
    assert cfg["packing"]["enabled"] is False
    assert len(notes) == 1 and "2D only" in notes[0] and "packing: {enabled: false}" in notes[0]
    notes.clear()
    check_config({"dir": str(tmp_path), "dim": 3, "packing": {"enabled": False}}, notes=notes)
    check_config({"dir": str(tmp_path)}, notes=notes)
    assert notes == []


def test_size_model_is_refused_in_3d(tmp_path):
    with pytest.raises(ConfigError, match="SizeModel is 2D only"):
        check_config({"dir": str(tmp_path), "dim": 3, "train_size": True, "diameter": 30})


def test_builtin_models_are_refused_in_3d(tmp_path):
    with pytest.raises(ConfigError, match=r"2D model \(dim: 2\) but dim is 3"):
        check_config({"dir": str(tmp_path), "dim": 3, "pretrained_model": "bact_phase_omni"})


# ---------------------------------------------------------------- channels and tiling


def test_channel_selection_of_a_volume():
    lab = volume()
    img = np.stack([image_for(lab, s) for s in range(3)], axis=-1)  # ZYXC
    cfg = check_config({"dir": ".", "dim": 3, "nchan": 2, "chan": 3, "chan2": 1})
    plan, _ = plan_from_config(cfg)
    src = prepare_source("v", img, lab, [], plan, dim=3)
    assert src.image.shape == (2, *lab.shape) and src.channel_axis == 3
    np.testing.assert_array_equal(src.image[0], img[..., 2])
    np.testing.assert_array_equal(src.image[1], img[..., 0])


def test_3d_tiles_cover_every_voxel_once():
    for shape in [(40, 160, 96), (700, 130, 64), (12, 48, 48)]:
        cover = np.zeros(shape, np.int32)
        boxes = tile_boxes(shape, 64)
        for box in boxes:
            cover[box] += 1
        assert np.all(cover == 1), shape
    assert len(tile_boxes((40, 160, 96), 64)) == 3 * 2  # z stays whole (40 <= 1.25 x 64)
    assert len(tile_boxes((700, 130, 64), 64)) == 11 * 3  # z much deeper than a tile: cut too


def test_3d_tiles_relabel_each_tile_and_keep_cut_cells():
    lab = np.zeros((10, 40, 100), np.uint16)
    lab[2:8, 5:15, 45:55] = 1  # cut by the border at x = 50
    lab[2:8, 20:30, 48:51] = 2  # cut into 2 and 1 columns: 120 and 60 voxels
    lab[1:3, 2:4, 2:4] = 3  # a whole object of 8 voxels: kept
    lab[3:6, 30:35, 80:90] = 4
    img = np.arange(lab.size, dtype=np.float32).reshape(1, *lab.shape)
    tiles = cut_tiles(img, lab, [], tile_size=50, factor=1.0, min_fragment_area=100)
    assert [t.box for t in tiles] == [
        (slice(0, 10), slice(0, 40), slice(0, 50)),
        (slice(0, 10), slice(0, 40), slice(50, 100)),
    ]
    left, right = tiles
    assert left.label_map == {1: 1, 2: 2, 3: 3}
    assert right.label_map == {1: 1, 4: 2} and right.dropped == [2]
    for tile in tiles:
        values = np.unique(tile.labels[tile.labels > 0])
        assert values.tolist() == list(range(1, len(tile.label_map) + 1))
        # every kept voxel is its source object's, renumbered
        src = lab[tile.box]
        for old, new in tile.label_map.items():
            np.testing.assert_array_equal(tile.labels == new, src == old)
    np.testing.assert_array_equal(right.image, img[:, :, :, 50:])


def test_source_crops_of_a_volume_are_its_tiles():
    lab = volume((12, 180, 48))
    cfg = check_config({"dir": ".", "dim": 3, "tiling": {"tile_size": 64}})
    plan, _ = plan_from_config(cfg)
    src = prepare_source("v", image_for(lab), lab, [], plan, dim=3)
    assert cfg["packing"]["enabled"] is False  # the default (true) is turned off in 3D
    tiles, crops = source_crops(src, cfg["tiling"], cfg["packing"] if cfg["packing"]["enabled"] else None)
    assert crops == [] and len(tiles) == 3
    assert all(t.image.shape[1:] == t.labels.shape and t.labels.ndim == 3 for t in tiles)


def test_an_experiments_adjusted_settings_are_noted_once(tmp_path):
    from omnitrain.experiments import plan_runs

    notes = []
    base = {"dir": str(tmp_path), "dim": 3, "experiments": {"small": {"tyx": [50, 50, 50]}}}
    runs = plan_runs(check_config(base, notes=notes), notes)
    assert [r.config["tyx"] for r in runs] == [None, [56, 56, 56]]
    assert (
        len(notes) == 2
    )  # the base's packing note, and the experiment's tyx (its packing note is the base's)
    assert notes[1].startswith("experiments.small: tyx [50, 50, 50] is trained as tyx [56, 56, 56]")
