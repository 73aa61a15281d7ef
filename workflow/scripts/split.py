"""Rule split: the held-out assignment of the source images, as a table (decided in omnitrain/plan.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

import pandas as pd

from omnitrain.runlog import get_logger, run_step
from omnitrain.split import group_of, hash_unit


def main(sm) -> None:
    log = get_logger(sm.log[0])
    settings = sm.params.settings
    regex = settings["split"]["group_regex"]
    by_dir = settings["test_dir"] is not None
    rows = []
    for sid, src in sorted(sm.params.sources.items()):
        group = group_of(src["name"], regex)
        rows.append(
            {
                "source": sid,
                "name": src["name"],
                "group": group,
                "hash": "" if by_dir else f"{hash_unit(group, settings['pipeline']['seed']):.6f}",
                "role": src["role"],
                "fold": src.get("fold", ""),  # with cross-validation: the fold of each training image
            }
        )
    table = pd.DataFrame(rows, columns=["source", "name", "group", "hash", "role", "fold"])
    table.to_csv(sm.output.table, sep="\t", index=False)
    counts = table["role"].value_counts().to_dict()
    rule = "test_dir" if by_dir else f"hash < {settings['split']['test_fraction']}"
    log.info(
        f"split ({rule}): {counts.get('train', 0)} training, {counts.get('test', 0)} held-out source images"
    )
    if not counts.get("test"):
        log.info("no held-out image: set split.test_fraction or test_dir to evaluate on unseen images")


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
