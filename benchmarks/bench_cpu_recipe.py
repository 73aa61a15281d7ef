"""Benchmark: which training settings learn the DSB 2018 fluorescence nuclei fastest on a CPU?

Each arm is a set of training settings (the keys of config/config.yaml) trained for the same wall-clock budget
on the same training set, then scored on the same held-out images at a few points of its training (a learning
curve of held-out AP@0.5 against training minutes). The training set, split and held-out images are the
pipeline's own (snakemake up to validate_training_set and heldout_set, one preparation per packing setting);
the training is the train step's own Omnipose call (omnitrain.training: model_kwargs, train_kwargs, the
boundary-loss fix, the seed), stopped when the budget is spent; the scoring is the held-out evaluation's
(predict_heldout's segment_array on the whole held-out images, evaluate's score, with its 95 % bootstrap
interval of AP@0.5 over the held-out images).

Arms run one after the other, never at once (2 cores); each prints a row as it ends, and a table at the end.
`--arms` names arms of ARMS; `--minutes` is each arm's training budget; `--seeds 0 1 2` repeats arms.
The arm "old_demo" is the demo's recipe before December 2026 (16 crops of 64 px an epoch, batch 4, RAdam 0.1,
symmetry term on; config/demo.yaml now trains with this search's lessons): its seconds per
epoch, printed beside the others, say what a budget means on another machine.

Usage: python benchmarks/bench_cpu_recipe.py --arms old_demo nosym ... [--minutes 6] [--seeds 0] [--keep DIR]
           [--out TABLE.tsv] [--plot CURVES.png]
       python benchmarks/bench_cpu_recipe.py --tables A.tsv B.tsv --plot CURVES.png   (redraw, no training)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_quality import CPU_RECIPE, DSB, fluorescence_folder  # noqa: E402

from omnitrain.experiments import deep_merge as merge  # noqa: E402

#: The DSB preparation: 5 held-out images (source-level), 5 set aside as validation (not used here).
PREPARATION = {
    "dir": "dsb_fluo",
    "diameter": 0,
    "split": {"test_fraction": 0.25, "validation_fraction": 0.1, "min_train": 8},
}
#: The demo's training recipe before December 2026, the starting point (config/demo.yaml now has the lessons).
DEMO = {
    "RAdam": True, "learning_rate": 0.1, "batch_size": 4, "tyx": [64, 64],
    "training": {"nimg_per_epoch": 16}, "nclasses": 2,
}  # fmt: skip
#: Arms: overrides of DEMO. training.symmetry false turns Omnipose's flip-symmetry term off (one forward
#: pass a step instead of three); "channels_last" (not a pipeline setting) puts the network's weights in
#: channels-last memory order (oneDNN's preferred layout for convolutions on a CPU; the same arithmetic).
NOSYM = {"training": {"symmetry": False}}
#: omnipose --train's CLI defaults over DEMO (tyx None: Omnipose's own 224 px crops; nimg_per_epoch None:
#: Omnipose's own epoch, one pass over the training images).
CLI = {"RAdam": False, "learning_rate": 0.2, "batch_size": 8, "tyx": None, "nclasses": 2,
       "training": {"nimg_per_epoch": None, "symmetry": True}}  # fmt: skip
#: training.nimg_per_epoch's pipeline default (null in config.yaml): max(training source images, batch_size),
#: which the train step computes from its sources (crops_per_epoch); a marker here, resolved in train_arm.
PIPELINE_DEFAULT = "pipeline default"
ARMS = {
    "old_demo": {},
    "nosym": NOSYM,
    "nosym_lr0.01": {**NOSYM, "learning_rate": 0.01},
    "nosym_sgd": {**NOSYM, "RAdam": False, "learning_rate": 0.2},
    "nosym_batch8": {**NOSYM, "batch_size": 8},
    "nosym_crop128": {**NOSYM, "tyx": [128, 128]},
    "nosym_nclasses3": {**NOSYM, "nclasses": 3},
    "nosym_raw": {**NOSYM, "packing": {"enabled": False}},  # the tiled source images, no dense crops
    "nosym_channels_last": {**NOSYM, "channels_last": True},
    "nosym_batch8_sgd": {**NOSYM, "batch_size": 8, "RAdam": False, "learning_rate": 0.2},
    "nosym_batch8_lr0.01": {**NOSYM, "batch_size": 8, "learning_rate": 0.01},
    "nosym_batch16": {**NOSYM, "batch_size": 16},
    # Against the user's habit (#32 point 4), at equal training time: what `omnipose --train --dir <raw>`
    # does with its CLI defaults (omnipose 1.1.4 cli.py: SGD 0.2, batch 8, Omnipose's 224 px crops, symmetry
    # term on, an epoch = the training images, no packing); the pipeline's defaults (config/config.yaml: the
    # same flags, packing on, an epoch = max(training source images, batch_size) crops); and config/cpu.yaml.
    "cli_defaults": {**CLI, "packing": {"enabled": False}},
    "pipeline_defaults": {**CLI, "training": {"nimg_per_epoch": PIPELINE_DEFAULT, "symmetry": True}},
    "cpu_recipe": CPU_RECIPE,  # config/cpu.yaml's training settings
}


def pipeline(work: Path, config: dict, targets: list[str]) -> None:
    (work / "run.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2"]
    cmd += ["--configfile", "run.yaml", "--until", *targets]
    run = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if run.returncode:
        sys.stderr.write(run.stderr[-4000:])
        raise SystemExit("the pipeline failed")


def prepared(work: Path, packing: bool) -> tuple[Path, Path]:
    """(training set folder, held-out folder) of the DSB preparation with packing on or off."""
    results = f"results/{'packed' if packing else 'raw'}"
    folder = work / results
    if not list(folder.glob("trainsets/*/trainset")):
        config = merge(PREPARATION, {"pipeline": {"results": results}, "packing": {"enabled": packing}})
        pipeline(work, config, ["validate_training_set", "heldout_set"])
    (trainset,) = folder.glob("trainsets/*/trainset")
    (heldout,) = folder.glob("heldout/*")
    return trainset, heldout


class BudgetSpent(RuntimeError):
    """The arm's training minutes are used up."""


def train_arm(name: str, settings: dict, seed: int, minutes: float, snapshots: int, work: Path) -> list[dict]:
    """Train one arm for ``minutes``; held-out AP@0.5 and mean AP at ``snapshots`` evenly spaced times."""
    import torch

    from omnitrain.epochs import EpochRecorder
    from omnitrain.evaluation import score
    from omnitrain.inference import segment_array
    from omnitrain.monitor import load_validation_set
    from omnitrain.omni import omnipose_models
    from omnitrain.resume import cpu_copy
    from omnitrain.training import (
        fix_boundary_loss,
        load_trained_model,
        load_training_set,
        model_kwargs,
        seed_everything,
        set_symmetry,
        train_kwargs,
    )

    models = omnipose_models()
    defaults = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg = merge(merge(merge(defaults, PREPARATION), DEMO), settings)
    cfg["pipeline"]["seed"] = seed
    trainset, heldout = prepared(work, cfg["packing"]["enabled"])
    ts, vs = load_training_set(trainset), load_validation_set(heldout)
    torch.set_num_threads(2)
    seed_everything(seed)
    model = models.CellposeModel(**model_kwargs(cfg, False, None))
    fix_boundary_loss(model)
    if cfg.get("channels_last"):
        model.net.to(memory_format=torch.channels_last)
    folder = work / "arms" / f"{name}_seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    if cfg["training"]["nimg_per_epoch"] == PIPELINE_DEFAULT:  # the train step's default: from its sources
        cfg["training"]["nimg_per_epoch"] = None
        sources = pd.read_csv(trainset.parent / "provenance.tsv", sep="\t")["source"].nunique()
        kwargs = train_kwargs(cfg, str(folder), name, n_sources=sources)
    else:
        kwargs = train_kwargs(cfg, str(folder), name, n_sources=None)
    per_epoch = max(kwargs["nimg_per_epoch"] or 0, len(ts.images))  # Omnipose takes the larger
    print(
        f"  {len(ts.images)} training image(s), {per_epoch} crop(s) an epoch, crops of"
        f" {kwargs['tyx'] or 'Omnipose default 224 px'}",
        flush=True,
    )
    # More epochs than any budget here reaches (Omnipose draws every epoch's image order up front, quadratic
    # in their number: 10^5 epochs took minutes before the first one).
    kwargs.update(n_epochs=5000, save_every=10**9)
    marks = [minutes * 60 * (k + 1) / snapshots for k in range(snapshots)]
    saved, start = [], []  # start: when the first step began (Omnipose's set-up before it is not training)

    def on_epoch(epoch, loss):
        if marks and time.perf_counter() - start[0] >= marks[0]:
            marks.pop(0)
            saved.append((epoch + 1, time.perf_counter() - start[0], loss, cpu_copy(model.net.state_dict())))

    set_symmetry(model, cfg["training"]["symmetry"])
    step = model._train_step

    def budgeted_step(x, lbl):
        if not marks:
            raise BudgetSpent
        start[:] = start or [time.perf_counter()]
        return step(x, lbl)

    model._train_step = budgeted_step
    log = logging.getLogger(f"arm.{name}")
    recorder = EpochRecorder(model, kwargs["n_epochs"], folder / "losses.tsv", log, on_epoch=on_epoch)
    try:
        with contextlib.suppress(BudgetSpent):  # the budget's end is the arm's normal end
            model.train(ts.images, ts.labels, ts.links, train_files=ts.files, **kwargs)
    finally:
        recorder.close()
    losses = pd.read_csv(folder / "losses.tsv", sep="\t")
    first = losses["loss"].iloc[: max(len(losses) // 10, 1)].mean()  # the first tenth of the epochs
    rows = []
    card = {key: cfg[key] for key in ("nchan", "nclasses", "dim")} | {"diam_mean": model.diam_mean}
    for k, (epoch, seconds, _, state) in enumerate(saved):
        # The held-out evaluation's own path: the weights in a file, loaded as predict_heldout loads a model,
        # segmented by its segment_array and scored by evaluate's score.
        path = folder / f"{name}_snapshot{k}"
        torch.save(state, path)
        trained = load_trained_model(path, card, False)
        pairs = [
            (image_name, labels, segment_array(trained, image, card, cfg["evaluation"])[0])
            for image_name, image, labels in zip(vs.names, vs.images, vs.labels, strict=True)
        ]
        overall = score(pairs)[3]
        rows.append(
            {
                "arm": name, "seed": seed, "minutes": seconds / 60, "epochs": epoch,
                "crops": epoch * per_epoch, "s_per_epoch": seconds / epoch,
                "loss_start": first, "loss": losses["loss"].iloc[max(epoch - 10, 0) : epoch].mean(),
                "heldout_ap50": overall["ap50"], "ap50_low": overall["ap50_low"],
                "ap50_high": overall["ap50_high"], "heldout_mean_ap": overall["mean_ap"],
            }
        )  # fmt: skip
        print(
            "  "
            + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[-1].items())
        )
        sys.stdout.flush()
    return rows


def plot(table: pd.DataFrame, path: Path) -> None:
    """Held-out AP@0.5 against training minutes, one line per arm (and seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for (arm, seed), rows in table.groupby(["arm", "seed"], sort=False):
        ax.plot(rows["minutes"], rows["heldout_ap50"], marker="o", label=f"{arm} (seed {seed})")
    ax.set_xlabel("training minutes (2 CPU cores)")
    ax.set_ylabel("held-out AP@0.5 (5 DSB fluorescence images)")
    ax.set_ylim(0, 1)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=["old_demo"], choices=sorted(ARMS))
    parser.add_argument("--minutes", type=float, default=6.0, help="training budget of each arm")
    parser.add_argument("--snapshots", type=int, default=3, help="held-out scorings along each arm")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument(
        "--keep", type=Path, help="work in this folder and keep it (default: a temporary one)"
    )
    parser.add_argument("--out", type=Path, help="also write the table here (TSV)")
    parser.add_argument("--plot", type=Path, help="draw the learning curves here (PNG)")
    parser.add_argument("--tables", type=Path, nargs="+", help="draw --plot from these tables; train nothing")
    args = parser.parse_args()
    if args.tables:
        plot(pd.concat(pd.read_csv(t, sep="\t") for t in args.tables), args.plot)
        return
    if not DSB.is_dir():
        raise SystemExit(f"the DSB 2018 data is not at {DSB} (../shared/data): nothing to measure")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_cpu_recipe_"))
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "dsb_fluo").is_dir():
        fluorescence_folder(work / "dsb_fluo")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    rows = []
    for seed in args.seeds:
        for arm in args.arms:
            print(
                f"arm {arm} (seed {seed}): {ARMS[arm] or 'old demo recipe'}, {args.minutes} min", flush=True
            )
            rows += train_arm(arm, copy.deepcopy(ARMS[arm]), seed, args.minutes, args.snapshots, work)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        table.to_csv(args.out, sep="\t", index=False, float_format="%.4f")
    if args.plot:
        plot(table, args.plot)


if __name__ == "__main__":
    main()
