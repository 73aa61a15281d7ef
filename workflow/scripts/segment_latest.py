"""Rule segment_latest: the pointer to the segment set made last (latest.txt, and the link "latest")."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

from omnitrain.latest import point_to
from omnitrain.runlog import get_logger, run_step


def main(sm) -> None:
    log = get_logger(sm.log[0])
    # <results>/segmentations/latest -> <version>/sets/<id>: a stable path to the newest set's files.
    link = point_to(sm.params.folder, sm.output.latest, "latest")
    log.info(f"latest segmentation: {sm.params.folder} ({link})")


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
