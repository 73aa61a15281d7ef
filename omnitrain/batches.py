"""Per-image work in batches: a few Snakemake jobs for many images, one image redone per edited file.

Each source image's prepared files live in their own content-addressed folder,
``<results>/images/<sid>/<version>/``, whose version covers the image's files, settings and code. The
``prepare_images`` rule handles a *batch* of about :data:`IMAGES_PER_JOB` images: it makes the folders
that do not exist yet (into a temporary folder, renamed when complete) and reuses the others, then
writes the batch's table (source, version, folder, made or reused). A dataset of 10,000 images is so
about 600 jobs, not 10,000: Snakemake plans them in seconds, and a run starts 600 Python processes
(or cluster jobs) instead of 10,000, each of which would spend longer importing numpy than working.

Batches are cut by the images' ids themselves (content-defined chunking): in sorted order, an id ends
its batch when its hash is 0 modulo :data:`IMAGES_PER_JOB`. Adding, removing or editing one image so
changes its own batch (and, when it was a boundary, the neighbouring one), never the grouping of the
images after it; the batch's id is derived from its images' versions. The batch size is a constant,
not a setting: the training set's inputs are its batch tables, and Snakemake's input rerun trigger
would rerun an existing training set in place if a setting regrouped them.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

#: Mean number of images per prepare_images job.
IMAGES_PER_JOB = 16
COLUMNS = ("source", "version", "folder", "status")


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


def write_table(path: str | Path, rows: list[dict]) -> None:
    """The batch's table, written whole or not at all (temporary file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: row[k] for k in COLUMNS} for row in rows)
    os.replace(tmp, path)


def read_tables(paths) -> list[tuple[str, Path]]:
    """(source id, prepared folder) of every image of the given batch tables, sorted by source id.

    A folder that is gone (deleted by hand) stops here with the fix, instead of failing later on a
    missing file deep inside the step that reads it.
    """
    found: list[tuple[str, Path]] = []
    for table in map(Path, paths):
        with open(table, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                folder = Path(row["folder"])
                if not folder.is_dir():
                    raise FileNotFoundError(
                        f"{folder}: the prepared files of {row['source']} are missing (deleted by hand?)."
                        f" Remove {table} and run snakemake again to make them again"
                    )
                found.append((row["source"], folder))
    return sorted(found)
