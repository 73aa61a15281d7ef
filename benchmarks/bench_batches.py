"""Benchmark: the per-image work in batches of ~16 images against one job per image, in a real run.

Writes N synthetic 32 px pairs (default 320), then runs `snakemake --until pack heldout_set` (validation,
split and all the per-image work) twice in fresh folders: with this workflow, and with a copy of it
whose omnitrain/batches.py has IMAGES_PER_JOB = 1 (one prepare_images job per image, as the workflow
was before batches). Prints both wall times, the job counts and the ratio.

    python benchmarks/bench_batches.py [--pairs 320] [--cores 2]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_dryrun import make_pairs

ROOT = Path(__file__).resolve().parents[1]


def one_per_job_copy(dest: Path) -> Path:
    """The tracked files of this checkout, with one image per prepare_images job."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in files.stdout.splitlines():
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(src.read_bytes())
    module = dest / "omnitrain" / "batches.py"
    text, n = re.subn(r"^IMAGES_PER_JOB = \d+$", "IMAGES_PER_JOB = 1", module.read_text(), flags=re.M)
    if n != 1:
        sys.exit(f"{module}: no IMAGES_PER_JOB constant to change")
    module.write_text(text)
    return dest / "Snakefile"


def run(snakefile: Path, work: Path, data: Path, cores: int) -> tuple[float, int]:
    work.mkdir()
    (work / "run.yaml").write_text(f"dir: {data}\nn_epochs: 1\n")
    snakemake = Path(sys.executable).with_name("snakemake")
    cmd = [str(snakemake), "--cores", str(cores), "-s", str(snakefile)]
    cmd += ["--directory", str(work), "--configfile", str(work / "run.yaml")]
    cmd += ["--until", "pack", "heldout_set"]
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if res.returncode != 0:
        sys.exit(f"snakemake failed:\n{res.stderr[-3000:]}")
    return dt, res.stderr.count("rule prepare_images:") + res.stdout.count("rule prepare_images:")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=320)
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_pairs(tmp / "data", args.pairs)
        (tmp / "single").mkdir()
        single = one_per_job_copy(tmp / "single")
        batched, n_batched = run(ROOT / "Snakefile", tmp / "work_batched", tmp / "data", args.cores)
        alone, n_alone = run(single, tmp / "work_single", tmp / "data", args.cores)
        print(f"{args.pairs} pairs of 32 px, --cores {args.cores}: validation, split and per-image work")
        print(f"batches of ~16 images: {batched:6.1f} s ({n_batched} prepare_images jobs)")
        print(f"one image per job:     {alone:6.1f} s ({n_alone} prepare_images jobs)")
        print(f"one per job / batches: {alone / batched:.1f}x")


if __name__ == "__main__":
    main()
