"""Segment new images with a registered version: which version, its settings, and the tables.

``snakemake segment --config segment_dir=FOLDER segment_model=latest`` applies a registered version
(``latest``, a version id or a prefix of one, or an experiment name: its latest version) to every image
of ``segment_dir``, found with the training naming rules (img_filter, look_one_level_down; labels, if
any, are ignored). The channel selection and the Omnipose call are the version's own, read from its
record, in the same code as its held-out images (omnitrain/preprocess.py, omnitrain/inference.py).

Each image's masks live in ``<results>/segmentations/<version>/images/<source>/<key>/``, whose key covers
the image's bytes and name, the version's settings and the code, so a rerun segments only new or
changed images. A *set* (``sets/<id>/``) gathers one run's images: the table, the review order and,
with ``segment_drafts``, the drafts to correct (see :mod:`omnitrain.drafts`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .channels import plan_from_config
from .evaluation import _grey, volume_planes
from .hashing import version_id
from .preprocess import select_channels
from .registry import load_records

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
    "median_diameter",
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
    results = Path(results)
    records = load_records(results)
    if not records:
        raise SegmentError(
            f"segment_model: {name!r}, but no version is registered in {results}: run snakemake first to"
            " train and register one"
        )
    if name == "latest":
        latest = results / "latest.txt"
        if not latest.is_file():
            raise SegmentError(f"segment_model: latest, but {latest} does not exist: run snakemake first")
        name = latest.read_text().strip()
        named = [r for r in records if r["version"] == name]
        if not named:
            raise SegmentError(f"{latest} names version {name}, whose record is gone: run snakemake again")
        return named[0]
    of_experiment = [r for r in records if r.get("experiment", "base") == name and not r.get("fold")]
    if of_experiment:
        return of_experiment[-1]
    matches = [r for r in records if r["version"].startswith(name)]
    if len(matches) != 1:
        known = ", ".join(r["version"] for r in records[-5:])
        experiments = sorted({r.get("experiment", "base") for r in records})
        what = "no registered version" if not matches else "more than one registered version"
        raise SegmentError(
            f"segment_model: {name!r} matches {what} in {results}: give latest, an experiment"
            f" ({', '.join(experiments)}) or a version id (the newest: {known}; all: {results}/registry.tsv)"
        )
    return matches[0]


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


def prepare_image(image: np.ndarray, channels: dict) -> np.ndarray:
    """The image as the version's held-out images were handed to it: its channels selected as in
    training (channels first), a single channel without its axis."""
    plan, problems = plan_from_config(channels)
    if problems:
        raise SegmentError("; ".join(problems))
    data, _ = select_channels(image, None, plan, channels["dim"], channels["channel_axis"])
    return data[0] if data.shape[0] == 1 else data


def image_problem(image: np.ndarray, channels: dict) -> str | None:
    """Why an image cannot be segmented with these channel settings (its axes, its channels), or None."""
    from .channels import find_channel_axis

    axis, why = find_channel_axis(image.shape, None, channels["dim"], channels["channel_axis"])
    if why:
        return why
    plan, problems = plan_from_config(channels)
    if problems:
        return "; ".join(problems)
    return plan.incompatibility(1 if axis is None else image.shape[axis])


def _grey_of(image: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The first channel of a channels-first image (its only one otherwise), as a float array."""
    img = image.astype(np.float64)
    return img[0] if img.ndim == masks.ndim + 1 else img


def _planes(picture: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """A volume's picture: the planes evaluation's overlays show, side by side; a 2D picture as it is."""
    if masks.ndim == 2:
        return picture
    gap = np.ones((masks.shape[1], 4, 3))
    tiles = []
    for z in volume_planes(masks):
        tiles += [gap, picture[z]] if tiles else [picture[z]]
    return np.concatenate(tiles, axis=1)


def outlines_picture(image: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """RGB uint8: the image in grey with the objects' outlines in red (a volume: three z-planes)."""
    from skimage.segmentation import find_boundaries

    grey = _grey(_grey_of(image, masks))
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    edges = np.stack([find_boundaries(m, mode="inner") for m in masks]) if masks.ndim == 3 else None
    rgb[find_boundaries(masks, mode="inner") if edges is None else edges] = (1.0, 0.15, 0.1)
    return (_planes(rgb, masks) * 255).round().astype(np.uint8)


def overlay_picture(image: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """RGB uint8: every object filled in its own colour over the grey image (a volume: three z-planes)."""
    from skimage.color import label2rgb

    grey = _grey(_grey_of(image, masks))
    rgb = label2rgb(masks, image=grey, alpha=0.35, bg_label=0, image_alpha=1.0)
    return (_planes(np.clip(rgb, 0, 1), masks) * 255).round().astype(np.uint8)


def review_order(rows: list[dict]) -> list[dict]:
    """The images to correct first: those without objects, then the highest mean flow error (the masks
    explain the network's own flows worst), then those with the fewest objects. Each row gains
    ``rank`` and ``why``."""

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
    return {k: row[k] for k in ("objects", "mean_flow_error", "median_diameter", "draft", "in_training")}
