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


# Every later rule takes this as ancient(): it must exist (the data passed), but rewriting it when one
# file changes does not make the other images' jobs rerun.
VALIDATED = rules.validate_inputs.output.table
