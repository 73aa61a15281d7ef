"""Rule registry: the registry table (one row per registered version) and the latest-version pointer."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

from omnitrain.registry import RegistryProblem, load_records, registry_table
from omnitrain.runlog import get_logger, run_step


def main(sm) -> None:
    log = get_logger(sm.log[0])
    results = Path(sm.params.results)
    table = registry_table(load_records(results))
    table.to_csv(sm.output.table, sep="\t", index=False)
    Path(sm.output.latest).write_text(sm.params.version + "\n")
    # results/latest -> versions/<id>: a stable path to the current version's files.
    link = results / "latest"
    tmp = results / ".latest.tmp"
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(f"versions/{sm.params.version}", tmp)
    os.replace(tmp, link)
    log.info(f"registry: {len(table)} version(s) in {sm.output.table}; latest {sm.params.version} ({link})")


run_step(main, snakemake, said=(RegistryProblem,))  # noqa: F821 (defined by Snakemake)
