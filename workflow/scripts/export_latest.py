"""Rule export_latest: the pointer to the package made last (exports/latest.txt, and the link latest.zip)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

from omnitrain.latest import point_to
from omnitrain.runlog import get_logger, run_step


def main(sm) -> None:
    log = get_logger(sm.log[0])
    package = Path(sm.input.folder) / sm.params.package
    link = point_to(package, sm.output.latest, "latest.zip")
    log.info(f"latest package: {package} ({link})")


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
