"""GPU check (about 5 minutes on a GPU machine): train the demo on CUDA through snakemake, then on the CPU,
print the device, seconds per epoch on GPU vs CPU for the same data, and whether the model loads and segments.
On a machine with several GPUs it also trains with ``dataparallel: true`` over all of them (batch_size 32,
against one GPU at the same batch size) and prints the speed-up.

Usage on a GPU node, from the repository root, in the project's environment:
    python benchmarks/gpu_check.py [--gpu-epochs 20 --cpu-epochs 2]
Exits 1 when torch sees no GPU (use_gpu: true is refused then, by design).
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


def train(work: Path, use_gpu, epochs: int, **extra) -> dict:
    config = {"dir": "demo", "n_epochs": epochs, "learning_rate": 0.1, "RAdam": True, "use_gpu": use_gpu}
    (work / "run.yaml").write_text(yaml.safe_dump(config | extra))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "4"]
    cmd += ["--configfile", "run.yaml", "--until", "train", "heldout_set"]
    t0, started = time.perf_counter(), time.time()
    run = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if run.returncode:
        print(run.stderr[-3000:])
        raise SystemExit(f"snakemake failed with use_gpu: {use_gpu}")
    (card_file,) = [
        p for p in (work / "results/models").glob("*/model_card.json") if p.stat().st_mtime >= started - 1
    ]
    card = json.loads(card_file.read_text())
    card["job_seconds"] = time.perf_counter() - t0
    return card


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-epochs", type=int, default=20)
    parser.add_argument("--cpu-epochs", type=int, default=2)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPU visible: {torch.cuda.is_available()}")
    if not torch.cuda.is_available():
        raise SystemExit(1)
    print(f"GPU: {torch.cuda.get_device_name(0)}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_demo(work / "demo")
        gpu = train(work, True, args.gpu_epochs)
        from cellpose_omni import models

        path = str(work / gpu["model"])  # relative to the run's folder
        model = models.CellposeModel(
            gpu=True, pretrained_model=path, nchan=gpu["nchan"], nclasses=gpu["nclasses"], dim=gpu["dim"],
            omni=True, diam_mean=gpu["diam_mean"],
        )  # fmt: skip
        import tifffile

        held = sorted((work / "results/heldout").glob("*/*_masks.tif"))[0]
        image = tifffile.imread(str(held).replace("_masks", ""))
        masks = model.eval(image, channels=None, omni=True, rescale=None, diameter=None, mask_threshold=0.0,
                           flow_threshold=0.4)[0]  # fmt: skip
        cpu = train(work, False, args.cpu_epochs)
        n = torch.cuda.device_count()
        if n > 1:  # the same larger batches on one GPU and on all: what DataParallel gains
            big = {"batch_size": 32, "training": {"nimg_per_epoch": 64}}
            one = train(work, True, args.gpu_epochs, **big)
            every = train(work, True, args.gpu_epochs, dataparallel=True, resources={"train_gpus": n}, **big)
    print(f"GPU run: {gpu['device']}; {gpu['seconds_per_epoch']:.2f} s/epoch over {gpu['epochs']} epochs")
    print(f"CPU run: {cpu['device']}; {cpu['seconds_per_epoch']:.2f} s/epoch over {cpu['epochs']} epochs")
    print(f"GPU speed-up per epoch: {cpu['seconds_per_epoch'] / gpu['seconds_per_epoch']:.1f}x")
    print(f"model loads on the GPU and segments a held-out image into {int(masks.max())} objects")
    if n > 1:
        single, parallel = one["seconds_per_epoch"], every["seconds_per_epoch"]
        print(f"batch 32: {single:.2f} s/epoch on 1 GPU, {parallel:.2f} on {every['gpus']} (dataparallel)")
        print(f"dataparallel speed-up per epoch: {single / parallel:.2f}x")
    else:
        print("one GPU: dataparallel not measured (it needs several)")


if __name__ == "__main__":
    main()
