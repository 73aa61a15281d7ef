"""omnitrain.segmentation and omnitrain.inference: which version segments, with what, and the tables."""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import CHANNELS, PREDICTION, cells, write_record

from omnitrain import segment_image as segimg
from omnitrain import segmentation as seg
from omnitrain.manifest import write_json
from omnitrain.segmentation import SegmentError


@pytest.fixture
def registry(tmp_path):
    results = tmp_path / "results"
    write_record(results, "aaaa11112222", "2026-01-01T00:00:00")
    write_record(results, "aaaa33334444", "2026-01-02T00:00:00", experiment="raw")
    write_record(results, "bbbb55556666", "2026-01-03T00:00:00", fold=1)
    (results / "latest.txt").write_text("aaaa11112222\n")
    return results


def test_latest_is_the_version_latest_txt_names(registry):
    assert seg.resolve_model(registry, "latest")["version"] == "aaaa11112222"


def test_an_experiment_name_is_its_latest_version_without_a_fold(registry):
    assert seg.resolve_model(registry, "raw")["version"] == "aaaa33334444"
    assert seg.resolve_model(registry, "base")["version"] == "aaaa11112222"  # not the fold's newer one


def test_a_version_is_named_by_its_id_or_a_unique_prefix(registry):
    assert seg.resolve_model(registry, "bbbb")["version"] == "bbbb55556666"
    with pytest.raises(SegmentError, match="more than one registered version.*registry.tsv"):
        seg.resolve_model(registry, "aaaa")
    with pytest.raises(SegmentError, match="no registered version.*base, raw"):
        seg.resolve_model(registry, "cccc")


def test_an_empty_registry_says_to_train_first(tmp_path):
    with pytest.raises(SegmentError, match="no version is registered.*run snakemake first"):
        seg.resolve_model(tmp_path / "results", "latest")


def test_a_record_that_is_not_json_is_named_with_the_fix(registry):
    broken = registry / "versions" / "aaaa33334444" / "record.json"
    broken.write_text('{"version": "aaaa3333')  # edited by hand, cut off
    with pytest.raises(SegmentError, match=r"aaaa33334444/record.json is not a readable record.*Delete it"):
        seg.resolve_model(registry, "latest")


def test_json_is_written_whole_or_not_at_all(tmp_path):
    path = tmp_path / "record.json"
    (tmp_path / ".record.json.tmp").write_text("left by a killed job")
    write_json(path, {"a": np.int64(3)})
    assert json.loads(path.read_text()) == {"a": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]
    with pytest.raises(TypeError, match="not JSON serialisable"):
        write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 3}  # the old file is kept when the new one cannot be made


def test_the_version_segments_with_its_own_settings_and_scored_model_file(registry):
    rec = seg.resolve_model(registry, "latest")
    assert seg.model_settings(rec) == {"channels": CHANNELS, "prediction": PREDICTION}
    files = seg.model_files(rec)
    assert files == {"model": "m/aaaa11112222_best", "card": "m/aaaa11112222.json", "size_model": None}


def test_the_size_model_is_used_only_when_the_heldout_images_were_rescaled(registry):
    rec = seg.resolve_model(registry, "latest")
    rec["paths"]["files"]["size_model_file"] = "m/size.npy"
    assert seg.model_files(rec)["size_model"] is None  # train_size was off
    rec["params"]["steps"]["prediction"] = PREDICTION | {"train_size": True, "diameter": 17}
    assert seg.model_files(rec)["size_model"] == "m/size.npy"


def test_a_record_without_settings_by_step_is_refused():
    with pytest.raises(SegmentError, match="registered before.*register a newer version"):
        seg.model_settings({"version": "old", "params": {"n_epochs": 3}})


def test_keys_change_with_the_image_the_version_and_the_code():
    parts = ("v1", {"a": 1}, "sha", "a.tif", "code", "env")
    key = seg.image_key(*parts)
    for i, other in enumerate(("v2", {"a": 2}, "sha2", "b.tif", "code2", "env2")):
        changed = list(parts)
        changed[i] = other
        assert seg.image_key(*changed) != key


def test_an_rgb_image_gets_the_training_channel_selection():
    rgb = np.random.default_rng(0).integers(0, 255, (32, 40, 3)).astype(np.uint8)
    grey = segimg.prepare_image(rgb, CHANNELS)
    assert grey.shape == (32, 40) and np.allclose(grey, rgb.mean(axis=-1))
    two = CHANNELS | {"nchan": 2, "chan": 2, "chan2": 3}
    pair = segimg.prepare_image(rgb, two)
    assert pair.shape == (2, 32, 40) and (pair[0] == rgb[..., 1]).all() and (pair[1] == rgb[..., 2]).all()


def problems_of(image, channels):
    return [(p.code, p.what) for p in segimg.image_problems(image, "x.tif", channels)]


def test_images_that_do_not_fit_the_settings_are_named_with_the_reason():
    rgb = np.random.default_rng(0).random((8, 8, 3))
    assert problems_of(rgb, CHANNELS) == [] and problems_of(rgb[..., 0], CHANNELS) == []
    assert problems_of(np.zeros((2, 3, 8, 8)), CHANNELS)[0][0] == "image-axes"
    grey_asks_blue = CHANNELS | {"chan": 3}
    assert "asks for channel index 2" in problems_of(np.random.rand(8, 8, 2), grey_asks_blue)[0][1]
    assert problems_of(np.full((8, 8), np.nan), CHANNELS)[0][0] == "non-finite-image"  # validation's checks


def test_a_channel_axis_only_a_label_could_tell_is_refused_unless_given():
    zcyx = np.random.default_rng(1).random((20, 2, 16, 16))
    volumes = CHANNELS | {"dim": 3, "nchan": 2, "chan": 1, "chan2": 2}
    (code, message), *_ = problems_of(zcyx, volumes)
    assert code == "channel-axis" and "(20, 2, 16, 16)" in message  # the guess would take z for channels
    assert problems_of(zcyx, volumes | {"channel_axis": 1}) == []
    assert segimg.prepare_image(zcyx, volumes | {"channel_axis": 1}).shape == (2, 20, 16, 16)


def test_outlines_are_red_on_the_objects_edges_only():
    masks = cells((48, 48), n=3, size=8)
    image = np.random.default_rng(1).random((48, 48))
    pic = segimg.outlines_picture(image, masks)
    assert pic.shape == (48, 48, 3) and pic.dtype == np.uint8
    red = (pic[..., 0] == 255) & (pic[..., 1] == 38)
    from skimage.segmentation import find_boundaries

    assert (red == find_boundaries(masks, mode="inner")).all()
    overlay = segimg.overlay_picture(image, masks)
    assert overlay.shape == (48, 48, 3)
    assert not np.array_equal(overlay[masks > 0], pic[masks > 0])  # the objects are filled


def test_a_volume_is_drawn_as_planes_side_by_side():
    masks = np.zeros((8, 16, 16), np.uint16)
    masks[2:6, 4:10, 4:10] = 1
    pic = segimg.outlines_picture(np.random.default_rng(2).random((8, 16, 16)), masks)
    assert pic.shape[0] == 16 and pic.shape[1] > 16 and pic.shape[2] == 3


def test_images_without_objects_come_first_then_the_highest_flow_error():
    rows = [
        {"image": "a", "objects": 12, "mean_flow_error": 0.1},
        {"image": "b", "objects": 0, "mean_flow_error": float("nan")},
        {"image": "c", "objects": 30, "mean_flow_error": 0.3},
        {"image": "d", "objects": 2, "mean_flow_error": 0.1},
    ]
    for row in rows:
        row |= {"diameter": 10.0, "draft": "", "in_training": False}
    ranked = seg.review_order(rows)
    assert [r["image"] for r in ranked] == ["b", "c", "d", "a"]
    assert ranked[0]["why"] == "no object found" and ranked[0]["rank"] == 1
    assert "0.300" in ranked[1]["why"]


def test_the_results_folder_is_found_from_a_sets_file():
    path = Path("res") / seg.SET_FOLDER.format(model="m", set="s") / "segmentation.tsv"
    assert seg.results_of_set_file(path) == Path("res")


def test_the_flow_error_is_low_for_masks_that_explain_the_flows():
    core = pytest.importorskip("omnipose.core")
    from omnitrain.inference import diameter, flow_errors

    masks = cells((64, 64), n=4, size=12)
    flows = core.masks_to_flows(masks.astype(np.int32), omni=True, use_gpu=False)[-1]
    flows = 5 * np.asarray(flows.cpu().numpy() if hasattr(flows, "cpu") else flows)  # as the network's
    good = flow_errors(masks, [None, flows])
    shifted = np.roll(masks, 5, axis=1)
    bad = flow_errors(shifted, [None, flows])
    assert len(good) == masks.max() and good.max() < 1e-6 < bad.mean()
    assert flow_errors(np.zeros_like(masks), [None, flows]).size == 0
    assert diameter(masks) == pytest.approx(float(core.diameters(masks)))
    assert diameter(np.zeros_like(masks)) == 0.0
