"""Rule prepare_images: the per-image work of a batch of source images, each into its version folder.

Every source: channel selection (channels first), labels relabelled 1..N, links remapped
(<sid>.tif, <sid>_masks.tif, <sid>_links.txt, <sid>.json). Training sources also: tiles of about
tiling.tile_size pixels (tiles/), and with packing on, the dense crops of their cell clusters (crops/).
A folder that exists already (same version: same files, settings and code) is reused, so an edited
mask redoes that one image; a new folder is written under a temporary name and renamed when complete
(omnitrain/batches.py explains the batches). Last, the batch's table lists every image and its version.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

from omnitrain.channels import plan_from_config
from omnitrain.discovery import Pair
from omnitrain.folders import make_folder
from omnitrain.imageio import read_array, write_training_pair
from omnitrain.labels import read_links
from omnitrain.manifest import manifest, write_json
from omnitrain.preprocess import prepare_source, source_crops
from omnitrain.problems import errors, format_report
from omnitrain.runlog import get_logger, run_step
from omnitrain.validation import Settings, check_pair


def image_of(array):
    """Single-channel images are written without their channel axis (as Omnipose reads them)."""
    return array[0] if array.shape[0] == 1 else array


def renamed(record, out, final):
    """A manifest whose output paths are those the files have once ``out`` is renamed ``final``."""
    record["outputs"] = {str(final / Path(k).relative_to(out)): v for k, v in record["outputs"].items()}
    return record


def check_settings(settings: dict) -> Settings:
    """What the pair check needs: the channel settings and the one threshold that makes an error."""
    plan, _ = plan_from_config(settings)
    return Settings(
        plan=plan,
        dim=settings["dim"],
        channel_axis=settings["channel_axis"],
        max_split_fraction=settings["validation"]["max_split_fraction"],
    )


def check(items) -> None:
    """validate_inputs' errors, for these pairs: a batch with a broken pair stops here, writing
    nothing, with every broken pair's problems and fixes."""
    found = []
    for item in items:
        links = Path(item["links"]) if item["links"] else None
        pair = Pair(item["source"], Path(item["image"]), Path(item["label"]), links)
        found += errors(check_pair(pair, check_settings(item["settings"]))[1])
    if found:
        sys.stderr.write(format_report(found, "These images cannot be used") + "\n")
        sys.exit(1)


def select(item, out, final, log):
    sid, cfg, links_file = item["source"], item["settings"], item["links"]
    plan, _ = plan_from_config(cfg)
    image, labels = read_array(item["image"]), read_array(item["label"])
    src = prepare_source(sid, image, labels, read_links(links_file), plan, cfg["dim"], cfg["channel_axis"])
    files = write_training_pair(out, sid, image_of(src.image), src.labels, src.links)
    inputs = [item["image"], item["label"]] + ([links_file] if links_file else [])
    meta = {
        "source": sid,
        "name": item["name"],
        "role": item["role"],
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
        "manifest": renamed(manifest("select_channels", inputs, files, cfg), out, final),
    }
    write_json(out / f"{sid}.json", meta)
    log.info(
        f"{item['image']}: {image.shape} {image.dtype} -> {tuple(src.image.shape)} {src.image.dtype}"
        f" ({plan.describe()}); {len(src.label_map)} objects relabelled 1..N, {len(src.links)} links"
    )
    return src


def write_tiles(sid, src, tiles, t, out, final, log):
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
    record = renamed(manifest("tile", [], written, t), out, final)
    write_json(out / "tiles.json", {"tiles": records, "manifest": record})
    sizes = sorted({tuple(r["shape"]) for r in records})
    kept = sum(r["kept"] for r in records)
    log.info(f"{sid}: {src.labels.shape} -> {len(tiles)} tile(s) of {sizes}; {kept} kept")


def write_crops(sid, crops, p, out, final, log):
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
    record = renamed(manifest("crop", [], written, p), out, final)
    write_json(out / "crops.json", {"crops": records, "manifest": record})
    cells = sum(len(r["cells"]) for r in records)
    log.info(f"{sid}: {len(records)} crop(s) holding {cells} cells")


def prepare(item, out, final, log) -> None:
    """Writes the image's files into ``out``, a temporary folder to be renamed ``final``."""
    src = select(item, out, final, log)
    if item["role"] != "train":
        return
    sid, settings = item["source"], item["settings"]
    packing = settings["packing"] if settings["packing"]["enabled"] else None
    tiles, crops = source_crops(src, settings["tiling"], packing)
    write_tiles(sid, src, tiles, settings["tiling"], out / "tiles", final / "tiles", log)
    if packing is not None:
        write_crops(sid, crops, settings["packing"], out / "crops", final / "crops", log)


def write_table(path, rows) -> None:
    """The batch's table (read by omnitrain.batches.read_tables). It is the job's declared output:
    Snakemake removes it if the job fails or is killed (the profile reruns incomplete jobs)."""
    Path(path).write_text("source\tversion\n" + "".join(f"{r['source']}\t{r['version']}\n" for r in rows))


def make(item, folder, log) -> bool:
    """Prepares one image into its folder (omnitrain/folders.py): False when another run made it first."""
    made = make_folder(folder, lambda tmp: prepare(item, tmp, folder, log))
    if not made:
        log.info(f"{item['source']}: {folder} was made by another run meanwhile: reused")
    return made


def main(sm) -> None:
    log = get_logger(sm.log[0])
    if sm.params.refused:  # naming errors in the input folders: nothing may be prepared
        log.info(sm.params.refused)
        sys.stderr.write(f"\n{sm.params.refused}\n")
        sys.exit(1)
    todo = [item for item in sm.params.images if not Path(item["folder"]).is_dir()]
    check(todo)  # every pair first: a batch with a broken pair writes nothing
    made = 0
    for item in sm.params.images:
        folder = Path(item["folder"])
        if item not in todo:
            log.info(f"{item['source']}: {folder} exists (same files, settings and code): reused")
            continue
        if make(item, folder, log):
            made += 1
            log.info(f"{item['source']}: made {folder}")
    write_table(sm.output.table, sm.params.images)
    n = len(sm.params.images)
    log.info(f"batch of {n} image(s): {made} prepared, {n - made} reused")


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
