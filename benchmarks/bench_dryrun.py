"""Benchmark: `snakemake -n` on many small pairs, with the content-hash cache cold and warm.

Writes N synthetic 32 px pairs (default 10,000) into a folder (kept between runs with --data), then
times `snakemake -n` twice: once with the hash cache removed (every input file is read and hashed)
and once with it warm (only path, size, mtime, ctime and inode are looked at). Goal: < 15 s warm on
2 cores. The per-image work runs in batches of about 16 images (omnitrain/batches.py); for scale the
script also times Snakemake alone on a bare Snakefile with one job per image (the earlier design:
the same kind of input function, directory output, log, conda env, params and script), whose planning
time one job per image could not go below.

    python benchmarks/bench_dryrun.py [--pairs 10000] [--data /tmp/dryrun_data]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import yaml

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 15.0


def make_pairs(folder: Path, n: int) -> None:
    if folder.is_dir() and len(list(folder.glob("*_masks.tif"))) == n:
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        lab = np.zeros((32, 32), np.uint16)
        y, x = rng.integers(2, 20, 2)
        lab[y : y + 8, x : x + 8] = 1
        lab[(y + 10) % 24 : (y + 10) % 24 + 6, 2:8] = 2
        img = (100 + 50 * (lab > 0) + rng.integers(0, 20, lab.shape)).astype(np.uint16)
        tifffile.imwrite(folder / f"img{i:05d}.tif", img)
        tifffile.imwrite(folder / f"img{i:05d}_masks.tif", lab)


BARE = """
import glob
IMAGES = sorted(p for p in glob.glob("{data}/*.tif") if not p.endswith("_masks.tif"))
FILES = {{p.rsplit("/", 1)[1][:-4]: {{"image": p, "label": p[:-4] + "_masks.tif"}} for p in IMAGES}}

rule all:
    input: expand("out/{{sid}}/0123456789ab", sid=FILES)

rule prepare:
    input: unpack(lambda w: FILES[w.sid])
    output: directory("out/{{sid}}/{{pv}}")
    log: "logs/{{sid}}/{{pv}}.log"
    conda: "env.yaml"
    params: source=lambda w: {{"name": w.sid}}
    script: "step.py"
"""


def bare_snakefile(folder: Path, data: Path) -> Path:
    folder.mkdir()
    (folder / "Snakefile").write_text(BARE.format(data=data))
    (folder / "step.py").write_text("pass\n")
    (folder / "env.yaml").write_text("channels: []\ndependencies: []\n")
    return folder / "Snakefile"


def dry_run(
    workdir: Path, configfile: Path | None, snakefile: Path = ROOT / "Snakefile"
) -> tuple[float, int]:
    snakemake = Path(sys.executable).with_name("snakemake")
    cmd = [str(snakemake), "-n", "--quiet", "rules", "--cores", "2", "-s", str(snakefile)]
    cmd += ["--directory", str(workdir)] + (["--configfile", str(configfile)] if configfile else [])
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if res.returncode != 0:
        sys.exit(f"snakemake -n failed:\n{res.stdout}\n{res.stderr}")
    jobs = next((int(line.split()[-1]) for line in res.stdout.splitlines() if line.startswith("total")), 0)
    return dt, jobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=10_000)
    ap.add_argument("--data", type=Path, help="folder for the pairs (kept); default: a temporary one")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "data"
        t = time.perf_counter()
        make_pairs(data, args.pairs)
        print(f"{args.pairs} pairs of 32 px in {data} ({time.perf_counter() - t:.1f} s to write)")
        workdir = Path(tmp) / "work"
        workdir.mkdir()
        configfile = workdir / "run.yaml"
        config = {"dir": str(data), "n_epochs": 1, "pipeline": {"results": "results"}}
        configfile.write_text(yaml.safe_dump(config))
        cache = workdir / ".omnitrain" / "hashes.tsv"
        shutil.rmtree(cache.parent, ignore_errors=True)
        cold, jobs = dry_run(workdir, configfile)
        warm, jobs_warm = dry_run(workdir, configfile)
        bare = bare_snakefile(Path(tmp) / "bare", data)
        floor, floor_jobs = dry_run(bare.parent, None, bare)
        print(f"snakemake -n, cold hash cache: {cold:6.1f} s ({jobs} jobs)")
        print(f"snakemake -n, warm hash cache: {warm:6.1f} s ({jobs_warm} jobs)")
        print(f"bare Snakefile, a job per pair: {floor:5.1f} s ({floor_jobs} jobs): Snakemake alone")
        print(f"warm / bare Snakefile with a job per pair: {warm / floor:.2f}")
        print(f"warm / goal ({GOAL_S:.0f} s): {warm / GOAL_S:.2f} ({'met' if warm < GOAL_S else 'NOT met'})")


if __name__ == "__main__":
    main()
