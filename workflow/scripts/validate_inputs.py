"""Rule validate_inputs: check the training folder; on any error, stop with one message and write nothing."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

from omnitrain.problems import errors, format_report
from omnitrain.validation import summary_text, validate_folder


def main(sm) -> None:
    folder = sm.params.settings["dir"]
    table, problems = validate_folder(sm.config, folder)
    summary = summary_text(table, problems, f"Validation of the training folder {folder}")
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


main(snakemake)  # noqa: F821 (defined by Snakemake)
