"""Rule crop: the dense crops (clusters of cells, padded) of every tile of one source image."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

from omnitrain.imageio import read_array, write_tiff
from omnitrain.labels import read_links
from omnitrain.manifest import manifest, write_json
from omnitrain.packing import Normalisation, make_crops
from omnitrain.preprocess import dropped_fragments
from omnitrain.runlog import get_logger


def main(sm) -> None:
    log = get_logger(sm.log[0])
    p = sm.params.packing
    sid = sm.wildcards.sid
    tiles_dir = Path(sm.input.tiles)
    meta = json.loads(Path(sm.input.meta).read_text())
    norm = Normalisation.from_json(meta["normalisation"])
    source_labels = read_array(sm.input.labels)
    tiles = json.loads((tiles_dir / "tiles.json").read_text())["tiles"]
    out = Path(sm.output[0])
    out.mkdir(parents=True, exist_ok=True)
    records, written = [], []
    for tile in tiles:
        if not tile["kept"] or tile["empty"]:
            continue
        labels = read_array(tiles_dir / f"{tile['name']}_masks.tif")
        image = read_array(tiles_dir / f"{tile['name']}.tif")
        if image.ndim == labels.ndim:
            image = image[None]
        to_source = {v: int(k) for k, v in tile["label_map"].items()}
        offset = (tile["box"][0][0], tile["box"][1][0])
        box = tuple(slice(a, b) for a, b in tile["box"])
        crops = make_crops(
            sid,
            tile["index"],
            offset,
            image,
            labels,
            read_links(tiles_dir / f"{tile['name']}_links.txt"),
            to_source,
            norm,
            gap=p["gap"],
            pad=p["pad"],
            rim=p["rim"],
            bin_size=p["bin_size"],
            max_crop=p["max_crop"],
            unlabelled=dropped_fragments(source_labels[box], labels),
        )
        for crop in crops:
            name = f"{sid}_c{len(records):04d}"
            files = [out / f"{name}.tif", out / f"{name}_masks.tif"]
            write_tiff(files[0], crop.image)
            write_tiff(files[1], crop.labels)
            written += files
            records.append(
                {
                    "name": name,
                    "source": sid,
                    "tile": crop.tile,
                    "box": list(crop.box),
                    "cells": {str(k): v for k, v in crop.cells.items()},
                    "links": [list(link) for link in crop.links],
                    "fill": crop.fill,
                    "split_cell": crop.split_cell,
                }
            )
    write_json(
        out / "crops.json",
        {
            "crops": records,
            "manifest": manifest("crop", [sm.input.meta, sm.input.labels, tiles_dir], written, p),
        },
    )
    cells = sum(len(r["cells"]) for r in records)
    log.info(f"{sid}: {len(records)} crop(s) holding {cells} cells from {len(tiles)} tile(s)")


main(snakemake)  # noqa: F821
