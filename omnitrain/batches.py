"""Per-image work in batches: a few Snakemake jobs for many images, one image redone per edited file.

Each source image's prepared files live in their own content-addressed folder,
``<results>/images/<sid>/<version>/``, whose version covers the image's files, settings and code. The
``prepare_images`` rule handles a *batch* of about :data:`IMAGES_PER_JOB` images: it makes the folders
that do not exist yet (into a temporary folder, renamed when complete) and reuses the others, then
writes the batch's table (source, version). A dataset of 10,000 images is so about 600 jobs, not
10,000: Snakemake plans them in seconds, and a run starts 600 Python processes (or cluster jobs)
instead of 10,000, each of which would spend longer importing numpy than working.

Batches are cut by the images' ids themselves (content-defined chunking): in sorted order, an id ends
its batch when its hash is 0 modulo :data:`IMAGES_PER_JOB`, or when the batch reaches 4x that. Adding,
removing or editing one image so changes its own batch, at most with its neighbours (when it was a
boundary, or up to the next boundary after a cut by the cap), not the grouping of all the images after
it as fixed-size slices of the sorted list would. The batch's id is derived from its images' versions.

The batch size is a constant, not a setting: the training set's inputs are its batch tables, and
Snakemake's input rerun trigger would rerun an existing training set in place if a setting regrouped
them. For the same reason this module is part of the code of the steps that read the tables (pack,
heldout_set), so regrouping gives a new training set version; it is not part of the images' own
versions (prepare_images.py does not import it): a folder's content does not depend on the grouping.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from .layout import image_folder, results_of_batch_table

#: Mean number of images per prepare_images job.
IMAGES_PER_JOB = 16


def _ends_batch(sid: str, per_job: int) -> bool:
    return int.from_bytes(hashlib.sha256(sid.encode()).digest()[:8], "big") % per_job == 0


def batches(ids, per_job: int = IMAGES_PER_JOB, max_size: int | None = None) -> list[list[str]]:
    """Sorted ids cut into batches of about ``per_job`` ids, at most ``max_size`` (default 4x that).

    The cap bounds the longest job; it is rarely reached (a run of 64 ids without a boundary has
    probability (15/16)**64, about 1 in 60, per batch)."""
    max_size = max_size or 4 * per_job
    out: list[list[str]] = []
    current: list[str] = []
    for sid in sorted(ids):
        current.append(sid)
        if _ends_batch(sid, per_job) or len(current) >= max_size:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def batch_ids(ids, versions: dict[str, str], refused: str = "") -> dict[str, list[str]]:
    """{batch id: its source ids}: the batches of ``ids``, each named by its images' versions.

    ``refused`` (the input folders' naming errors, "" when there are none) enters the ids when it is
    not empty: refused batches are other jobs than the batches of the same images once fixed.

    The id is a sha256 of (source id, version) pairs, computed here rather than with
    omnitrain.versions.version_id: this module is part of the code of the steps that read the batch
    tables (their versions cover it), and must not pull the rest of the versioning code in with it.
    """
    out = {}
    for members in batches(ids):
        parts = ["image_batch", [[s, versions[s]] for s in members]] + ([refused] if refused else [])
        text = json.dumps(parts, separators=(",", ":"))
        out[hashlib.sha256(text.encode()).hexdigest()[:12]] = members
    return out


def read_tables(paths) -> list[tuple[str, Path]]:
    """(source id, prepared folder) of every image of the given batch tables, sorted by source id.

    A table at ``<results>/image_batches/<id>.tsv`` lists ``source`` and ``version``; the folder is
    ``<results>/images/<source>/<version>/``, found from the table's own place (so a results folder
    that was moved or copied still works). A folder that is gone (deleted by hand) stops here with
    the fix, instead of failing later on a missing file deep inside the step that reads it.
    """
    found: list[tuple[str, Path]] = []
    for table in map(Path, paths):
        results = results_of_batch_table(table)
        with open(table, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                folder = image_folder(results, row["source"], row["version"])
                if not folder.is_dir():
                    raise FileNotFoundError(
                        f"{folder}: the prepared files of {row['source']} are missing (deleted by hand?)."
                        f" Remove {table} and run snakemake again to make them again"
                    )
                found.append((row["source"], folder))
    return sorted(found)
