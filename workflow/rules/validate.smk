# Pre-flight check of the user's data folders: every problem, with its file and its fix.


rule validate_inputs:
    input:
        files=[str(p) for p in INPUTS.files()],
        test_files=[str(p) for p in TEST_INPUTS.files()] if TEST_INPUTS else [],
    output:
        table=f"{RESULTS}/validation/inputs.tsv",
        summary=report(
            f"{RESULTS}/validation/inputs_summary.txt",
            caption="../report/validate_inputs.rst",
            category="Validation",
        ),
    log:
        f"{LOGS}/validate_inputs.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        settings=validation_settings(),
    script:
        "../scripts/validate_inputs.py"


# The aggregate steps (split, pack, and so training) need this: nothing is trained on data that did not
# pass. The per-image steps do not depend on it (that would make every image's jobs rerun whenever one
# file changes); they check their own pair and stop with the same message if it is broken. The high
# priority runs the validation first.
VALIDATED = rules.validate_inputs.output.table
