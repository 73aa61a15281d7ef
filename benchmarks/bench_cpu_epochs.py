"""Benchmark: seconds per training epoch and peak memory on the CPU, by crop size (tyx) and batch size.

For CPU users choosing settings (config/README.md, "Training on a CPU"). The demo's training set is made once
through snakemake (up to `pack`); then each (tyx, batch_size) trains it for a few epochs of 16 crops
(training.nimg_per_epoch) in a fresh process, as the pipeline's train rule does, and reports the mean seconds
per epoch (the first epoch's start-up included) and the process's peak resident memory, side by side.
Usage: python benchmarks/bench_cpu_epochs.py [--epochs 2] [--sizes 96 128 224] [--batches 4 8]
With --dim 3 the same on the 3D demo's tiles (config/demo3d.yaml's settings), crops of size^3 voxels:
python benchmarks/bench_cpu_epochs.py --dim 3 --epochs 1 --sizes 32 48 64 --batches 2 4
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from omnitrain.demo import write_demo, write_demo3d  # noqa: E402

TRAIN = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
import torch
from cellpose_omni import models
from omnitrain.config import check_config
from omnitrain.training import load_training_set, model_kwargs, seed_everything, train_kwargs
torch.set_num_threads({threads})
cfg = check_config({config!r})
ts = load_training_set({trainset!r})
seed_everything(0)
model = models.CellposeModel(**model_kwargs(cfg, False, None))
t = time.perf_counter()
model.train(ts.images, ts.labels, ts.links, train_files=ts.files, **train_kwargs(cfg, {save!r}, "bench"))
seconds = time.perf_counter() - t
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": seconds, "peak_mb": peak_mb}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 128, 224])
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dim", type=int, choices=(2, 3), default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = {"dir": "demo", "learning_rate": 0.1, "RAdam": True, "save_every": 1000}
        if args.dim == 3:
            write_demo3d(work / "demo")
            base |= {"dim": 3, "diameter": 0, "tiling": {"tile_size": 96}, "packing": {"enabled": False}}
        else:
            write_demo(work / "demo")
        (work / "run.yaml").write_text(yaml.safe_dump(base))
        smk = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2"]
        opts = ["--quiet", "all", "--configfile", "run.yaml", "--until", "pack"]
        subprocess.run([*smk, *opts], cwd=work, check=True)
        (trainset,) = (work / "results/trainsets").glob("*/trainset")
        note = f"({args.epochs} epochs of 16 crops, {args.threads} threads)"
        print(f"{'tyx':>5} {'batch':>5} {'s/epoch':>8} {'peak GB':>8}   {note}")
        for size in args.sizes:
            for batch in args.batches:
                config = {**base, "dir": str(work / "demo"), "tyx": [size] * args.dim, "batch_size": batch}
                config |= {"n_epochs": args.epochs, "training": {"nimg_per_epoch": 16}}
                code = TRAIN.format(root=str(ROOT), config=config, trainset=str(trainset),
                                    save=str(work / f"m{size}_{batch}"), threads=args.threads)  # fmt: skip
                res = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True)
                if res.returncode:
                    print(f"{size:>5} {batch:>5}   failed: {res.stderr.strip().splitlines()[-1]}")
                    continue
                out = json.loads(res.stdout.strip().splitlines()[-1])
                print(
                    f"{size:>5} {batch:>5} {out['seconds'] / args.epochs:8.1f} {out['peak_mb'] / 1024:8.1f}"
                )


if __name__ == "__main__":
    main()
