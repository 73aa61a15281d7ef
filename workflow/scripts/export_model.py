"""Rule export_model: a BioImage Model Zoo package of one registered version, tested with bioimageio.core.

Writes into the export's folder (made under a temporary name, renamed when complete: omnitrain/folders.py)
``omnipose_<version>.zip`` (bioimageio.spec's packaging of rdf.yaml and the files in omnitrain/export.py's
STAGED), ``test_summary.json`` (bioimageio.core's test of that zip: what `bioimageio test` prints) and
``export.json`` (the package run by bioimageio.core on the held-out images: its scores beside the pipeline's,
and how far its outputs are from the pipeline's). A package whose test fails is not kept: the job fails with
the test's errors.
"""

import functools
import importlib.metadata
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

import imageio.v3 as iio
import numpy as np

from omnitrain import export
from omnitrain.discovery import discover
from omnitrain.evaluation import score
from omnitrain.export import STAGED, ExportError
from omnitrain.folders import make_folder
from omnitrain.imageio import read_array, write_tiff
from omnitrain.manifest import write_json
from omnitrain.omni import omnipose_models
from omnitrain.runlog import get_logger, route_omnipose, run_step
from omnitrain.segment_image import overlay_picture
from omnitrain.training import load_trained_model


def stage(job, version_files, staged: Path, log):
    """Write the package's files into ``staged``; returns the description's metadata, and the function that
    writes the documentation page (given the package's own held-out scores)."""
    import torch

    record, card, model = version_files
    files, version, settings = job["files"], job["version"], job["settings"]
    net = model.net.eval()
    pair, held_out = export.pick_test_image(discover(files["heldout"]).pairs, card["nchan"])
    test_input = export.middle_crop(held_out)[None]
    flows, style = export.network_output(model, test_input[0])
    log.info(f"test tensors: the middle {test_input.shape[-2]} x {test_input.shape[-1]} px of {pair.image}")
    for key, array in (("test_input", test_input), ("test_flows", flows), ("test_style", style)):
        np.save(staged / STAGED[key], array)
    for key, array in (("sample_input", test_input), ("sample_flows", flows), ("sample_style", style)):
        write_tiff(staged / STAGED[key], array)
    torch.save(net.state_dict(), staged / STAGED["weights"])
    normalised = torch.from_numpy(export.network_input(test_input[0])[None])
    with torch.no_grad():
        torch.jit.trace(net, normalised).save(str(staged / STAGED["torchscript"]))
    masks = read_array(Path(files["predictions"]) / f"{pair.base}_cp_masks.tif")
    # the test image as read above (channels first): overlay_picture draws its first channel, as for the file
    plain, drawn = overlay_picture(held_out, np.zeros_like(masks)), overlay_picture(held_out, masks)
    iio.imwrite(staged / STAGED["cover"], export.cover_picture(plain, drawn))
    name = settings["name"] or f"Omnipose model {version}"
    readme = functools.partial(export.documentation, record, card, job["prediction"], pair.image.name, name)
    (staged / STAGED["documentation"]).write_text(readme())
    # torch and Omnipose as trained with (the card's); ncolor as registered, else as here (envs pin it alike)
    ncolor = (record["run"].get("packages") or {}).get("ncolor") or importlib.metadata.version("ncolor")
    versions = {**card["versions"], "ncolor": ncolor}
    (staged / STAGED["environment"]).write_text(export.conda_environment(versions))
    shutil.copyfile(files["record"], staged / STAGED["record"])
    summary = record["scores"]["summary"]
    description = settings["description"] or (
        f"Omnipose network for 2D instance segmentation, trained by the omnitrain pipeline (version"
        f" {version}); held-out AP@0.5 {summary['ap50']:.3f}, mean AP {summary['mean_ap']:.3f} on"
        f" {summary['images']} image(s)."
    )
    meta = {
        "name": name,
        "description": description,
        "authors": settings["authors"],
        "license": settings["license"],
        "tags": settings["tags"],
        "architecture": export.architecture(net),
        "torch": torch.__version__.split("+")[0],
        "nchan": card["nchan"],
        "outputs": export.output_channels(export.card_nout(card), card["dim"]),
        "training": export.training_details(card),
    }
    return meta, readme


def run_on_heldout(description, model, job, nchan: int, log) -> dict:
    """The package on each held-out image, run by bioimageio.core: masks made with the recipe of its
    documentation page and scored as the pipeline scores its own, and its flows beside the pipeline's."""
    pairs = discover(job["files"]["heldout"]).pairs
    log.info(f"running the package with bioimageio.core on {len(pairs)} held-out image(s)")
    scored, differences = [], {}
    for pair in pairs:
        image = export.channels_first(read_array(pair.image), nchan)
        flows = export.package_flows(description, image)
        pipeline = export.pipeline_flows(model, image)
        differences[pair.base] = {
            "max_difference": float(np.abs(flows - pipeline).max()),
            "range": float(np.ptp(pipeline)),
        }
        masks = export.masks_from_flows(flows, job["prediction"]["evaluation"])
        scored.append((pair.base, read_array(pair.label), masks))
    overall = score(scored)[3]
    return {
        "images": len(pairs),
        "ap50": overall["ap50"],
        "mean_ap": overall["mean_ap"],
        "flows": differences,
    }


def make_package(job, folder: Path, log) -> None:
    """Stage the files, run the package on the held-out images, zip it, test the zip: into ``folder`` (a fresh
    temporary one)."""
    files = job["files"]
    record = json.loads(Path(files["record"]).read_text())
    card = json.loads(Path(files["card"]).read_text())
    model = load_trained_model(files["model"], card, gpu=False)  # a few images: the CPU, and plain weights
    staged = folder / ".staged"
    staged.mkdir()
    meta, readme = stage(job, (record, card, model), staged, log)
    package = run_on_heldout(export.describe(staged, meta), model, job, meta["nchan"], log)
    log.info(f"the package's held-out scores: AP@0.5 {package['ap50']:.3f}, mean AP {package['mean_ap']:.3f}")
    (staged / STAGED["documentation"]).write_text(readme(package))
    zipped = export.save_package(export.describe(staged, meta), folder / export.package_name(job["version"]))
    shutil.rmtree(staged)
    log.info(f"testing {zipped.name} with bioimageio.core (what `bioimageio test` runs)")
    tested = export.check_package(zipped)
    if tested["status"] != "passed":
        raise ExportError(
            f"the package of version {job['version']} fails bioimageio's test: "
            + "; ".join(tested["failed"] or [f"status {tested['status']}"])
        )
    write_json(folder / "test_summary.json", tested["summary"])
    made = {"version": job["version"], "package": zipped.name, "settings": job["settings"]}
    heldout = {"package": package, "pipeline": record["scores"]["summary"]}
    write_json(folder / "export.json", {**made, "bioimageio_test": tested["status"], "heldout": heldout})


def main(sm) -> None:
    log = get_logger(sm.log[0])
    omnipose_models()  # its import sets up Omnipose's logging, rerouted below
    route_omnipose(sm.log[0])
    job = sm.params.job
    if not job["settings"]["authors"]:
        log.info("Note: export.authors is empty: the BioImage Model Zoo asks for the model's authors")
    folder = Path(sm.output.folder)
    made = make_folder(folder, lambda tmp: make_package(job, tmp, log))
    package = folder / export.package_name(job["version"])
    if made:
        log.info(f"package: {package} ({package.stat().st_size / 1e6:.1f} MB); bioimageio test: passed")
    else:
        log.info(f"{folder} was made by another run meanwhile: reused")


run_step(main, snakemake, said=(ExportError,))  # noqa: F821 (defined by Snakemake)
