"""Segment new images with a registered version: which version, its settings, and the tables.

``snakemake segment --config segment_dir=FOLDER segment_model=latest`` applies a registered version
(``latest``, a version id or a prefix of one, or an experiment name: its latest version) to every image
of ``segment_dir``, found with the training naming rules (img_filter, look_one_level_down; labels, if
any, are ignored). The channel selection and the Omnipose call are the version's own, read from its
record, in the same code as its held-out images (omnitrain/preprocess.py, omnitrain/inference.py); the
per-image work is :mod:`omnitrain.segment_image`'s.

Each image's masks live in ``<results>/segmentations/<version>/images/<source>/<key>/``, whose key covers
the image's bytes and name, the version's settings and the code, so a rerun segments only new or
changed images. A *set* (``sets/<id>/``) gathers one run's images: the table, the review order and,
with ``segment_drafts``, the drafts to correct (see :mod:`omnitrain.drafts`).
"""

from __future__ import annotations

import math
from pathlib import Path

from .hashing import version_id
from .registry import RegistryProblem, resolve

#: Below the results folder: one segmented image, by the registered version that segmented it.
IMAGE_FOLDER = "segmentations/{model}/images/{source}/{key}"
#: The table of one segment_images job.
BATCH_TABLE = "segmentations/{model}/batches/{batch}.tsv"
#: One set of segmented images (one run of the segment target).
SET_FOLDER = "segmentations/{model}/sets/{set}"
#: The pointer to the set made last: <results>/segmentations/latest.txt (and the link "latest").
LATEST = "segmentations/latest.txt"

TABLE_COLUMNS = [
    "image",
    "objects",
    "diameter",
    "mean_flow_error",
    "max_flow_error",
    "rescale",
    "seconds",
    "masks",
    "in_training",
    "draft",
]


def results_of_set_file(path: str | Path) -> Path:
    """The results folder, from a file directly inside a set's folder (so a moved results folder works)."""
    return Path(path).parents[len(Path(SET_FOLDER).parts)]


class SegmentError(ValueError):
    """A segment request that cannot be carried out (the message says why and what to do)."""


def resolve_model(results: str | Path, name: str) -> dict:
    """The record of the registered version ``name`` names: "latest" (the one latest.txt names), an
    experiment's name (its latest version without a fold), or a version id (or a unique prefix)."""
    try:
        return resolve(results, name, experiments=True)
    except RegistryProblem as exc:
        raise SegmentError(f"segment_model: {exc}") from None


def model_settings(record: dict) -> dict:
    """What a version segments with, from its record: its held-out images' channel settings and its
    prediction's settings (thresholds, size model)."""
    steps = record.get("params", {}).get("steps", {})
    if "heldout_image" not in steps or "prediction" not in steps:
        raise SegmentError(
            f"version {record['version']} was registered before its settings were recorded by step"
            " (December 2026): it cannot be applied; register a newer version"
        )
    return {"channels": steps["heldout_image"], "prediction": steps["prediction"]}


def model_files(record: dict) -> dict[str, str | None]:
    """The model file the version was scored with, its card, and its size model when it rescaled the
    held-out images with it."""
    files = record["paths"]["files"]
    chosen = (record.get("model") or {}).get("selected") or {}
    p = model_settings(record)["prediction"]
    uses_size = bool(p["train_size"] and p["diameter"] > 0 and p["evaluation"]["use_size_model"])
    return {
        "model": chosen.get("file") or files["model_file"],
        "card": files["card"],
        "size_model": files.get("size_model_file") if uses_size else None,
    }


def image_key(version: str, settings: dict, sha256: str, name: str, code: str, env: str) -> str:
    """The folder key of one segmented image: what decides its files besides the version."""
    return version_id("segment_image", version, settings, sha256, name, code, env)


def set_id(version: str, images: list[list[str]], drafts: dict, code: str, env: str) -> str:
    """A set's id: its version, its images' (source, key), and what decides the drafts (on or off, the
    names they get, which images are already in the training folders and so get none)."""
    return version_id("segment_set", version, images, drafts, code, env)


def review_order(rows: list[dict]) -> list[dict]:
    """The images to correct first: those without objects, then by mean flow error, highest first (the
    masks explain the network's own flows worst); ties by fewer objects. Each row gains ``rank`` and
    ``why``."""

    def key(row):
        err = row["mean_flow_error"]
        return (row["objects"] > 0, -(err if err == err else math.inf), row["objects"], row["image"])

    out = []
    for rank, row in enumerate(sorted(rows, key=key), start=1):
        if row["objects"] == 0:
            why = "no object found"
        else:
            why = f"mean flow error {row['mean_flow_error']:.3f} over {row['objects']} object(s)"
        out.append({"rank": rank, "image": row["image"], "why": why, **_review_fields(row)})
    return out


def _review_fields(row: dict) -> dict:
    return {k: row[k] for k in ("objects", "mean_flow_error", "diameter", "draft", "in_training")}
