"""Rule register: the version's record, its lineage manifest, and what changed since the previous one
(omnitrain/register.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

from omnitrain.register import RegisterJob, register
from omnitrain.registry import RegistryProblem
from omnitrain.runlog import get_logger, run_step


def main(sm) -> None:
    register(RegisterJob.from_snakemake(sm), get_logger(sm.log[0]))


run_step(main, snakemake, said=(RegistryProblem,))  # noqa: F821 (defined by Snakemake)
