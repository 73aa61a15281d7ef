# Pre-flight check of the user's training folder: every problem, with its file and its fix.


rule validate_inputs:
    input:
        files=[str(p) for p in INPUTS.files()],
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
