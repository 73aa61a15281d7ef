"""Seconds per job, rule by rule, of one workflow run: this checkout side by side with an earlier commit.

Both run the same config on the same demo images, one after the other (never at once: 2 cores), each in a
fresh work folder with a warm numba cache (one untimed import first). Each job's seconds come from
Snakemake's own log (the times it started and finished the job, 1 s resolution; jobs of two cores overlap,
so the wall time of the run is printed too).

Configs:
  demo         config/demo.yaml on the whole demo (``make demo``)
  experiments  two experiments x two folds, ONE epoch of 2 crops each, scored at that epoch (the case the
               CI issue measured)

Usage: python benchmarks/bench_job_costs.py --before <commit> [--config demo|experiments] [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {
    "demo": {**yaml.safe_load((ROOT / "config/demo.yaml").read_text()), "dir": "demo"},
    "experiments": {
        "dir": "demo",
        "n_epochs": 1,
        "tyx": [64, 64],
        "batch_size": 2,
        "training": {"nimg_per_epoch": 2},
        "experiments": {"slow_lr": {"learning_rate": 0.02}},
        "cross_validation": {"folds": 2},
        "resources": {"train_threads": 2},
    },
}
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$")
STARTED = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


def job_seconds(log: Path) -> dict[str, list[float]]:
    """{rule: [seconds of each job]} from a Snakemake log."""
    started, out = {}, defaultdict(list)
    stamp = rule = None
    for line in log.read_text().splitlines():
        if m := STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := STARTED.match(line):
            rule = m.group(1)
        elif (m := JOBID.match(line)) and rule:
            started[m.group(1)] = stamp
            rule = None
        elif (m := FINISHED.match(line)) and m.group(1) in started:
            out[m.group(2)].append((stamp - started[m.group(1)]).total_seconds())
    return out


def run(repo: Path, work: Path, config: dict) -> tuple[float, dict[str, list[float]]]:
    from omnitrain.demo import write_demo

    work.mkdir(parents=True)
    write_demo(work / "demo")
    config = {**config, "pipeline": {**config.get("pipeline", {}), "results": "results"}}
    (work / "run.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--cores", "2"]
    start = time.perf_counter()
    subprocess.run([*cmd, "--configfile", "run.yaml"], cwd=work, check=True, capture_output=True)
    wall = time.perf_counter() - start
    return wall, job_seconds(max((work / ".snakemake/log").glob("*.snakemake.log")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the commit to compare with (e.g. a tag or a hash)")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="experiments")
    parser.add_argument("--keep", type=Path, help="keep the work folders here")
    args = parser.parse_args()
    base = Path(args.keep or tempfile.mkdtemp(prefix="bench_job_costs_"))
    before = base / "before_repo"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
                   check=True, capture_output=True)  # fmt: skip
    try:
        subprocess.run([sys.executable, "-c", "import omnitrain.omni as o; o.omnipose_models()"], cwd=ROOT,
                       check=True, capture_output=True)  # fmt: skip
        results = {}
        for label, repo in (("before", before), ("now", ROOT)):
            results[label] = run(repo, base / label, CONFIGS[args.config])
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False)
    print(f"config {args.config!r}: {args.before} (before) vs this checkout (now), 2 cores, seconds per job")
    heads = ("jobs", 5), ("before mean", 12), ("now mean", 9), ("before sum", 11), ("now sum", 8)
    print(f"{'rule':24s} " + " ".join(f"{h:>{w}s}" for h, w in heads))
    rules = sorted(set(results["before"][1]) | set(results["now"][1]))
    for rule in rules:
        b, n = results["before"][1].get(rule, []), results["now"][1].get(rule, [])
        mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
        print(f"{rule:24s} {len(n):5d} {mean(b):12.1f} {mean(n):9.1f} {sum(b):11.0f} {sum(n):8.0f}")
    print(f"{'wall time of the run':24s} {'':5s} {'':12s} {'':9s} {results['before'][0]:11.0f}"
          f" {results['now'][0]:8.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
