"""Drafts: a model's masks offered as labels to correct, and where the training set's pairs came from.

With ``segment_drafts: true`` a segment set's ``drafts/`` folder holds, for every image not already in
the training folders, a byte-identical copy of the image and the model's masks as
``<base><mask_filter>.tif``: once corrected (Omnipose's GUI, napari, ...), the files drop into ``dir``
as new training pairs. The set's ``drafts.tsv`` records each draft (the image's and the draft label's
sha256, the version that drew it, the masks kept below the results folder).

When a version is registered, every training or held-out pair whose image is a drafted image is
traced back to its draft: which version drew it, and whether its label was edited. A label that is
still the draft (the same bytes, or the same objects under other label numbers, as a viewer that
saves without changes may write them) is flagged: training on it teaches the model its own mistakes.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np

from .folders import make_folder
from .hashing import sha256
from .imageio import read_array

#: Every draft written, in the segment sets' tables (relative to the results folder).
DRAFT_TABLES = "segmentations/*/sets/*/drafts.tsv"
DRAFT_COLUMNS = ["image", "label", "image_sha256", "label_sha256", "model_version", "set", "masks"]


def read_drafts(results: str | Path) -> dict[str, list[dict]]:
    """{image sha256: its drafts (every set that drafted it), oldest table first}."""
    results = Path(results)
    found: dict[str, list[dict]] = {}
    for table in sorted(results.glob(DRAFT_TABLES), key=lambda p: (p.stat().st_mtime, str(p))):
        with open(table, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                row["masks"] = str(results / row["masks"])
                found.setdefault(row["image_sha256"], []).append(row)
    return found


def write_drafts_table(path: str | Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, DRAFT_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def same_objects(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label matrices hold the same objects, whatever numbers they carry: the same
    background, and a one-to-one map between their labels (pixels of one object in ``a`` are one object
    in ``b``, and back)."""
    if a.shape != b.shape or not np.array_equal(a > 0, b > 0):
        return False
    fg = a > 0
    pairs = np.unique(np.stack([a[fg].astype(np.int64), b[fg].astype(np.int64)]), axis=1)
    return pairs.shape[1] == len(np.unique(pairs[0])) == len(np.unique(pairs[1]))


def unedited(label: str | Path, label_sha256: str, draft: dict) -> bool:
    """Whether a training label is still ``draft``'s masks (the bytes, or else the objects)."""
    if label_sha256 == draft["label_sha256"]:
        return True
    masks = Path(draft["masks"])
    if not masks.is_file():  # the draft's masks were deleted from results: the bytes are all we have
        return False
    return same_objects(read_array(label), read_array(masks))


def origins(sources: dict, drafts: dict[str, list[dict]]) -> list[dict]:
    """The pairs of ``sources`` (register's: {sid: {"name", "role", "files"}}) whose image was drafted:
    image and label file names, the role, the version that drew the draft, its set, and ``edited``.

    An image drafted more than once is traced to the draft its label still is, else to the latest."""
    out = []
    for src in sources.values():
        image, label = src["files"]["image"], src["files"]["label"]
        candidates = drafts.get(image["sha256"])
        if not candidates or label is None:
            continue
        still = [d for d in candidates if unedited(label["path"], label["sha256"], d)]
        draft = (still or candidates)[-1]
        prefix = "test_dir/" if src.get("from_test_dir") else ""
        out.append(
            {
                "image": prefix + image["name"],
                "label": prefix + label["name"],
                "role": src["role"],
                "model_version": draft["model_version"],
                "set": draft["set"],
                "edited": not still,
            }
        )
    return sorted(out, key=lambda o: o["image"])


def unedited_by_hash(label_hashes: dict[str, str], drafts: dict[str, list[dict]]) -> list[str]:
    """Label files (path: sha256) whose bytes are a draft's, unchanged: a quick check at start."""
    draft_labels = {d["label_sha256"] for ds in drafts.values() for d in ds}
    return sorted(p for p, h in label_hashes.items() if h in draft_labels)


def place(source: Path, target: Path) -> None:
    """A copy, not a link: people open and edit these files, and an edit in place must not reach the
    image's own files (register compares corrected labels with them)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def write_drafts(drafts_dir: Path, drafted: list[dict]) -> bool:
    """The drafts folder, made once (omnitrain/folders.py): it is no declared output, so a rerun of the
    segment_set rule in place never deletes the corrections someone is making in it. False when it existed
    already."""
    if drafts_dir.is_dir():
        return False

    def fill(tmp: Path) -> None:
        for item in drafted:
            place(Path(item["image"]), tmp / item["draft_image"])  # the same bytes: register recognises it
            place(item["masks_file"], tmp / item["draft"])

    return make_folder(drafts_dir, fill)


def collect_set(items: list[dict], masks_dir: Path, results: Path, mask_filter: str | None, drawn_by: dict):
    """A segment set from its images' folders: every image's masks and pictures copied into ``masks_dir``
    (subfolders kept), its row of the set's table, and, with a ``mask_filter`` (segment_drafts on), a draft
    for each image not in the training folders. ``drawn_by``: {"model_version", "set"}.
    Returns (table rows, drafts table rows, drafts to write)."""
    rows, drafts, drafted = [], [], []
    for item in items:
        folder = Path(item["folder"])
        stats = json.loads((folder / "segmentation.json").read_text())
        sub = Path(item["name"]).parent  # the image's subfolder below segment_dir (look_one_level_down)
        stem = Path(item["image"]).stem
        for name in (stats["masks"], f"{stem}_outlines.png", f"{stem}_overlay.png"):
            place(folder / name, masks_dir / sub / name)
        draft = ""
        if mask_filter is not None and not item["in_training"]:
            draft = (sub / f"{item['base']}{mask_filter}.tif").as_posix()
            masks = folder / stats["masks"]
            image = (sub / Path(item["image"]).name).as_posix()
            drafted.append({**item, "draft": draft, "draft_image": image, "masks_file": masks})
            drafts.append(
                {
                    "image": image,
                    "label": draft,
                    "image_sha256": item["sha256"],
                    "label_sha256": sha256(masks),  # the draft is a copy of it
                    **drawn_by,
                    "masks": masks.relative_to(results).as_posix(),
                }
            )
        rows.append(
            {
                "image": item["name_with_extension"],
                **{k: stats[k] for k in ("objects", "diameter", "mean_flow_error", "max_flow_error")},
                "rescale": stats["rescale"],
                "seconds": stats["seconds"],
                "masks": (sub / stats["masks"]).as_posix(),
                "in_training": item["in_training"],
                "draft": draft,
            }
        )
    return rows, drafts, drafted
