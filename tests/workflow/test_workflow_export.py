"""Sharing a model through snakemake: `snakemake export` packages the demo model (trained once per session,
conftest.py demo_trained) for the BioImage Model Zoo. `bioimageio test` passes on the zip; reloaded with
bioimageio.core it segments the held-out images as the pipeline did; its weights are the pipeline's net."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import yaml
from helpers import copy_run, dry_run_jobs, run_snakemake

from omnitrain import export
from omnitrain.discovery import discover
from omnitrain.imageio import read_array

pytestmark = [pytest.mark.workflow, pytest.mark.quality]
pytest.importorskip("cellpose_omni.models")
pytest.importorskip("bioimageio.core")

EXPORT = {
    "authors": [{"name": "Ada Tester", "affiliation": "omnitrain tests"}],
    "license": "MIT",
    "tags": ["bacteria", "phase-contrast"],
}


@pytest.fixture(scope="module")
def exported(demo_trained, tmp_path_factory):
    """A copy of the demo run, its latest version exported: (work, config, version, the zip)."""
    work, config, version = demo_trained
    work = copy_run(work, tmp_path_factory.mktemp("export") / "work")
    config = {**config, "export": EXPORT}
    run = run_snakemake(work, config, "export")
    assert run.returncode == 0, run.stderr[-4000:]
    return work, config, version, (work / "results/exports/latest.zip").resolve()


def record_of(work: Path, version: str) -> dict:
    return json.loads((work / f"results/versions/{version}/record.json").read_text())


def version_model(work: Path, version: str):
    """(record, model card, the Omnipose model the version was scored with, loaded on the CPU)."""
    from omnitrain.training import load_trained_model

    record = record_of(work, version)
    card = json.loads((work / record["paths"]["files"]["card"]).read_text())
    return record, card, load_trained_model(work / record["model"]["selected"]["file"], card, gpu=False)


def rdf_of(package: Path) -> dict:
    with zipfile.ZipFile(package) as z:
        return yaml.safe_load(z.read("rdf.yaml"))


def test_bioimageio_test_passes_on_the_exported_package(exported):
    work, _, version, package = exported
    assert package.name == f"omnipose_{version}.zip"
    assert package.parent.parent == work / "results/exports" / version
    cli = Path(sys.executable).parent / "bioimageio"
    run = subprocess.run([str(cli), "test", str(package)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    assert "passed" in run.stdout and "❌" not in run.stdout
    # both weight formats reproduce the test outputs, and run at every size the test tries
    assert "Reproduce test outputs from test inputs (pytorch_state_dict)" in " ".join(run.stdout.split())
    assert "Reproduce test outputs from test inputs (torchscript)" in " ".join(run.stdout.split())
    summary = json.loads((package.parent / "test_summary.json").read_text())
    assert summary["status"] == "passed"


def test_the_package_describes_the_model_its_scores_and_its_makers(exported):
    work, _, version, package = exported
    rdf, record = rdf_of(package), record_of(work, version)
    assert rdf["format_version"].startswith("0.5.") and rdf["type"] == "model"
    assert rdf["authors"] == EXPORT["authors"] and rdf["license"] == "MIT"
    assert {"omnipose", "instance-segmentation", "bacteria", "phase-contrast"} <= set(rdf["tags"])
    cited = {export.OMNIPOSE_CITATION["doi"], export.CELLPOSE_CITATION["doi"]}
    assert {c["doi"] for c in rdf["cite"]} == cited
    state_dict = rdf["weights"]["pytorch_state_dict"]
    assert state_dict["architecture"]["import_from"] == "cellpose_omni.resnet_torch"
    assert state_dict["architecture"]["callable"] == "CPnet"
    assert state_dict["architecture"]["kwargs"]["nbase"] == [1, 32, 64, 128, 256]
    assert rdf["weights"]["torchscript"]["parent"] == "pytorch_state_dict"
    flows = rdf["outputs"][0]
    assert flows["axes"][1]["channel_names"] == ["flow_y", "flow_x", "distance"]
    assert [a.get("halo") for a in flows["axes"][2:]] == [export.HALO] * 2
    assert rdf["inputs"][0]["pad"] == {"mode": "reflect"}
    with zipfile.ZipFile(package) as z:
        readme = z.read(rdf["documentation"]["source"]).decode()
        cover = iio.imread(z.read(rdf["covers"][0]["source"]))
        assert json.loads(z.read("record.json"))["version"] == version
    ev = record["params"]["steps"]["prediction"]["evaluation"]
    assert f"mask_threshold {ev['mask_threshold']}" in readme
    assert f"flow_threshold {ev['flow_threshold']}" in readme
    for name, scores in record["scores"]["per_image"].items():
        assert f"| {name} | {scores['ap50']:.3f} | {scores['mean_ap']:.3f} |" in readme
    # the package's own held-out score (see below): equal to the pipeline's on the demo
    assert f"scores AP@0.5 {record['scores']['summary']['ap50']:.3f}" in readme
    assert cover.shape[1] == 2 * cover.shape[0] and cover.shape[2] == 3


def test_the_zip_reloads_with_bioimageio_core_and_segments_as_the_pipeline(exported):
    from bioimageio.core import load_model_description
    from cellpose_omni.metrics import average_precision

    from omnitrain.inference import segment_array

    work, _, version, package = exported
    record, card, pipeline = version_model(work, version)
    model = load_model_description(package)
    ev = record["params"]["steps"]["prediction"]["evaluation"]
    pairs = discover(work / record["paths"]["folders"]["heldout"]).pairs
    assert len(pairs) == 3  # 400 x 400, 420 x 380 and 1100 x 960 px: two padded to sizes the package takes
    recorded = json.loads((package.parent / "export.json").read_text())["heldout"]
    assert set(recorded["package"]["flows"]) == {p.base for p in pairs}
    for base, flows in recorded["package"]["flows"].items():  # as the job measured them, every image
        assert flows["max_difference"] <= 0.02 * flows["range"], (base, flows)
    for pair in pairs[:2]:  # and again here, independently, on the two smaller images
        image = read_array(pair.image)
        flows = export.package_flows(model, image[None])
        _, theirs, _ = segment_array(pipeline, image, card, ev)  # the pipeline's own call (predict_heldout's)
        theirs = np.concatenate([theirs[1], theirs[2][None]])  # Omnipose's dP (y, x) and distance field
        difference = np.abs(flows - theirs).max()
        assert difference <= 0.02 * np.ptp(theirs), f"{pair.base}: {difference} of {np.ptp(theirs)}"
        recorded_difference = recorded["package"]["flows"][pair.base]["max_difference"]
        assert recorded_difference == pytest.approx(difference, abs=1e-3)
        masks = export.masks_from_flows(flows, ev)
        made = read_array(work / record["paths"]["folders"]["prediction"] / f"{pair.base}_cp_masks.tif")
        agree = average_precision([made.astype(np.int32)], [masks.astype(np.int32)], [0.9])[0][0, 0]
        assert agree >= 0.98, f"{pair.base}: the package's masks match the pipeline's at IoU 0.9: {agree:.3f}"
    assert recorded["package"]["ap50"] == pytest.approx(record["scores"]["summary"]["ap50"], abs=0.01)
    assert recorded["package"]["mean_ap"] == pytest.approx(record["scores"]["summary"]["mean_ap"], abs=0.01)


def test_the_weights_are_the_pipelines_network(exported):
    import torch
    from cellpose_omni.resnet_torch import CPnet
    from cellpose_omni.transforms import normalize_img

    work, _, version, package = exported
    _, _, pipeline = version_model(work, version)
    rdf = rdf_of(package)
    with zipfile.ZipFile(package) as z:
        test_input = np.load(z.open(rdf["inputs"][0]["test_tensor"]["source"]))
        test_flows = np.load(z.open(rdf["outputs"][0]["test_tensor"]["source"]))
        state = torch.load(z.open(rdf["weights"]["pytorch_state_dict"]["source"]), map_location="cpu")
    # the test output is the version's network on the test input, normalised as Omnipose normalises
    normalised = np.moveaxis(normalize_img(np.moveaxis(test_input[0], 0, -1), omni=True), -1, 0)
    with torch.no_grad():
        expected = pipeline.net.eval()(torch.from_numpy(np.ascontiguousarray(normalised[None])))[0].numpy()
    assert np.allclose(expected, test_flows, atol=1e-5)
    rebuilt = CPnet(**rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"])
    rebuilt.load_state_dict(state, strict=True)
    for key, tensor in pipeline.net.state_dict().items():
        assert torch.equal(state[key], tensor.cpu()), key


def test_export_settings_change_the_package_only(exported):
    work, config, version, package = exported
    assert dry_run_jobs(work, config, goal="export") == {}  # made once
    assert dry_run_jobs(work, config) == {}  # the default target: exporting retrains nothing
    changed = {**config, "export": {**EXPORT, "license": "CC-BY-4.0"}}
    assert dry_run_jobs(work, changed, goal="export") == {"export": 1, "export_latest": 1, "export_model": 1}
    assert dry_run_jobs(work, changed) == {}


def test_a_version_that_is_not_registered_is_refused_in_one_message(exported):
    work, config, _, _ = exported
    run = run_snakemake(work, {**config, "export": {"model": "nope"}}, "export")
    assert run.returncode == 1
    assert "export.model: 'nope' matches no registered version" in run.stderr
    assert "Traceback" not in run.stderr and "common.smk" not in run.stderr
