"""Benchmark: validating 1,000 small pairs (library call, and the validate_inputs rule through snakemake).

Prints the time per pair and, for scale, the time it takes only to read the same files.
Usage: python benchmarks/bench_validation.py [--pairs 1000] [--size 128]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from omnitrain.config import check_config  # noqa: E402
from omnitrain.demo import write_demo  # noqa: E402
from omnitrain.imageio import read_array  # noqa: E402
from omnitrain.validation import validate_folder  # noqa: E402


def make_pairs(folder: Path, n: int, size: int) -> None:
    """n pairs cut from the demo set (real-looking rods), size x size each."""
    demo = folder.parent / "demo"
    write_demo(demo, names=["colony_large_01"])
    img = tifffile.imread(demo / "colony_large_01.tif")
    lab = tifffile.imread(demo / "colony_large_01_masks.tif")
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    made = 0
    while made < n:
        y, x = rng.integers(0, img.shape[0] - size), rng.integers(0, img.shape[1] - size)
        crop = lab[y : y + size, x : x + size]
        if crop.max() == 0:
            continue
        tifffile.imwrite(folder / f"p{made:05d}.tif", img[y : y + size, x : x + size])
        tifffile.imwrite(folder / f"p{made:05d}_masks.tif", crop)
        made += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "train"
        make_pairs(folder, args.pairs, args.size)
        config = check_config({"dir": str(folder)})

        t0 = time.perf_counter()
        for p in sorted(folder.iterdir()):
            read_array(p)
        t_read = time.perf_counter() - t0

        t0 = time.perf_counter()
        table, problems = validate_folder(config)
        t_lib = time.perf_counter() - t0
        assert len(table) == args.pairs

        (Path(tmp) / "run.yaml").write_text(f"dir: {folder}\n")
        cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2"]
        cmd += ["--configfile", "run.yaml", "--quiet"]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=tmp, check=True, capture_output=True)
        t_smk = time.perf_counter() - t0

    n = args.pairs
    n_err = sum(p.severity == "error" for p in problems)
    print(f"pairs: {n} of {args.size}x{args.size} px; {n_err} errors, {len(problems) - n_err} warnings found")
    print(f"reading the files only:       {t_read:6.2f} s  ({t_read / n * 1000:5.2f} ms/pair)")
    print(f"validate_folder (library):    {t_lib:6.2f} s  ({t_lib / n * 1000:5.2f} ms/pair)")
    print(f"snakemake validate_inputs:    {t_smk:6.2f} s  ({t_smk / n * 1000:5.2f} ms/pair, with start-up)")
    print(f"validation / reading ratio:   {t_lib / t_read:6.2f}x")


if __name__ == "__main__":
    main()
