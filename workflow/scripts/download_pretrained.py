"""Rule download_pretrained: one of Omnipose's built-in models, fetched over verified TLS (or found) in
Omnipose's model folder, checked against its git blob id in Omnipose's model repository and against the
config, and copied into its step's folder with its sha256 and blob id."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

from omnitrain.hashing import sha256
from omnitrain.manifest import write_json
from omnitrain.omni import omnipose_models
from omnitrain.pretrained import (
    PretrainedError,
    builtin,
    copy_atomic,
    download_verified,
    fetch,
    git_blob_id,
    model_url,
    not_the_builtin,
)
from omnitrain.runlog import get_logger, route_omnipose, run_step
from omnitrain.training import architecture, loadable, weights_differences


def main(sm) -> None:
    models = omnipose_models()
    log = get_logger(sm.log[0])
    route_omnipose(sm.log[0])
    cfg = sm.params.settings
    model = builtin(cfg["pretrained_model"])
    url = model_url(model, models._MODEL_URL)
    try:
        path, downloaded = fetch(
            model,
            url,
            models.MODEL_DIR,  # Omnipose's: CELLPOSE_LOCAL_MODELS_PATH, or ~/.cellpose/models
            download=download_verified,  # TLS verified (Omnipose's own download turns it off), 120 s timeout
            readable=loadable,
        )
        log.info(f"{'downloaded' if downloaded else 'found (not downloaded)'} {model.name}: {path}")
        # The whole network, not only nchan and nclasses: Cellpose keeps other files of the same names there
        reference = models.CellposeModel(
            gpu=False, nchan=cfg["nchan"], nclasses=cfg["nclasses"], dim=cfg["dim"]
        )
        differences = weights_differences(path, reference.net.state_dict())
        if differences:
            raise not_the_builtin(model, path, downloaded, differences)
        found = architecture(path)
    except PretrainedError as exc:
        log.info(f"\n{exc}")  # (the log goes to stderr too: one message)
        sys.exit(1)
    copy_atomic(path, sm.output.weights)  # the run's own copy: the cluster's GPU nodes read it from results/
    record = {
        "name": model.name,
        "url": url,
        "omnipose_file": str(path),
        "downloaded": downloaded,
        "sha256": sha256(sm.output.weights),
        "git_blob_id": git_blob_id(sm.output.weights),  # = the id in Omnipose's model repository (checked)
        **found,
        "diam_mean": model.diam_mean,
    }
    write_json(sm.output.record, record)
    log.info(f"{model.name}: sha256 {record['sha256']}; nchan {found['nchan']}, nclasses {found['nclasses']}")


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
