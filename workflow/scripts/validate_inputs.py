"""Rule validate_inputs: check the training folder; on any error, stop with one message and write nothing."""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

from omnitrain.problems import errors, format_report
from omnitrain.runlog import run_step
from omnitrain.validation import summary_text, validate_folder


def main(sm) -> None:
    settings = sm.params.settings
    folder = settings["dir"]
    table, problems = validate_folder(settings, folder)
    test_dir = settings["test_dir"]
    if test_dir:
        test_table, test_problems = validate_folder(settings, test_dir, min_pairs=1)
        table = pd.concat([table.assign(set="train"), test_table.assign(set="test")], ignore_index=True)
        problems += test_problems
        folder = f"{folder} and {test_dir}"
    summary = summary_text(table, problems, f"Validation of {folder}")
    with open(sm.log[0], "w") as log:
        log.write(summary + "\n")
    if errors(problems):
        report = format_report(problems, f"Input validation of {folder} failed")
        sys.stderr.write(f"\n{report}\nNothing was written; fix the files above and run again.\n")
        sys.exit(1)
    table.to_csv(sm.output.table, sep="\t", index=False)
    with open(sm.output.summary, "w") as out:
        out.write(summary + "\n")
    sys.stderr.write(summary + "\n")


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
