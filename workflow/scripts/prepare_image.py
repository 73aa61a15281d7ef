"""Rule prepare_image: one source image's per-image work, into its version folder.

Every source: channel selection (channels first), labels relabelled 1..N, links remapped
(<sid>.tif, <sid>_masks.tif, <sid>_links.txt, <sid>.json). Training sources also: tiles of about
tiling.tile_size pixels (tiles/), and with packing on, the dense crops of their cell clusters (crops/).
One job per image does all three, so an edited mask reruns one job, and a dry run on a big dataset
has one job per image to plan.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

from omnitrain.channels import plan_from_config
from omnitrain.discovery import Pair
from omnitrain.imageio import read_array, write_training_pair
from omnitrain.labels import read_links
from omnitrain.manifest import manifest, write_json
from omnitrain.preprocess import prepare_source, source_crops
from omnitrain.problems import errors, format_report
from omnitrain.runlog import get_logger
from omnitrain.validation import Settings, check_pair


def image_of(array):
    """Single-channel images are written without their channel axis (as Omnipose reads them)."""
    return array[0] if array.shape[0] == 1 else array


def select(sm, sid, out, log):
    cfg = sm.params.source["settings"]["channels"]
    links_file = sm.input.get("links")  # only present when the pair has a links file
    # The same checks as validate_inputs, for this pair: a broken pair stops here with its fix.
    pair = Pair(sid, Path(sm.input.image), Path(sm.input.label), Path(links_file) if links_file else None)
    _, problems = check_pair(pair, Settings.from_config(sm.config))
    if errors(problems):
        sys.stderr.write(format_report(problems, f"{sm.input.image} cannot be used") + "\n")
        sys.exit(1)
    plan, _ = plan_from_config(cfg)
    image, labels = read_array(sm.input.image), read_array(sm.input.label)
    src = prepare_source(sid, image, labels, read_links(links_file), plan, cfg["dim"], cfg["channel_axis"])
    files = write_training_pair(out, sid, image_of(src.image), src.labels, src.links)
    inputs = [sm.input.image, sm.input.label] + ([links_file] if links_file else [])
    meta = {
        "source": sid,
        "name": sm.params.source["name"],
        "role": sm.params.source["role"],
        "input_shape": list(image.shape),
        "input_dtype": str(image.dtype),
        "channel_axis": src.channel_axis,
        "channels": plan.describe(),
        "shape": list(src.image.shape),
        "dtype": str(src.image.dtype),
        "objects": len(src.label_map),
        "label_map": {str(k): v for k, v in src.label_map.items()},
        "links": len(src.links),
        "normalisation": src.norm.to_json(),
        "manifest": manifest("select_channels", inputs, files, cfg),
    }
    write_json(out / f"{sid}.json", meta)
    log.info(
        f"{sm.input.image}: {image.shape} {image.dtype} -> {tuple(src.image.shape)} {src.image.dtype}"
        f" ({plan.describe()}); {len(src.label_map)} objects relabelled 1..N, {len(src.links)} links"
    )
    return src


def write_tiles(sid, src, tiles, t, out, log):
    out.mkdir()
    records, written = [], []
    for tile in tiles:
        keep = not tile.empty or t["keep_empty"]
        name = f"{sid}_t{tile.index:02d}"
        if keep:
            written += write_training_pair(out, name, image_of(tile.image), tile.labels, tile.links)
        records.append(
            {
                "name": name,
                "source": sid,
                "index": tile.index,
                "box": [[s.start, s.stop] for s in tile.box],
                "shape": list(tile.labels.shape),
                "objects": len(tile.label_map),
                "foreground": int((tile.labels > 0).sum()),
                "pixels": int(tile.labels.size),
                "label_map": {str(k): v for k, v in tile.label_map.items()},
                "dropped_fragments": tile.dropped,
                "empty": tile.empty,
                "kept": keep,
            }
        )
        if tile.empty:
            log.info(f"{name}: no object in this tile; {'kept as a negative example' if keep else 'dropped'}")
    write_json(out / "tiles.json", {"tiles": records, "manifest": manifest("tile", [], written, t)})
    sizes = sorted({tuple(r["shape"]) for r in records})
    kept = sum(r["kept"] for r in records)
    log.info(f"{sid}: {src.labels.shape} -> {len(tiles)} tile(s) of {sizes}; {kept} kept")


def write_crops(sid, crops, p, out, log):
    out.mkdir()
    records, written = [], []
    for crop in crops:
        name = f"{sid}_c{len(records):04d}"
        written += write_training_pair(out, name, crop.image, crop.labels)
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
    write_json(out / "crops.json", {"crops": records, "manifest": manifest("crop", [], written, p)})
    cells = sum(len(r["cells"]) for r in records)
    log.info(f"{sid}: {len(records)} crop(s) holding {cells} cells")


def main(sm) -> None:
    log = get_logger(sm.log[0])
    sid = sm.wildcards.sid
    out = Path(sm.output[0])
    out.mkdir(parents=True, exist_ok=True)
    src = select(sm, sid, out, log)
    if sm.params.source["role"] != "train":
        return
    settings = sm.params.source["settings"]
    packing = settings["packing"] if settings["packing"]["enabled"] else None
    tiles, crops = source_crops(src, settings["tiling"], packing)
    write_tiles(sid, src, tiles, settings["tiling"], out / "tiles", log)
    if packing is not None:
        write_crops(sid, crops, settings["packing"], out / "crops", log)


main(snakemake)  # noqa: F821
