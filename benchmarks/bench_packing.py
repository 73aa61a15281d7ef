"""Benchmark: how much denser the training set gets through tiling and dense-crop packing.

For each data set prints the foreground fraction of the raw set, the tiled set and the packed set, the
packed/raw ratio, the mean bin fill (crop area / bin area, all bins but the last), and the cells kept.
Targets (default settings): DSB 2018 fluorescence >= 2x raw, Omnipose bacterial phase set >= 1.2x, demo >= 2x;
bins >= 85% filled; 100% of cells kept and none cut by packing.
Usage: python benchmarks/bench_packing.py [--pad N --gap N --bin-size N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from omnitrain.channels import plan_from_config  # noqa: E402
from omnitrain.config import check_config, load_schema  # noqa: E402
from omnitrain.demo import write_demo  # noqa: E402
from omnitrain.discovery import discover  # noqa: E402
from omnitrain.imageio import read_array  # noqa: E402
from omnitrain.labels import read_links  # noqa: E402
from omnitrain.packing import assemble_bins  # noqa: E402
from omnitrain.preprocess import prepare_source, source_crops  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def measure(folder: Path, config: dict, only=None) -> dict:
    plan, _ = plan_from_config(config)
    found = discover(folder, config["img_filter"], config["mask_filter"], config["look_one_level_down"])
    raw_fg = raw_px = tile_fg = tile_px = tile_cells = 0
    crops = []
    t0 = time.perf_counter()
    for pair in found.pairs:
        if only and not pair.base.startswith(only):
            continue
        src = prepare_source(
            pair.base, read_array(pair.image), read_array(pair.label), read_links(pair.links), plan
        )
        raw_fg += int((src.labels > 0).sum())
        raw_px += src.labels.size
        tiles, cs = source_crops(src, config["tiling"], config["packing"])
        for t in tiles:
            if t.empty and not config["tiling"]["keep_empty"]:
                continue
            tile_fg += int((t.labels > 0).sum())
            tile_px += t.labels.size
            tile_cells += len(t.label_map)
        crops += cs
    bins = assemble_bins(crops, config["packing"]["bin_size"], config["packing"]["rotation"])
    seconds = time.perf_counter() - t0
    b = config["packing"]["bin_size"]
    packed_fg = sum(int((x.labels > 0).sum()) for x in bins)
    packed_px = sum(x.labels.size for x in bins)
    fills = [sum(r["height"] * r["width"] for r in x.rows) / b**2 for x in bins]
    packed_cells = sum(len(np.unique(x.labels)) - 1 for x in bins)
    split = sum(r["split_cell"] for x in bins for r in x.rows)
    return {
        "images": sum(1 for p in found.pairs if not only or p.base.startswith(only)),
        "raw": raw_fg / raw_px,
        "tiled": tile_fg / tile_px,
        "packed": packed_fg / packed_px,
        "bins": len(bins),
        "fill": float(np.mean(fills[:-1])) if len(fills) > 1 else float("nan"),
        "min_fill": float(np.min(fills[:-1])) if len(fills) > 1 else float("nan"),
        "last_fill": fills[-1],
        "cells_tiles": tile_cells,
        "cells_packed": packed_cells,
        "split_crops": split,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = load_schema()["properties"]["packing"]["properties"]
    parser.add_argument("--pad", type=int, default=defaults["pad"]["default"])
    parser.add_argument("--gap", type=int, default=defaults["gap"]["default"])
    parser.add_argument("--bin-size", type=int, default=defaults["bin_size"]["default"])
    parser.add_argument("--max-crop", type=int, default=defaults["max_crop"]["default"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "demo"
        write_demo(demo)
        sets = [
            ("dsb2018 fluorescence", DATA / "dsb2018_nuclei_subset", {}, "dsb_fluo", 2.0),
            (
                "omnipose bact phase",
                DATA / "omnipose_testfiles_bact_phase",
                {"mask_filter": "_cp_masks"},
                None,
                1.2,
            ),
            ("demo (generated)", demo, {}, None, 2.0),
        ]
        print(f"bin {args.bin_size}, pad {args.pad}, gap {args.gap}, max crop {args.max_crop}")
        print(f"{'set':24s}images  raw fg  tiled fg  packed fg  ratio  target  bins  bin fill  cells kept")
        for name, folder, extra, only, target in sets:
            if not folder.is_dir():
                print(f"{name:24s}skipped: {folder} is absent")
                continue
            config = check_config(
                {
                    "dir": str(folder),
                    **extra,
                    "packing": {
                        "pad": args.pad,
                        "gap": args.gap,
                        "bin_size": args.bin_size,
                        "max_crop": args.max_crop,
                    },
                }
            )
            m = measure(folder, config, only)
            ratio = m["packed"] / m["raw"]
            kept = f"{m['cells_packed']}/{m['cells_tiles']}"
            print(
                f"{name:24s}{m['images']:6d}  {m['raw']:6.3f}  {m['tiled']:8.3f}  {m['packed']:9.3f}"
                f"  {ratio:5.2f}x  {target:4.1f}x  {m['bins']:4d}  {m['fill']:8.1%}  {kept:>10s}"
                f"   (bins but the last: min {m['min_fill']:.0%}; last {m['last_fill']:.0%};"
                f" {m['split_crops']} crops of cut cells; {m['seconds']:.1f} s)"
            )


if __name__ == "__main__":
    main()
