"""Rule segment_latest: the pointer to the segment set made last (latest.txt, and the link "latest")."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

from omnitrain.runlog import get_logger, run_step


def main(sm) -> None:
    log = get_logger(sm.log[0])
    folder = Path(sm.params.folder)
    latest = Path(sm.output.latest)
    latest.write_text(f"{folder}\n")
    # <results>/segmentations/latest -> <version>/sets/<id>: a stable path to the newest set's files.
    link, tmp = latest.with_suffix(""), latest.with_name(".latest.tmp")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(os.path.relpath(folder, latest.parent), tmp)
    os.replace(tmp, link)
    log.info(f"latest segmentation: {folder} ({link})")


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
