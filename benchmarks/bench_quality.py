"""Benchmark: does packing give a better model per unit of training? Packing on vs off, equal compute.

The seed's claim: with dense crops packed into ensemble images, Omnipose "sees the same number of cells but a
lot faster". This asks it through the pipeline itself, as two experiments of one config (README,
"Experiments"): `base` (packing on) and `raw` (packing off: the tiled source images), on the DSB 2018
fluorescence images with manual labels (../shared/data). Same held-out images, same validation images, same
training compute (crops of the same size per epoch, epochs, batch size, optimiser). It prints, per arm,
held-out AP@0.5 and mean AP, seconds per epoch and wall time, and the time-to-accuracy ratio: the training
time the packed arm needed to reach the raw arm's final validation AP@0.5 (monitored learning curves), over
the raw arm's whole training time (below 1: packing gets there sooner).

Modes:
  --smoke  tiny crops, few epochs, on the CPU (about 6-10 min on 2 cores): the mechanics, not quality;
  --gpu    sized for one modern GPU (about 8 min): 224 px crops, 64 per epoch, 60 epochs: the answer.

Usage: python benchmarks/bench_quality.py --smoke | --gpu  [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
DSB = ROOT.parent / "shared" / "data" / "dsb2018_nuclei_subset"

COMMON = {
    "RAdam": True,
    "learning_rate": 0.1,
    "diameter": 0,
    "save_every": 1000,
    "split": {"test_fraction": 0.25, "validation_fraction": 0.1, "min_train": 8},
    "experiments": {"raw": {"packing": {"enabled": False}}},
}
MODES = {
    "smoke": {
        "n_epochs": 4, "tyx": [64, 64], "batch_size": 4, "training": {"nimg_per_epoch": 32},
        "monitor": {"every": 4}, "use_gpu": False, "resources": {"train_threads": 2},
    },
    "gpu": {
        "n_epochs": 60, "tyx": [224, 224], "batch_size": 16, "training": {"nimg_per_epoch": 64},
        "monitor": {"every": 5}, "use_gpu": True, "resources": {"train_threads": 8},
    },
}  # fmt: skip


def fluorescence_folder(target: Path) -> int:
    """Links to the DSB fluorescence pairs (one channel, manual labels) in ``target``; returns how many."""
    target.mkdir(parents=True)
    pairs = 0
    for image in sorted(DSB.glob("dsb_fluo_*.tif")):
        if image.name.endswith("_masks.tif"):
            continue
        os.symlink(image, target / image.name)
        os.symlink(image.with_name(image.stem + "_masks.tif"), target / f"{image.stem}_masks.tif")
        pairs += 1
    return pairs


def reach_seconds(losses: pd.DataFrame, target: float) -> float | None:
    """Training seconds until the monitored validation AP@0.5 first reaches ``target`` (None: never)."""
    scored = losses.dropna(subset=["val_ap50"])
    hit = scored[scored["val_ap50"] >= target - 1e-9]
    return None if hit.empty else float(hit["elapsed"].iloc[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--smoke", action="store_const", const="smoke", dest="mode")
    mode.add_argument("--gpu", action="store_const", const="gpu", dest="mode")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    if not DSB.is_dir():
        raise SystemExit(f"the DSB 2018 data is not at {DSB} (../shared/data): nothing to measure")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_quality_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if not (work / "dsb_fluo").is_dir():
            pairs = fluorescence_folder(work / "dsb_fluo")
        else:
            pairs = len(list((work / "dsb_fluo").glob("*_masks.tif")))
        config = {"dir": "dsb_fluo", **COMMON, **MODES[args.mode]}
        (work / "run.yaml").write_text(yaml.safe_dump(config))
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(ROOT / "Snakefile"),
            "--cores",
            str(os.cpu_count()),
        ]
        cmd += ["--configfile", "run.yaml"]
        start = time.perf_counter()
        run = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        if run.returncode:
            sys.stderr.write(run.stderr[-4000:])
            raise SystemExit("the pipeline failed")
        wall = time.perf_counter() - start
        runs = pd.read_csv(work / "results/leaderboard_runs.tsv", sep="\t").set_index("experiment")
        records = {
            name: json.loads((work / f"results/versions/{row['version']}/record.json").read_text())
            for name, row in runs.iterrows()
        }
        losses = {
            name: pd.read_csv(work / r["paths"]["folders"]["model"] / "losses.tsv", sep="\t")
            for name, r in records.items()
        }
        d = records["base"]["data"]
        print(
            f"packing on (base) vs off (raw), {args.mode} mode: DSB 2018 fluorescence, {pairs} images"
            f" ({d['train_images']} train, {d['validation_images']} validation,"
            f" {d['test_images']} held out);"
            f" {config['n_epochs']} epochs of {config['training']['nimg_per_epoch']} crops of"
            f" {config['tyx'][0]} px, batch {config['batch_size']}; pipeline wall time {wall:.0f} s"
        )
        header = ("arm", "train imgs", "AP@0.5", "mean AP", "s/epoch", "train s")
        print("  {:6} {:>10} {:>7} {:>8} {:>8} {:>8}  device".format(*header))
        cards = {
            name: json.loads((work / r["paths"]["files"]["card"]).read_text()) for name, r in records.items()
        }
        crops = {name: card["crops_per_epoch"] for name, card in cards.items()}
        if crops["base"] != crops["raw"]:  # Omnipose takes at least one crop per training image
            print(f"  NOTE: unequal compute, crops per epoch {crops}: raise training.nimg_per_epoch")
        for name, label in (("base", "packed"), ("raw", "raw")):
            row = runs.loc[name]
            images = records[name]["data"]["training_images"]
            print(
                f"  {label:6} {images:>10} {row['ap50']:>7.3f} {row['mean_ap']:>8.3f}"
                f" {row['seconds_per_epoch']:>8.1f} {row['wall_seconds']:>8.0f}  {row['device']}"
            )
        target = losses["raw"].dropna(subset=["val_ap50"])["val_ap50"].iloc[-1]
        raw_time = float(losses["raw"]["elapsed"].iloc[-1])
        reached = reach_seconds(losses["base"], target)
        if target <= 0:
            print("  time-to-accuracy: not defined: raw's final validation AP@0.5 is 0 (too little training)")
        elif reached is None:
            print(f"  time-to-accuracy: packed never reached raw's final validation AP@0.5 {target:.3f}")
        else:
            print(
                f"  time-to-accuracy: packed reached raw's final validation AP@0.5 {target:.3f} after"
                f" {reached:.0f} s of training, raw took {raw_time:.0f} s:"
                f" ratio {reached / max(raw_time, 1e-9):.2f}"
            )
        if args.mode == "smoke":
            print("  (smoke mode: a few tiny epochs show the mechanics; --gpu answers the question)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
