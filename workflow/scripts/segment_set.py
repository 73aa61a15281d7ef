"""Rule segment_set: one set of segmented images: the table, the review order, the masks and the drafts.

``masks/`` holds every image's masks, outlines and overlay (Omnipose's names, the images' subfolders
kept); ``drafts/``, with segment_drafts, a copy of each image not yet in the training folders next to
its masks named as a label (``<base><mask_filter>.tif``), to correct and move into ``dir``;
``drafts.tsv`` what register needs to trace those pairs back (omnitrain/drafts.py). ``drafts/`` is made
once and never rewritten (people correct the drafts in it).
"""

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

import pandas as pd

from omnitrain.drafts import write_drafts_table
from omnitrain.folders import make_folder
from omnitrain.hashing import sha256
from omnitrain.runlog import get_logger, run_step
from omnitrain.segmentation import TABLE_COLUMNS, review_order


def place(source: Path, target: Path) -> None:
    """A copy, not a link: people open and edit these files, and an edit in place must not reach the
    image's own files (register compares corrected labels with them)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def write_drafts(drafts_dir: Path, items: list[dict]) -> bool:
    """The drafts folder, made once (omnitrain/folders.py): it is no declared output, so a rerun of this
    rule in place never deletes the corrections someone is making in it. False when it existed already."""
    if drafts_dir.is_dir():
        return False

    def fill(tmp: Path) -> None:
        for item in items:
            place(Path(item["image"]), tmp / item["draft_image"])  # the same bytes: register recognises it
            place(item["masks_file"], tmp / item["draft"])

    return make_folder(drafts_dir, fill)


def main(sm) -> None:
    log = get_logger(sm.log[0])
    p = sm.params
    masks_dir = Path(sm.output.masks)
    drafts_dir = Path(sm.output.table).parent / "drafts"
    masks_dir.mkdir(parents=True, exist_ok=True)
    results = Path(p.results)
    rows, drafts, drafted = [], [], []
    for item in p.images:
        folder = Path(item["folder"])
        stats = json.loads((folder / "segmentation.json").read_text())
        sub = Path(item["name"]).parent  # the image's subfolder below segment_dir (look_one_level_down)
        stem = Path(item["image"]).stem
        for name in (stats["masks"], f"{stem}_outlines.png", f"{stem}_overlay.png"):
            place(folder / name, masks_dir / sub / name)
        draft = ""
        if p.drafts and not item["in_training"]:
            draft = (sub / f"{item['base']}{p.mask_filter}.tif").as_posix()
            masks = folder / stats["masks"]
            image = (sub / Path(item["image"]).name).as_posix()
            drafted.append({**item, "draft": draft, "draft_image": image, "masks_file": masks})
            drafts.append(
                {
                    "image": image,
                    "label": draft,
                    "image_sha256": item["sha256"],
                    "label_sha256": sha256(masks),  # the draft is a copy of it
                    "model_version": p.model_version,
                    "set": p.set,
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
    made = write_drafts(drafts_dir, drafted) if drafted else False
    pd.DataFrame(rows, columns=TABLE_COLUMNS).to_csv(sm.output.table, sep="\t", index=False)
    review = pd.DataFrame(review_order(rows))
    review.to_csv(sm.output.review, sep="\t", index=False)
    write_drafts_table(sm.output.drafts_table, drafts)
    known = sum(r["in_training"] for r in rows)
    where = f"{drafts_dir}" + ("" if made or not drafted else " (it existed: left as it is)")
    log.info(
        f"{len(rows)} image(s) segmented by version {p.model_version}: {sm.output.table};"
        f" {len(drafts)} draft(s) in {where}"
        + (f" ({known} image(s) already in the training folders get none)" if known and p.drafts else "")
    )
    if len(review):
        log.info(f"review first: {', '.join(review['image'].head(3))} ({sm.output.review})")


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
