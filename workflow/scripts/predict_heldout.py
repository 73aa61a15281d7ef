"""Rule predict_heldout: segment every held-out source image (full size) with the trained model."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

import numpy as np

from omnitrain import sizemodel
from omnitrain.discovery import discover
from omnitrain.imageio import read_array, write_tiff
from omnitrain.inference import segment_array
from omnitrain.labels import label_dtype
from omnitrain.omni import omnipose_models
from omnitrain.runlog import get_logger, route_omnipose, run_step
from omnitrain.training import load_trained_model, resolve_device


def main(sm) -> None:
    omnipose_models()  # its import sets up Omnipose's logging, rerouted below
    import torch

    log = get_logger(sm.log[0])
    route_omnipose(sm.log[0])
    cfg = sm.params.settings
    ev = cfg["evaluation"]
    card = json.loads(Path(sm.input.card).read_text())
    gpu, device = resolve_device(cfg["use_gpu"])
    torch.set_num_threads(sm.threads)
    model = load_trained_model(sm.params.files["model"], card, gpu)
    size = sizemodel.load(sm.params.files["size_model"]) if sm.params.files["size_model"] else None
    out = Path(sm.output.predictions)
    out.mkdir(parents=True, exist_ok=True)
    pairs = discover(sm.input.heldout).pairs
    log.info(f"segmenting {len(pairs)} held-out image(s) on {device} with {sm.params.files['model']}")
    for pair in pairs:
        masks, flows, rescale = segment_array(model, read_array(pair.image), card, ev, size)
        write_tiff(out / f"{pair.base}_cp_masks.tif", masks.astype(label_dtype(int(masks.max()))))
        write_tiff(out / f"{pair.base}_flows.tif", np.asarray(flows[0]).astype(np.uint8))
        scale = f", rescale {rescale:.2f} from the size model" if rescale else ""
        log.info(f"{pair.base}: {int(masks.max())} objects predicted{scale}")


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
