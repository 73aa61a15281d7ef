"""Rule pack: pack every training crop into ensemble images (or, with packing off, take the tiles).

Writes the training set as Omnipose reads it (<base>.tif, <base>_masks.tif, <base>_links.txt),
a provenance table (one row per packed crop, or per tile) and statistics.
"""

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

import numpy as np
import pandas as pd

from omnitrain.batches import read_tables
from omnitrain.imageio import read_array, write_training_pair
from omnitrain.manifest import manifest, write_json
from omnitrain.packing import Crop, assemble_bins
from omnitrain.runlog import get_logger, run_step


def load_crops(folder: Path) -> list[Crop]:
    records = json.loads((folder / "crops.json").read_text())["crops"]
    crops = []
    for r in records:
        image = read_array(folder / f"{r['name']}.tif")
        labels = read_array(folder / f"{r['name']}_masks.tif")
        crops.append(
            Crop(
                source=r["source"],
                tile=r["tile"],
                box=tuple(r["box"]),
                image=image if image.ndim == 3 else image[None],
                labels=labels,
                cells={int(k): v for k, v in r["cells"].items()},
                fill=np.asarray(r["fill"], np.float32),
                links=[tuple(link) for link in r["links"]],
                split_cell=r["split_cell"],
            )
        )
    return crops


def tile_stats(tiles: dict[Path, list[dict]]) -> dict:
    fg = px = cells = kept_fg = kept_px = 0
    for records in tiles.values():
        for t in records:
            fg += t["foreground"]
            px += t["pixels"]
            if t["kept"]:
                kept_fg += t["foreground"]
                kept_px += t["pixels"]
                cells += t["objects"]
    return {"raw_fg": fg / max(px, 1), "tiled_fg": kept_fg / max(kept_px, 1), "tile_cells": cells}


def packed_set(crop_folders, tiles, p, out: Path):
    """Every crop packed into ensemble images, plus the empty tiles kept as negative examples.

    Returns (provenance rows, label images written, extra statistics)."""
    crops = [c for folder in crop_folders for c in load_crops(folder)]
    bins = assemble_bins(crops, p["bin_size"], p["rotation"])
    rows = []
    for i, b in enumerate(bins):
        name = f"packed_{i:03d}"
        image = b.image[0] if b.image.shape[0] == 1 else b.image
        write_training_pair(out, name, image, b.labels, b.links or None)  # no empty links files
        for r in b.rows:
            rows.append({"image": name, **r, "label_map": json.dumps(r["label_map"], sort_keys=True)})
    fills = [sum(r["height"] * r["width"] for r in b.rows) / p["bin_size"] ** 2 for b in bins]
    images = [b.labels for b in bins]
    # Empty tiles kept on purpose (tiling.keep_empty) join the packed images as negative examples.
    for folder, records in tiles.items():
        for t in records:
            if t["kept"] and t["empty"]:
                for suffix in (".tif", "_masks.tif"):
                    shutil.copyfile(folder / f"{t['name']}{suffix}", out / f"{t['name']}{suffix}")
                images.append(read_array(out / f"{t['name']}_masks.tif"))
                rows.append(
                    {
                        "image": t["name"],
                        "source": t["source"],
                        "tile": t["index"],
                        "cells": 0,
                        "label_map": "{}",
                    }
                )
    extra = {
        "crops": len(crops),
        "bins": len(bins),
        "bin_fill": fills,
        "mean_bin_fill_but_last": float(np.mean(fills[:-1])) if len(fills) > 1 else None,
        "crops_of_cut_cells": int(sum(c.split_cell for c in crops)),
    }
    return rows, images, extra


def box_columns(box) -> dict:
    """Where a tile lies in its source: src_y0, src_x0, src_y1, src_x1 (and src_z0, src_z1 in 3D)."""
    axes = "zyx"[-len(box) :]
    return {f"src_{a}{end}": box[i][end] for end in (0, 1) for i, a in enumerate(axes)}


def tiled_set(tiles, out: Path):
    """With packing off: the kept tiles themselves. Returns (provenance rows, label images, extra)."""
    rows = []
    for folder, records in tiles.items():
        for t in records:
            if not t["kept"]:
                continue
            for suffix in (".tif", "_masks.tif", "_links.txt"):
                src = folder / f"{t['name']}{suffix}"
                if suffix != "_links.txt" or src.stat().st_size:
                    shutil.copyfile(src, out / src.name)
            label_map = {v: int(k) for k, v in t["label_map"].items()}
            rows.append(
                {
                    "image": t["name"],
                    "source": t["source"],
                    "tile": t["index"],
                    **box_columns(t["box"]),
                    "cells": t["objects"],
                    "label_map": json.dumps(label_map, sort_keys=True),
                }
            )
    images = [read_array(f) for f in sorted(out.glob("*_masks.tif"))]
    return rows, images, {"tiles": len(rows)}


def main(sm) -> None:
    log = get_logger(sm.log[0])
    p = sm.params.settings["packing"]
    out = Path(sm.output.trainset)
    out.mkdir(parents=True, exist_ok=True)
    sources = [folder for _, folder in read_tables(sm.input.batches)]
    parts = [x / "crops" for x in sources] if p["enabled"] else [x / "tiles" for x in sources]
    # Each source's tiles.json, read once: {tile folder: tile records}.
    tiles = {x / "tiles": json.loads((x / "tiles" / "tiles.json").read_text())["tiles"] for x in sources}
    rows, images, extra = packed_set(parts, tiles, p, out) if p["enabled"] else tiled_set(tiles, out)
    pd.DataFrame(rows).to_csv(sm.output.provenance, sep="\t", index=False)
    stats = tile_stats(tiles)
    fg = sum(int((x > 0).sum()) for x in images)
    stats.update(
        packed_fg=fg / max(sum(x.size for x in images), 1),
        images=len(images),
        cells=int(sum(len(np.unique(x)) - 1 for x in images)),
        sources=len(parts),
        **extra,
    )
    stats["manifest"] = manifest("pack", parts, [out], sm.params.settings)
    write_json(sm.output.stats, stats)
    log.info(
        f"training set: {stats['images']} image(s), {stats['cells']} cells from {len(parts)} source image(s);"
        f" foreground fraction raw {stats['raw_fg']:.3f} -> tiled {stats['tiled_fg']:.3f}"
        f" -> training set {stats['packed_fg']:.3f}"
    )


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
