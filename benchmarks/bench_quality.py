"""Benchmark: does packing give a better model per unit of training? Packing on vs off, equal compute.

The seed's claim: with dense crops packed into ensemble images, Omnipose "sees the same number of cells but a
lot faster". This asks it through the pipeline itself, as two experiments of one config
(docs/experiments.md): `base` (packing on) and `raw` (packing off: the tiled source images), on the DSB 2018
fluorescence images with manual labels (../shared/data). Same held-out images, same validation images, same
training compute (crops of the same size per epoch, epochs, batch size, optimiser). With cross-validation
folds (--cpu: 3) each arm trains once per fold (the folds are source-level: each fold's validation images are
held back from both arms), so every figure comes with its spread.

It prints, per run, held-out AP@0.5 and mean AP, seconds per epoch and training time; per arm their mean and
sd over the folds; and per fold the time-to-accuracy ratio: the training time the packed arm needed to reach
the raw arm's final validation AP@0.5 (monitored learning curves), over the raw arm's whole training time
(below 1: packing gets there sooner), with its mean and sd. Training time here leaves the monitor's scorings
out (they are not training, and both arms score alike). `--plot` draws the validation learning curves against
training seconds and against crops seen.

Modes:
  --smoke  tiny crops, few epochs, on the CPU (about 6-10 min on 2 cores): the mechanics, not quality;
  --cpu    the CPU recipe (config/cpu.yaml's training settings), 3 folds x 2 arms, 450 epochs each (32 min
           on 2 cores; docs/quality.md has its table and figure): the answer on a laptop;
  --gpu    sized for one modern GPU (about 8 min): 224 px crops, 64 per epoch, 60 epochs.

Usage: python benchmarks/bench_quality.py --smoke | --cpu | --gpu  [--keep DIR] [--plot CURVES.png]
           [--out RUNS.tsv]
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
sys.path.insert(0, str(ROOT))
from omnitrain.demo import write_demo  # noqa: E402

DSB = ROOT.parent / "shared" / "data" / "dsb2018_nuclei_subset"

COMMON = {
    "RAdam": True,
    "learning_rate": 0.1,
    "diameter": 0,
    "save_every": 1000,
    "split": {"test_fraction": 0.25, "validation_fraction": 0.1, "min_train": 8},
    "experiments": {"raw": {"packing": {"enabled": False}}},
}
#: config/cpu.yaml's training settings (the recipe the CPU mode measures packing with).
CPU_RECIPE = {
    key: value
    for key, value in yaml.safe_load((ROOT / "config/cpu.yaml").read_text()).items()
    if key in ("training", "batch_size", "tyx", "RAdam", "learning_rate")
}
MODES = {
    "smoke": {
        "n_epochs": 4, "tyx": [64, 64], "batch_size": 4, "training": {"nimg_per_epoch": 32},
        "monitor": {"every": 4}, "use_gpu": False, "resources": {"train_threads": 2},
    },
    "cpu": {
        **CPU_RECIPE, "n_epochs": 450, "monitor": {"every": 50}, "use_gpu": False,
        "resources": {"train_threads": 2}, "cross_validation": {"folds": 3},
    },
    "gpu": {
        "n_epochs": 60, "tyx": [224, 224], "batch_size": 16, "training": {"nimg_per_epoch": 64},
        "monitor": {"every": 5}, "use_gpu": True, "resources": {"train_threads": 8},
    },
}  # fmt: skip
ARMS = {"base": "packed", "raw": "raw"}
#: --data: the folder (below the work folder) each data set is put in.
DATA = {"dsb": "dsb_fluo", "demo": "demo"}


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


def training_seconds(losses: pd.DataFrame) -> pd.Series:
    """Cumulative training seconds at each epoch's end, without the monitor's scorings: the epoch after a
    scored one carries the scoring's time in its ``seconds`` (the scoring runs in the epoch's log hook), so it
    counts as the median epoch instead."""
    seconds = losses["seconds"].astype(float).copy()
    after_scoring = losses["val_ap50"].notna().shift(1, fill_value=False)
    seconds[after_scoring] = seconds[~after_scoring].median()
    return seconds.cumsum()


def reach_seconds(losses: pd.DataFrame, target: float) -> float | None:
    """Training seconds until the monitored validation AP@0.5 first reaches ``target`` (None: never)."""
    elapsed = training_seconds(losses)
    hit = losses["val_ap50"].notna() & (losses["val_ap50"] >= target - 1e-9)
    return None if not hit.any() else float(elapsed[hit].iloc[0])


def read_runs(work: Path) -> tuple[pd.DataFrame, dict]:
    """The leaderboard's runs (one row per experiment and fold) with each run's training images and crops per
    epoch, and ``{(experiment, fold): losses}`` (fold 0: no folds)."""
    runs = pd.read_csv(work / "results/leaderboard_runs.tsv", sep="\t", dtype={"fold": str})
    runs["fold"] = pd.to_numeric(runs["fold"]).fillna(0).astype(int)
    losses, images, crops = {}, [], []
    for _, run in runs.iterrows():
        record = json.loads((work / f"results/versions/{run['version']}/record.json").read_text())
        card = json.loads((work / record["paths"]["files"]["card"]).read_text())
        table = pd.read_csv(work / record["paths"]["folders"]["model"] / "losses.tsv", sep="\t")
        table["train_seconds"] = training_seconds(table)
        table["crops_seen"] = (table["epoch"] + 1) * card["crops_per_epoch"]
        losses[run["experiment"], run["fold"]] = table
        images.append(record["data"]["training_images"])
        crops.append(card["crops_per_epoch"])
    runs["training_images"], runs["crops_per_epoch"] = images, crops
    runs["train_seconds"] = [
        float(losses[k]["train_seconds"].iloc[-1]) for k in zip(runs["experiment"], runs["fold"], strict=True)
    ]
    return runs, losses


def time_to_accuracy(losses: dict, folds: list[int]) -> pd.DataFrame:
    """Per fold: raw's final validation AP@0.5, when packed first reached it and the ratio to raw's time."""
    rows = []
    for fold in folds:
        raw, packed = losses["raw", fold], losses["base", fold]
        target = float(raw["val_ap50"].dropna().iloc[-1])
        reached = reach_seconds(packed, target) if target > 0 else None
        raw_time = float(raw["train_seconds"].iloc[-1])
        rows.append(
            {
                "fold": fold, "raw_final_val_ap50": target, "packed_seconds": reached,
                "raw_seconds": raw_time,
                "ratio": None if reached is None else reached / max(raw_time, 1e-9),
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def plot(runs: pd.DataFrame, losses: dict, path: Path) -> None:
    """Validation AP@0.5 against training seconds and against crops seen, one line per arm and fold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"base": "#08519c", "raw": "#e6550d"}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for (experiment, fold), table in losses.items():
        scored = table.dropna(subset=["val_ap50"])
        label = ARMS[experiment] + (f" (fold {fold})" if fold else "")
        style = {"color": colours[experiment], "marker": "o", "ms": 3, "alpha": 0.8, "label": label}
        axes[0].plot(scored["train_seconds"] / 60, scored["val_ap50"], **style)
        axes[1].plot(scored["crops_seen"], scored["val_ap50"], **style)
    axes[0].set_xlabel("training minutes (without the monitor's scorings)")
    axes[1].set_xlabel("crops seen")
    axes[0].set_ylabel("validation AP@0.5 (each fold's own images)")
    for ax in axes:
        ax.set_ylim(0, 1)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, frameon=False, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def spread(values: pd.Series) -> str:
    """``mean ± sd`` (sd over the folds; a single value alone)."""
    values = pd.to_numeric(values).dropna()
    if values.empty:
        return "-"
    return f"{values.mean():.3f}" + (f" ± {values.std():.3f}" if len(values) > 1 else "")


def report(
    work: Path, runs: pd.DataFrame, losses: dict, config: dict, pairs: int, wall: float, mode: str
) -> None:
    record = json.loads((work / "results/versions" / runs.iloc[0]["version"] / "record.json").read_text())
    d = record["data"]
    folds = sorted(runs["fold"].unique())
    print(
        f"packing on (base) vs off (raw), {mode} mode: {config['dir']}, {pairs} images"
        f" ({d['test_images']} held out; {len(folds) if folds != [0] else 'no'} fold(s));"
        f" {config['n_epochs']} epochs of {config['training']['nimg_per_epoch']} crops of"
        f" {config['tyx'][0]} px, batch {config['batch_size']}; pipeline wall time {wall:.0f} s"
    )
    header = ("arm", "fold", "train imgs", "AP@0.5", "mean AP", "s/epoch", "train s")
    print("  {:6} {:>4} {:>10} {:>7} {:>8} {:>8} {:>8}  device".format(*header))
    for _, row in runs.sort_values(["fold", "experiment"]).iterrows():
        print(
            f"  {ARMS[row['experiment']]:6} {row['fold'] or '-':>4} {row['training_images']:>10}"
            f" {row['ap50']:>7.3f} {row['mean_ap']:>8.3f} {row['seconds_per_epoch']:>8.2f}"
            f" {row['train_seconds']:>8.0f}  {row['device']}"
        )
    if runs["crops_per_epoch"].nunique() > 1:  # Omnipose takes at least one crop per training image
        print(
            f"  NOTE: unequal compute, crops per epoch {sorted(set(runs['crops_per_epoch']))}: raise"
            " training.nimg_per_epoch"
        )
    for experiment, group in runs.groupby("experiment", sort=False):
        print(
            f"  {ARMS[experiment]:6} held-out AP@0.5 {spread(group['ap50'])},"
            f" mean AP {spread(group['mean_ap'])} (mean ± sd over {len(group)} run(s))"
        )
    ratios = time_to_accuracy(losses, folds)
    for _, row in ratios.iterrows():
        where = f"fold {int(row['fold'])}: " if row["fold"] else ""  # (iterrows makes it a float)
        if row["raw_final_val_ap50"] <= 0:
            print(f"  {where}time-to-accuracy not defined: raw's final validation AP@0.5 is 0")
        elif row["packed_seconds"] is None or pd.isna(row["packed_seconds"]):
            print(
                f"  {where}packed never reached raw's final validation AP@0.5 {row['raw_final_val_ap50']:.3f}"
            )
        else:
            print(
                f"  {where}packed reached raw's final validation AP@0.5 {row['raw_final_val_ap50']:.3f} after"
                f" {row['packed_seconds']:.0f} s of training, raw took {row['raw_seconds']:.0f} s:"
                f" ratio {row['ratio']:.2f}"
            )
    if len(ratios) > 1:
        reached = ratios["ratio"].notna().sum()
        print(
            f"  time-to-accuracy ratio {spread(ratios['ratio'])} (mean ± sd over the {reached} of"
            f" {len(ratios)} folds where packed reached raw's final AP; below 1: packing gets there sooner)"
        )
    if mode == "smoke":
        print("  (smoke mode: a few tiny epochs show the mechanics; --cpu or --gpu answers the question)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    for name in MODES:
        mode.add_argument(f"--{name}", action="store_const", const=name, dest="mode")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary one)")
    parser.add_argument("--plot", type=Path, help="draw the validation learning curves here (PNG)")
    parser.add_argument("--out", type=Path, help="also write the runs' table here (TSV)")
    parser.add_argument(
        "--data", choices=DATA, default="dsb", help="dsb: the DSB fluorescence nuclei (real, manual labels);"
        " demo: the synthetic demo set, sparser (4.6 %% foreground in its tiles, 29 %% packed)",
    )  # fmt: skip
    parser.add_argument("--epochs", type=int, help="epochs instead of the mode's (monitored every tenth)")
    args = parser.parse_args()
    if args.data == "dsb" and not DSB.is_dir():
        raise SystemExit(f"the DSB 2018 data is not at {DSB} (../shared/data): nothing to measure")
    work = (args.keep or Path(tempfile.mkdtemp(prefix="bench_quality_"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    plot_path, out_path = (p.resolve() if p else None for p in (args.plot, args.out))
    try:
        folder = work / DATA[args.data]
        if not folder.is_dir():
            if args.data == "dsb":
                fluorescence_folder(folder)
            else:
                write_demo(folder)
        pairs = len(list(folder.glob("*_masks.tif")))
        config = {"dir": DATA[args.data], **COMMON, **MODES[args.mode]}
        if args.epochs:
            config |= {"n_epochs": args.epochs, "monitor": {"every": max(args.epochs // 10, 1)}}
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
        runs, losses = read_runs(work)
        report(work, runs, losses, config, pairs, wall, args.mode)
        if out_path:
            runs.to_csv(out_path, sep="\t", index=False, float_format="%.4f")
        if plot_path:
            plot(runs, losses, plot_path)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
