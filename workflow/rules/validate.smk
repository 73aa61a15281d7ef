# Pre-flight check of the user's data folders: every problem, with its file and its fix.


rule validate_inputs:
    input:
        files=[ancient(p) for p in PLAN.inputs.sha256],
    output:
        table=FILE[VALIDATION]["table"],
        summary=report(
            FILE[VALIDATION]["summary"],
            caption="../report/validate_inputs.rst",
            category="Validation",
        ),
    log:
        LOG["validate_inputs"],
    priority: 100
    conda:
        "../../envs/preprocess.yaml"
    params:
        settings=settings_of_run(VALIDATION),
    script:
        "../scripts/validate_inputs.py"
