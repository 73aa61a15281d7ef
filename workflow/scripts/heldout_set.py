"""Rules heldout_set and monitor_set: the held-out (or validation) source images, channels selected and labels
1..N, in Omnipose's naming."""

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

from omnitrain.batches import read_tables
from omnitrain.runlog import get_logger, run_step


def main(sm) -> None:
    log = get_logger(sm.log[0])
    out = Path(sm.output.heldout)
    out.mkdir(parents=True, exist_ok=True)
    for sid, folder in read_tables(sm.input.batches):
        for suffix in (".tif", "_masks.tif", "_links.txt"):
            src = folder / f"{sid}{suffix}"
            if suffix != "_links.txt" or src.stat().st_size:
                shutil.copyfile(src, out / src.name)
    n = len(list(out.glob("*_masks.tif")))
    kind = "validation" if sm.rule == "monitor_set" else "held-out"
    log.info(f"{kind} set: {n} source image(s) in {out}" + ("" if n else " (none: nothing to evaluate on)"))


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
