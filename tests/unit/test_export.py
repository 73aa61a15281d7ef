"""omnitrain/export.py: the parts of a BioImage Model Zoo package that are arrays and paths (the package
itself is made and tested through snakemake in tests/workflow/test_workflow_export.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from omnitrain import export
from omnitrain.export import ExportError


@pytest.mark.parametrize(("length", "size"), [(400, 256), (255, 240), (100, 96), (47, 32), (32, 32)])
def test_test_crops_are_sizes_the_package_accepts(length, size):
    assert export.valid_size(length) == size
    assert (size - export.MIN_SIZE) % export.SIZE_STEP == 0


def test_an_image_below_the_smallest_input_is_refused():
    with pytest.raises(ExportError, match="31 px is below the package's smallest input, 32 px"):
        export.valid_size(31)


def test_the_middle_crop_is_cut_from_the_middle_of_each_side():
    image = np.arange(2 * 100 * 60).reshape(2, 100, 60)
    crop = export.middle_crop(image)
    assert crop.shape == (2, 96, 48)
    assert np.array_equal(crop, image[:, 2:98, 6:54])


def test_padding_to_a_valid_size_is_omniposes_half_before_and_the_cut_undoes_it():
    image = np.random.default_rng(0).random((1, 420, 380)).astype(np.float32)
    padded, cut = export.pad_to_valid(image)
    assert padded.shape == (1, 432, 384)  # 420 -> 432: 6 px before, 6 after; 380 -> 384: 2 and 2
    assert np.array_equal(padded[cut], image)
    assert np.array_equal(padded[0, 5, 2:-2], image[0, 1])  # reflection, as Omnipose's np.pad(mode="reflect")
    small, cut = export.pad_to_valid(np.ones((1, 20, 40)))
    assert small.shape == (1, 32, 48) and small[cut].shape == (1, 20, 40)


def test_output_channels_name_omniposes_fields():
    assert export.output_channels(3) == ["flow_y", "flow_x", "distance"]
    assert export.output_channels(4) == ["flow_y", "flow_x", "distance", "boundary"]
    with pytest.raises(ExportError, match="5 outputs"):
        export.output_channels(5)


def test_the_cover_is_twice_as_wide_as_high_the_plain_square_beside_the_overlay():
    plain = np.zeros((40, 60, 3), np.uint8)
    overlay = np.full((40, 60, 3), 200, np.uint8)
    cover = export.cover_picture(plain, overlay)
    assert cover.shape == (40, 80, 3)
    assert (cover[:, :40] == 0).all() and (cover[:, 40:] == 200).all()


def test_each_channel_is_normalised_on_its_own_as_omnipose_does():
    rng = np.random.default_rng(1)
    image = np.stack([rng.random((64, 64)) * 10, rng.random((64, 64)) * 1000 + 500]).astype(np.float32)
    normalised = export.network_input(image)
    assert normalised.shape == image.shape and normalised.dtype == np.float32
    for channel in normalised:
        assert channel.min() == 0 and channel.max() == 1  # clipped at the 0.01 and 99.99 percentiles


@pytest.mark.parametrize("nclasses", [2, 3])
def test_the_architecture_rebuilds_the_network_omnipose_makes_from_the_card(nclasses):
    models = pytest.importorskip("cellpose_omni.models")
    import torch
    from cellpose_omni.resnet_torch import CPnet

    card = {"nchan": 2, "nclasses": nclasses, "dim": 2}
    model = models.CellposeModel(gpu=False, pretrained_model=False, omni=True, diam_mean=0, **card)
    kwargs = export.architecture(model.net)
    assert kwargs["nbase"] == [2, 32, 64, 128, 256] and kwargs["nout"] == export.card_nout(card)
    json.dumps(kwargs)  # what rdf.yaml holds
    rebuilt = CPnet(**kwargs)
    rebuilt.load_state_dict(model.net.state_dict(), strict=True)
    x = torch.rand(1, 2, 64, 64)
    model.net.eval(), rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(x)[0], model.net(x)[0])


def _register(results, version, created, dim=2, experiment="base", test_images=3):
    folder = results / "versions" / version
    folder.mkdir(parents=True)
    card = results / f"card_{version}.json"
    card.write_text(json.dumps({"dim": dim}))
    model = results / f"model_{version}"
    model.write_text("")
    prediction = {"train_size": False, "diameter": 0, "evaluation": {"use_size_model": True}}
    record = {
        "version": version,
        "experiment": experiment,
        "fold": None,
        "created": created,
        "data": {"test_images": test_images},
        "model": {"selected": {"file": str(model)}},
        "params": {"steps": {"heldout_image": {"dim": dim}, "prediction": prediction}},
        "paths": {
            "files": {"model_file": str(model), "card": str(card)},
            "folders": {"heldout": str(results), "prediction": str(results)},
        },
    }
    (folder / "record.json").write_text(json.dumps(record))
    (results / "latest.txt").write_text(version)


def test_the_plan_names_the_version_and_a_folder_keyed_by_settings_and_code(tmp_path):
    results = tmp_path / "results"
    _register(results, "aaaaaaaaaaaa", "2026-01-01")
    _register(results, "bbbbbbbbbbbb", "2026-01-02", experiment="radam")
    settings = {"model": "latest", "name": None, "authors": [], "license": "CC-BY-4.0", "tags": []}
    plan = export.plan({"export": settings}, str(results), "code", "env")
    assert plan["version"] == "bbbbbbbbbbbb"
    assert plan["folder"] == f"{results}/exports/bbbbbbbbbbbb/{plan['key']}"
    assert plan["files"]["record"] == f"{results}/versions/bbbbbbbbbbbb/record.json"
    first = export.plan({"export": {**settings, "model": "aaaa"}}, str(results), "code", "env")
    assert first["version"] == "aaaaaaaaaaaa"
    keys = {
        export.plan({"export": {**settings, **change}}, str(results), code, "env")["key"]
        for change, code in [({}, "code"), ({"license": "MIT"}, "code"), ({}, "other code")]
    }
    assert len(keys) == 3  # the settings and the code decide the package
    by_experiment = export.plan({"export": {**settings, "model": "radam"}}, str(results), "code", "env")
    assert by_experiment["key"] == plan["key"]


def test_a_version_that_is_not_there_or_not_2d_is_refused_with_what_to_do(tmp_path):
    results = tmp_path / "results"
    settings = {"model": "latest", "name": None, "authors": [], "license": "CC-BY-4.0", "tags": []}
    with pytest.raises(ExportError, match="export.model: no version is registered .* run snakemake first"):
        export.plan({"export": settings}, str(results), "code", "env")
    _register(results, "cccccccccccc", "2026-01-01", dim=3)
    with pytest.raises(ExportError, match="3D model: export makes packages of 2D models only"):
        export.plan({"export": settings}, str(results), "code", "env")
    with pytest.raises(ExportError, match="export.model: 'nope' matches no registered version"):
        export.plan({"export": {**settings, "model": "nope"}}, str(results), "code", "env")
    _register(results, "dddddddddddd", "2026-01-02", test_images=0)
    with pytest.raises(ExportError, match="dddddddddddd has no held-out images"):
        export.plan({"export": settings}, str(results), "code", "env")
    old = json.loads((results / "versions/dddddddddddd/record.json").read_text())
    del old["params"]  # registered before settings were recorded by step
    (results / "versions/dddddddddddd/record.json").write_text(json.dumps(old))
    with pytest.raises(ExportError, match="registered before its settings and folders were recorded"):
        export.plan({"export": settings}, str(results), "code", "env")
    (results / "model_cccccccccccc").unlink()
    with pytest.raises(ExportError, match="files are gone .* Name another version with export.model"):
        export.plan({"export": {**settings, "model": "cccc"}}, str(results), "code", "env")


def _staged(folder):
    """A staging folder with files of the shapes a package of a 1-channel model has (none is a real model)."""
    import imageio.v3 as iio
    import tifffile

    folder.mkdir()
    rng = np.random.default_rng(0)  # values: bioimageio.spec refuses all-zero test outputs
    arrays = {
        "test_input": rng.random((1, 1, 32, 32), np.float32),
        "test_flows": rng.random((1, 3, 32, 32), np.float32),
        "test_style": rng.random((1, 256), np.float32),
    }
    for key, array in arrays.items():
        np.save(folder / export.STAGED[key], array)
        tifffile.imwrite(folder / export.STAGED[key.replace("test_", "sample_")], array)
    iio.imwrite(folder / export.STAGED["cover"], np.zeros((16, 32, 3), np.uint8))
    for key in ("weights", "torchscript", "documentation", "environment", "record"):
        (folder / export.STAGED[key]).write_text("# a stand-in\n")
    return folder


META = {
    "name": "a model",
    "description": "a test",
    "authors": [{"name": "Ada Tester"}],
    "license": "CC-BY-4.0",
    "tags": ["bacteria"],
    "architecture": {"nbase": [1, 32, 64, 128, 256], "nout": 3},
    "torch": "2.14.1",
    "nchan": 1,
    "outputs": ["flow_y", "flow_x", "distance"],
    "training": {"training_epochs": 1.0},
}


def test_the_description_is_a_valid_model_0_5_and_refused_settings_name_their_config_keys(tmp_path):
    pytest.importorskip("bioimageio.spec")
    staged = _staged(tmp_path / "staged")
    described = export.describe(staged, META)
    assert described.format_version.startswith("0.5.") and described.authors[0].name == "Ada Tester"
    assert [t.id for t in described.outputs] == ["flows", "style"]
    with pytest.raises(ExportError) as refused:
        export.describe(staged, {**META, "license": "my own licence"})
    assert "export.license" in str(refused.value) and "correct it in the config" in str(refused.value)
    with pytest.raises(ExportError, match=r"export\.authors\[0\]\.orcid"):
        export.describe(staged, {**META, "authors": [{"name": "Ada Tester", "orcid": "0000-0000-0000-0000"}]})


@pytest.mark.parametrize("boundary", [False, True])
def test_masks_from_flows_reconstruct_the_objects_from_their_own_fields(boundary):
    """Omnipose's reconstruction as the package's README calls it, with 3 outputs and with a boundary (4)."""
    core = pytest.importorskip("omnipose.core")
    from skimage.segmentation import find_boundaries

    from omnitrain.metrics import score_image

    labels = np.zeros((96, 96), np.int32)
    labels[10:30, 10:50], labels[40:70, 20:40], labels[60:90, 55:85] = 1, 2, 3
    found = core.masks_to_flows(labels, omni=True, dim=2, use_gpu=False)
    flows = 5 * np.asarray(found[-1].cpu().numpy())  # the network's scale (Omnipose's training targets)
    distance = np.where(labels > 0, np.asarray(found[1]), -5.0)[None]
    edges = np.where(find_boundaries(labels, mode="inner"), 5.0, -5.0)[None]  # boundary logits
    fields = [flows, distance] + [edges] * boundary
    masks = export.masks_from_flows(np.concatenate(fields).astype(np.float32), EVALUATION)
    assert score_image(labels, masks)[1]["ap50"] == 1.0


EVALUATION = {"mask_threshold": 0.0, "flow_threshold": 0.4, "niter": None}


def test_the_environment_pins_what_the_model_was_trained_with_without_local_build_tags():
    text = export.conda_environment({"torch": "2.14.1+cu130", "omnipose": "1.1.4", "ncolor": "1.5.3"})
    assert "- torch==2.14.1\n" in text and "- omnipose==1.1.4\n" in text and "- ncolor==1.5.3\n" in text
    with pytest.raises(KeyError):
        export.conda_environment({"torch": "2.14.1", "omnipose": "1.1.4"})  # no default stands in


def test_the_test_image_is_the_first_held_out_image_large_enough(tmp_path):
    import tifffile

    from omnitrain.discovery import discover

    for name, shape in (("a_small", (20, 100)), ("b_large", (64, 40)), ("c_larger", (200, 200))):
        tifffile.imwrite(tmp_path / f"{name}.tif", np.ones(shape, np.uint16))
        tifffile.imwrite(tmp_path / f"{name}_masks.tif", np.ones(shape, np.uint16))
    pair, image = export.pick_test_image(discover(tmp_path).pairs, nchan=1)
    assert pair.base == "b_large" and image.shape == (1, 64, 40) and image.dtype == np.float32
    with pytest.raises(
        ExportError, match="no held-out image is 32 px or more on each side \\(a_small.tif\\)"
    ):
        export.pick_test_image(discover(tmp_path).pairs[:1], nchan=1)


def test_a_large_cover_is_shrunk_below_the_zoos_size():
    cover = export.cover_picture(np.zeros((1100, 960, 3), np.uint8), np.zeros((1100, 960, 3), np.uint8))
    assert cover.shape == (320, 640, 3)  # every 3rd pixel of the middle 960 px square


def test_export_settings_the_model_zoo_refuses_are_found_before_the_job():
    pytest.importorskip("bioimageio.spec")
    good = {"name": None, "description": None, "authors": [{"name": "Ada"}], "license": "MIT", "tags": []}
    export.check_settings(good)
    export.check_settings({**good, "name": ""})  # empty: the export's own name, as null
    bad = {**good, "name": "v1.0: bacteria", "authors": [{"name": "Ada", "orcid": "1234"}], "license": "mine"}
    with pytest.raises(ExportError) as refused:
        export.check_settings(bad)
    message = str(refused.value)
    assert "export.name: " in message and "export.authors[0].orcid: " in message
    assert "export.license: 'mine' is no SPDX license id" in message and "correct it in the config" in message
