"""kill -9 in every step (imported as ``kills``): the same snakemake command run again and again, each run
killing the first job of one more rule (tests/faults/sitecustomize.py does the killing), until a run
completes. The kills alternate between the job alone and the whole run (Snakemake too, as a crash), and
between a job that has written everything and one killed just after its first rename."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from helpers import ROOT

FAULTS = Path(__file__).parent / "faults"
HOW = ["job:exit", "run:commit", "job:commit", "run:exit"]


def run_killing_each(
    work: Path,
    config: dict,
    rules: list[str],
    *options: str,
    targets=(),
    env=None,
    how: list[str] = HOW,
    timeout: int = 900,
) -> list[tuple[str, str]]:
    """Run ``snakemake [options] --configfile run.yaml [--until targets]`` in ``work`` until it completes;
    each run before the last kills one rule of ``rules`` not killed yet (whichever starts first), the kinds of
    kill taken in turn from ``how`` (tests/faults/sitecustomize.py). After a run that killed Snakemake too,
    ``--unlock`` first, as the README says. One core: a killed job is the only job, so no other rule of
    ``rules`` finishes unkilled beside it. Returns [(rule, kind of kill)] in the order killed; fails when a
    run ends without a kill before every rule was killed, or when the last run fails."""
    (work / "run.yaml").write_text(yaml.safe_dump(config))
    snake = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "1"]
    command = [*snake, *options, "--configfile", "run.yaml"] + (["--until", *targets] if targets else [])
    marker = work / ".killed"
    remaining, killed = list(rules), []
    base = {**os.environ, **(env or {})}
    path = os.pathsep.join(p for p in (str(FAULTS), base.get("PYTHONPATH", "")) if p)
    while True:
        marker.unlink(missing_ok=True)
        kind = how[len(killed) % len(how)]
        faults = {"OMNITRAIN_TEST_KILL": ",".join(remaining), "OMNITRAIN_TEST_KILL_HOW": kind}
        faults |= {"OMNITRAIN_TEST_KILL_MARKER": str(marker), "PYTHONPATH": path}
        run = subprocess.run(
            command, cwd=work, env=base | faults, capture_output=True, text=True, timeout=timeout,
            start_new_session=True,  # a whole-run kill takes Snakemake's process group, not pytest's
        )  # fmt: skip
        if not marker.exists():
            assert run.returncode == 0, f"after kills {killed}:\n{run.stderr[-4000:]}"
            assert not remaining, f"{remaining} never ran (killed {killed})"
            return killed
        rule = marker.read_text().split()[0]
        assert rule in remaining and run.returncode != 0, (rule, remaining, run.returncode)
        remaining.remove(rule)
        killed.append((rule, kind))
        if kind.startswith("run"):
            assert run.returncode == -9, "Snakemake itself was killed"
            unlock = subprocess.run([*snake, "--unlock", "--configfile", "run.yaml"], cwd=work, env=base)
            assert unlock.returncode == 0
