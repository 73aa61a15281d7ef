# Pre-flight check of the user's data folders: every problem, with its file and its fix.


rule validate_inputs:
    input:
        files=[ancient(p) for p in INPUT_FILES],
    output:
        table=f"{DIR['validation']}/inputs.tsv",
        summary=report(
            f"{DIR['validation']}/inputs_summary.txt",
            caption="../report/validate_inputs.rst",
            category="Validation",
        ),
    log:
        LOG["validate_inputs"],
    priority: 100
    conda:
        "../../envs/preprocess.yaml"
    params:
        settings=SETTINGS["validation"],
    script:
        "../scripts/validate_inputs.py"
