"""Rule segment_set: one set of segmented images: the table, the review order, the masks and the drafts.

``masks/`` holds every image's masks, outlines and overlay (Omnipose's names, the images' subfolders
kept); ``drafts/``, with segment_drafts, a copy of each image not yet in the training folders next to
its masks named as a label (``<base><mask_filter>.tif``), to correct and move into ``dir``;
``drafts.tsv`` what register needs to trace those pairs back (omnitrain/drafts.py). ``drafts/`` is made
once and never rewritten (people correct the drafts in it).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

import pandas as pd

from omnitrain.drafts import collect_set, write_drafts, write_drafts_table
from omnitrain.runlog import get_logger, run_step
from omnitrain.segmentation import TABLE_COLUMNS, review_order


def main(sm) -> None:
    log = get_logger(sm.log[0])
    p = sm.params
    masks_dir = Path(sm.output.masks)
    drafts_dir = Path(sm.output.table).parent / "drafts"
    masks_dir.mkdir(parents=True, exist_ok=True)
    rows, drafts, drafted = collect_set(
        p.images, masks_dir, Path(p.results), p.mask_filter if p.drafts else None,
        {"model_version": p.model_version, "set": p.set},
    )  # fmt: skip
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
