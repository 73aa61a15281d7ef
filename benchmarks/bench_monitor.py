"""Benchmark: what monitoring and resuming cost (omnitrain/monitor.py, omnitrain/resume.py).

1. Monitoring overhead: the same training (demo images, one validation image) with and without
   monitoring, side by side; prints both wall times, the measured ratio, the seconds one scoring takes,
   and the ratio at the defaults (a scoring every 10 epochs) projected from those two measurements.
2. Resume cost: a training stopped after epoch k, then resumed; prints the seconds from the start of the
   resumed ``train()`` to its first training batch, for two values of k, with Omnipose's augmentation and
   flows skipped while replaying (the pipeline's way) and computed (as before), side by side.

Usage: python benchmarks/bench_monitor.py [--tyx 64] [--epochs 6] [--ks 4 16] [--no-resume]
(--tyx 224: Omnipose's default crop, the pipeline's default tyx)
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from omnitrain.config import check_config  # noqa: E402
from omnitrain.demo import make_image  # noqa: E402
from omnitrain.epochs import EpochRecorder  # noqa: E402
from omnitrain.monitor import Monitor, ValidationSet  # noqa: E402
from omnitrain.resume import Interrupted, ResumableTraining  # noqa: E402
from omnitrain.training import model_kwargs, seed_everything, train_kwargs  # noqa: E402

LOG = logging.getLogger("bench")


def training_data():
    images, labels = [], []
    for name in ("colony_dense_02", "colony_large_01", "colony_mixed_01"):
        img, lab = make_image(name)
        images.append(img.astype(np.float32))
        labels.append(lab)
    return images, labels


def run(cfg, folder, *, monitor_every=0, stop_after=None, checkpoint=None, shortcuts=True):
    """One training; returns (wall seconds, seconds to the first trained batch, seconds per scoring)."""
    from cellpose_omni import models

    folder.mkdir(parents=True, exist_ok=True)
    seed_everything(0)
    model = models.CellposeModel(**model_kwargs(cfg, False, None))
    # shortcuts=False: replay the old way, every finished epoch's crops and flows computed.
    hooks = ResumableTraining(model, checkpoint or folder / "ck.pt", "bench", LOG, replay_shortcuts=shortcuts)
    first = {}
    step = model._train_step

    def timed(*args, **kwargs):
        if model.epoch >= hooks.start and "t" not in first:
            first["t"] = time.perf_counter()
        if stop_after is not None and model.epoch == stop_after:
            hooks.request_stop()
        return step(*args, **kwargs)

    model._train_step = timed
    monitor = None
    if monitor_every:
        img, lab = make_image("colony_dense_03")
        vs = ValidationSet([img.astype(np.float32)], [lab], [None], ["colony_dense_03"])
        monitor = Monitor(
            model, vs, every=monitor_every, n_epochs=cfg["n_epochs"], metric="ap50", patience=None,
            tyx=cfg["tyx"], channel_axis=None, diameter=0,
            best_path=folder / "best", log=LOG, loss_crops=32,  # the pipeline's default
        )  # fmt: skip
        hooks.attach_monitor(monitor)
    recorder = EpochRecorder(model, cfg["n_epochs"], folder / "losses.tsv", LOG, monitor and monitor.on_epoch)
    images, labels = training_data()
    start = time.perf_counter()
    scoring = []
    if monitor is not None:
        score = monitor.score

        def timed_score(*args):
            t = time.perf_counter()
            row = score(*args)
            scoring.append(time.perf_counter() - t)
            return row

        monitor.score = timed_score
    try:
        model.train(images, labels, [None] * 3, **train_kwargs(cfg, str(folder), "net"))
    except Interrupted:  # the stop_after run ends here on purpose: its checkpoint is what is measured next
        pass
    finally:
        recorder.close()
    wall = time.perf_counter() - start
    return wall, first.get("t", time.perf_counter()) - start, float(np.mean(scoring)) if scoring else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tyx", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6, help="epochs of the overhead comparison")
    parser.add_argument("--ks", type=int, nargs=2, default=[4, 16], help="epochs done before the resume")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-resume", action="store_true", help="measure the monitoring overhead only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = {
        "dir": str(ROOT),
        "tyx": [args.tyx, args.tyx],
        "batch_size": 8,
        "RAdam": True,
        "learning_rate": 0.1,
    }
    base |= {"save_every": 1000, "training": {"nimg_per_epoch": 16}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = check_config({**base, "n_epochs": args.epochs})
        plain, _, _ = run(cfg, tmp / "plain")
        every = max(args.epochs // 2, 1)
        monitored, _, scoring = run(cfg, tmp / "monitored", monitor_every=every)
        per_epoch = plain / args.epochs
        print(
            f"monitoring overhead ({args.epochs} epochs of 16 crops, {args.tyx} px, {args.threads} threads):"
        )
        print(f"  unmonitored {plain:.1f} s, monitored every {every} epochs {monitored:.1f} s:"
              f" ratio {monitored / plain:.3f}")  # fmt: skip
        print(f"  one scoring {scoring:.1f} s, one epoch {per_epoch:.1f} s -> at the default (every 10"
              f" epochs) ratio {1 + scoring / (10 * per_epoch):.3f}")  # fmt: skip
        if args.no_resume:
            return
        print("resume cost: seconds from the start of the resumed train() to its first training batch")
        for k in args.ks:
            c = check_config({**base, "n_epochs": k + 2, "save_every": 1})
            stopped = tmp / f"stopped_{k}"
            run(c, stopped, stop_after=k, checkpoint=stopped / "ck.pt")
            row = []
            for shortcuts in (True, False):  # each resumes its own copy of the same checkpoint
                folder = tmp / f"resume_{k}_{shortcuts}"
                shutil.copytree(stopped, folder)
                _, to_first, _ = run(c, folder, checkpoint=folder / "ck.pt", shortcuts=shortcuts)
                row.append(to_first)
            ratio = row[1] / max(row[0], 1e-9)
            print(f"  resume at epoch {k}: {row[0]:.1f} s (replay skips crops and flows),"
                  f" {row[1]:.1f} s (replay computes them): ratio {ratio:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
