"""Rule segment_images: segment a batch of new images with a registered version, each into its own folder.

Per image: ``<stem>_cp_masks.tif`` (Omnipose's name), ``<stem>_outlines.png``, ``<stem>_overlay.png`` and
``segmentation.json`` (objects, diameter, Omnipose's flow error, seconds). A folder that exists
(same image, version, settings and code) is reused, so a rerun segments only new or changed images; a
new folder is written under a temporary name and renamed when complete (omnitrain/folders.py).
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

import imageio.v3 as iio

from omnitrain import sizemodel
from omnitrain.folders import make_folder
from omnitrain.imageio import ReadError, read_array, write_tiff
from omnitrain.inference import diameter, flow_errors, segment_array
from omnitrain.labels import label_dtype
from omnitrain.manifest import write_json
from omnitrain.omni import omnipose_models
from omnitrain.problems import error, format_report
from omnitrain.runlog import get_logger, route_omnipose, run_step
from omnitrain.segment_image import image_problems, outlines_picture, overlay_picture, prepare_image
from omnitrain.training import load_trained_model, resolve_device
from omnitrain.validation import several_pages


def check(items, channels) -> None:
    """Every image of the batch first: one that cannot be read or segmented stops the batch, writing
    nothing, with every such image named and the fix."""
    found = []
    for item in items:
        try:
            pages = several_pages(
                Path(item["image"]), "image", channels["dim"], fix="save each page as its own image file"
            )
            found += [pages] if pages else image_problems(read_array(item["image"]), item["image"], channels)
        except ReadError as exc:
            found.append(error(item["image"], "unreadable", f"cannot be read ({exc})", "re-export the image"))
    if found:
        title = "These images cannot be segmented with the version's channel settings"
        sys.stderr.write(format_report(found, title) + "\n")
        sys.exit(1)


def segment(item, model, card, settings, size, device, out: Path) -> dict:
    image = prepare_image(read_array(item["image"]), settings["channels"])
    start = time.perf_counter()
    masks, flows, rescale = segment_array(model, image, card, settings["prediction"]["evaluation"], size)
    seconds = time.perf_counter() - start
    stem = Path(item["image"]).stem
    write_tiff(out / f"{stem}_cp_masks.tif", masks.astype(label_dtype(int(masks.max()))))
    iio.imwrite(out / f"{stem}_outlines.png", outlines_picture(image, masks))
    iio.imwrite(out / f"{stem}_overlay.png", overlay_picture(image, masks))
    errors = flow_errors(masks, flows)
    stats = {
        "image": item["image"],
        "name": item["name"],
        "source": item["source"],
        "model_version": item["model_version"],
        "masks": f"{stem}_cp_masks.tif",
        "shape": list(masks.shape),
        "objects": int(masks.max()),
        "diameter": diameter(masks),
        "mean_flow_error": float(errors.mean()) if len(errors) else float("nan"),
        "max_flow_error": float(errors.max()) if len(errors) else float("nan"),
        "rescale": rescale,
        "seconds": round(seconds, 3),
        "device": device,
    }
    write_json(out / "segmentation.json", stats)
    return stats


def main(sm) -> None:
    log = get_logger(sm.log[0])
    items = sm.params.images
    todo = [item for item in items if not Path(item["folder"]).is_dir()]
    settings = sm.params.settings
    check(todo, settings["channels"])
    made = 0
    if todo:
        omnipose_models()  # its import sets up Omnipose's logging, rerouted below
        import torch

        route_omnipose(sm.log[0])
        files = sm.params.files
        card = json.loads(Path(files["card"]).read_text())
        gpu, device = resolve_device(sm.params.use_gpu)
        torch.set_num_threads(sm.threads)
        model = load_trained_model(files["model"], card, gpu)
        size = sizemodel.load(files["size_model"]) if files["size_model"] else None
        log.info(f"segmenting {len(todo)} image(s) on {device} with {files['model']}")
        for item in todo:
            stats = {}

            def fill(tmp, item=item, stats=stats):
                stats.update(segment(item, model, card, settings, size, device, tmp))

            if make_folder(Path(item["folder"]), fill):
                made += 1
                log.info(
                    f"{item['image']}: {stats['objects']} objects, diameter"
                    f" {stats['diameter']:.1f} px, {stats['seconds']:.1f} s -> {item['folder']}"
                )
            else:
                log.info(f"{item['image']}: {item['folder']} was made by another run meanwhile: reused")
    for item in items:
        if item not in todo:
            log.info(f"{item['image']}: {item['folder']} exists (same image, version and code): reused")
    Path(sm.output.table).write_text("source\tkey\n" + "".join(f"{i['source']}\t{i['key']}\n" for i in items))
    log.info(f"batch of {len(items)} image(s): {made} segmented, {len(items) - made} reused")


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
