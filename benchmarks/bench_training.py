"""Benchmark: seconds per training epoch through the pipeline vs calling the Omnipose API directly.

Both train the same prepared training set (the demo's, packed) for the same epochs with the same settings,
each in a fresh process: the pipeline through `snakemake` (rule train), the direct way as a user would
script it (CellposeModel(...).train(...)). Prints seconds per epoch for both and their ratio (goal <= 1.05),
plus the train job's whole wall time with its start-up.
Usage: python benchmarks/bench_training.py [--epochs 6]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from omnitrain.demo import write_demo  # noqa: E402

DIRECT = """
import sys, time, json
sys.path.insert(0, {root!r})
from cellpose_omni import models
from omnitrain.config import check_config
from omnitrain.training import load_training_set, model_kwargs, seed_everything, train_kwargs
cfg = check_config({config!r})
ts = load_training_set({trainset!r})
seed_everything(0)
model = models.CellposeModel(**model_kwargs(cfg, False, None))
t = time.perf_counter()
model.train(ts.images, ts.labels, ts.links, train_files=ts.files, **train_kwargs(cfg, {save!r}, "direct"))
print(json.dumps({{"seconds": time.perf_counter() - t}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_demo(work / "demo")
        config = {
            "dir": "demo",
            "n_epochs": args.epochs,
            "learning_rate": 0.1,
            "RAdam": True,
            "save_every": 1000,
        }
        config["resources"] = {"train_threads": 2}
        (work / "run.yaml").write_text(yaml.safe_dump(config))
        smk = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2"]
        opts = ["--quiet", "all", "--configfile", "run.yaml", "--until"]
        subprocess.run([*smk, *opts, "pack"], cwd=work, check=True, capture_output=True)
        (trainset,) = (work / "results/trainsets").glob("*/trainset")

        code = DIRECT.format(
            root=str(ROOT),
            config={**config, "dir": str(work / "demo")},
            trainset=str(trainset),
            save=str(work / "direct"),
        )
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=work, check=True, capture_output=True, text=True
        )
        direct = json.loads(out.stdout.strip().splitlines()[-1])["seconds"] / args.epochs

        t0 = time.perf_counter()
        subprocess.run([*smk, *opts, "train"], cwd=work, check=True, capture_output=True)
        job = time.perf_counter() - t0
        (card_file,) = (work / "results/models").glob("*/model_card.json")
        card = json.loads(card_file.read_text())
        pipeline = card["wall_seconds"] / args.epochs
    print(f"demo training set, {args.epochs} epochs on {card['device']}")
    print(f"direct Omnipose API:  {direct:6.2f} s/epoch")
    print(f"pipeline (rule train): {pipeline:6.2f} s/epoch   ratio {pipeline / direct:.3f} (goal <= 1.05)")
    print(f"whole train job incl. snakemake and imports: {job:.1f} s ({job / args.epochs:.2f} s/epoch)")


if __name__ == "__main__":
    main()
