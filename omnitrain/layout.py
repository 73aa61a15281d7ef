"""Where files live below the results folder, for the parts that scripts need to find themselves.

The step table (:mod:`omnitrain.steps`) names every step's folder; this module holds the few
relations that rule scripts use at run time: the per-image folders listed by the batch tables, and
where Omnipose writes a model. Scripts import this module, not the table, so that editing the table
(adding a step, say) re-versions nothing; editing this module re-versions the steps that use it.
"""

from __future__ import annotations

from pathlib import Path

#: One source image's prepared files, by its version (see omnitrain/batches.py).
IMAGE_FOLDER = "images/{source}/{version}"
#: The table of one prepare_images job: source and version of each of its images.
BATCH_TABLE = "image_batches/{batch}.tsv"
#: Omnipose writes a model (and its checkpoints) to <save_path>/models/<netstr>.
OMNIPOSE_MODELS = "models"


def image_folder(results: str | Path, source: str, version: str) -> Path:
    """The folder of one source image's prepared files (channels selected; tiles/, crops/)."""
    return Path(results) / IMAGE_FOLDER.format(source=source, version=version)


def batch_table(results: str | Path, batch: str) -> Path:
    return Path(results) / BATCH_TABLE.format(batch=batch)


def results_of_batch_table(table: str | Path) -> Path:
    """The results folder a batch table lies in (so a moved or copied results folder still works)."""
    return Path(table).parents[len(Path(BATCH_TABLE).parts) - 1]


def model_file(model_folder: str | Path, name: str) -> str:
    """The path Omnipose gives a model named ``name`` when it trains with save_path=model_folder."""
    return f"{model_folder}/{OMNIPOSE_MODELS}/{name}"


def save_path_of(model: str | Path) -> Path:
    """Omnipose's save_path for a model file at ``model`` (the inverse of :func:`model_file`)."""
    return Path(model).parents[len(Path(OMNIPOSE_MODELS).parts)]
