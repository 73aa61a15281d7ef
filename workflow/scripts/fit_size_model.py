"""Rule fit_size_model: Omnipose's SizeModel method (its train() is broken in 1.1.4), saved in its format,
and the diameter error on the held-out images."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

import pandas as pd

from omnitrain import sizemodel
from omnitrain.omni import omnipose_models
from omnitrain.pretrained import rescaling_diam_mean
from omnitrain.runlog import get_logger, route_omnipose, run_step
from omnitrain.training import load_trained_model, load_training_set, resolve_device, seed_everything


def main(sm) -> None:
    omnipose_models()  # its import sets up Omnipose's logging, rerouted below
    import torch

    log = get_logger(sm.log[0])
    route_omnipose(sm.log[0])
    cfg = sm.params.settings
    card = json.loads(Path(sm.input.card).read_text())
    gpu, device = resolve_device(cfg["use_gpu"])
    torch.set_num_threads(sm.threads)
    seed_everything(cfg["pipeline"]["seed"])
    model = load_trained_model(sm.params.model, card, gpu)
    axis = 0 if card["nchan"] > 1 else None
    ts = load_training_set(sm.input.trainset)
    sz = cfg["size_model"]
    params, stats = sizemodel.fit(
        model,
        ts.images,
        ts.labels,
        axis,
        diam_mean=rescaling_diam_mean(cfg),
        n_epochs=sz["n_epochs"],
        batch_size=cfg["batch_size"],
        l2_regularization=sz["l2_regularization"],
        seed=cfg["pipeline"]["seed"],
    )
    sizemodel.save(sm.params.size, params)
    log.info(f"size model on {device}: {stats}; saved {sm.params.size}")

    rows = sizemodel.heldout_errors(params, model, sm.input.heldout, axis)
    table = pd.DataFrame(rows, columns=list(sizemodel.HELDOUT_COLUMNS))
    table.to_csv(sm.output.heldout, sep="\t", index=False)
    if rows:
        log.info(
            f"held-out diameter error: median |relative error| {table['relative_error'].abs().median():.3f}"
        )
    else:
        log.info("no held-out image: the held-out diameter table is empty")


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
