"""Rule tile: cut a source image into near-equal tiles of about tiling.tile_size pixels."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

from omnitrain.imageio import read_array, write_tiff
from omnitrain.labels import read_links, write_links
from omnitrain.manifest import manifest, write_json
from omnitrain.runlog import get_logger
from omnitrain.tiling import cut_tiles


def main(sm) -> None:
    log = get_logger(sm.log[0])
    t = sm.params.tiling
    sid = sm.wildcards.sid
    labels = read_array(sm.input.labels)
    image = read_array(sm.input.image)
    if image.ndim == labels.ndim:
        image = image[None]
    tiles = cut_tiles(
        image, labels, read_links(sm.input.links), t["tile_size"], t["max_ratio"], t["min_fragment_area"]
    )
    out = Path(sm.output[0])
    out.mkdir(parents=True, exist_ok=True)
    records, written = [], []
    for tile in tiles:
        keep = not tile.empty or t["keep_empty"]
        name = f"{sid}_t{tile.index:02d}"
        if keep:
            files = [out / f"{name}.tif", out / f"{name}_masks.tif", out / f"{name}_links.txt"]
            write_tiff(files[0], tile.image[0] if tile.image.shape[0] == 1 else tile.image)
            write_tiff(files[1], tile.labels)
            write_links(files[2], tile.links)
            written += files
        records.append(
            {
                "name": name,
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
    inputs = [sm.input.image, sm.input.labels, sm.input.links]
    write_json(out / "tiles.json", {"tiles": records, "manifest": manifest("tile", inputs, written, t)})
    sizes = sorted({tuple(r["shape"]) for r in records})
    log.info(
        f"{sid}: {labels.shape} -> {len(tiles)} tile(s) of {sizes}; {sum(r['kept'] for r in records)} kept"
    )


main(snakemake)  # noqa: F821
