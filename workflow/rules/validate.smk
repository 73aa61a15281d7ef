# Pre-flight check of the user's data folders: every problem, with its file and its fix.


rule validate_inputs:
    input:
        files=[ancient(p) for p in INPUT_FILES],
    output:
        table=f"{VALIDATION_DIR}/inputs.tsv",
        summary=report(
            f"{VALIDATION_DIR}/inputs_summary.txt",
            caption="../report/validate_inputs.rst",
            category="Validation",
        ),
    log:
        f"{LOGS}/validate_inputs/{V['validation']}.log",
    priority: 100
    conda:
        "../../envs/preprocess.yaml"
    params:
        settings=validation_settings(),
    script:
        "../scripts/validate_inputs.py"
