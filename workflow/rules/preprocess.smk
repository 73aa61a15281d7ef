# Preprocessing: the held-out split, the per-image work in batches (channel selection; tiles and dense
# crops of training images), packing into ensemble images, the preview, and the check of the produced training set.


localrules:
    split,
    heldout_set,


if PLAN.any_monitored:

    localrules:
        monitor_set,

    rule monitor_set:
        input:
            batches=by_run(MONITOR_SET, lambda run: run.batch_tables(run.validation)),
        output:
            heldout=directory(FILE[MONITOR_SET]["folder"]),
        log:
            LOG["monitor_set"],
        conda:
            "../../envs/preprocess.yaml"
        script:
            "../scripts/heldout_set.py"


rule split:
    input:
        validated=by_run(SPLIT, lambda run: run.file[VALIDATION]["table"]),
    output:
        table=FILE[SPLIT]["table"],
    log:
        LOG["split"],
    conda:
        "../../envs/preprocess.yaml"
    params:
        settings=settings_of_run(SPLIT),
        sources=by_run(SPLIT, lambda run: run.data["sources"]),
    script:
        "../scripts/split.py"


rule prepare_images:
    input:
        unpack(batch_files),
    output:
        table=str(batch_table(RESULTS, "{batch}")),
    log:
        f"{LOGS}/prepare_images/{{batch}}.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        images=lambda w: batch_run(w).batch_params(w.batch),
        refused=PLAN.inputs.naming_refusal,
    script:
        "../scripts/prepare_images.py"


rule pack:
    input:
        batches=by_run(TRAINSET, lambda run: run.batch_tables(run.train)),
    output:
        trainset=directory(FILE[TRAINSET]["trainset"]),
        provenance=FILE[TRAINSET]["provenance"],
        stats=FILE[TRAINSET]["stats"],
    log:
        LOG["pack"],
    benchmark:
        BENCHMARK["pack"]
    conda:
        "../../envs/preprocess.yaml"
    params:
        settings=settings_of_run(TRAINSET),
    script:
        "../scripts/pack.py"


rule preview:
    input:
        trainset=FILE[TRAINSET]["trainset"],
        provenance=FILE[TRAINSET]["provenance"],
    output:
        preview=report(
            FILE[TRAINSET]["preview"],
            caption="../report/preview.rst",
            category="Training set",
        ),
    log:
        LOG["preview"],
    conda:
        "../../envs/preprocess.yaml"
    script:
        "../scripts/preview.py"


rule validate_training_set:
    input:
        trainset=FILE[TRAINSET]["trainset"],
        provenance=FILE[TRAINSET]["provenance"],
    output:
        table=FILE[CHECK]["table"],
        summary=report(
            FILE[CHECK]["summary"],
            caption="../report/validate_training_set.rst",
            category="Validation",
        ),
    log:
        LOG["validate_training_set"],
    conda:
        "../../envs/omnipose.yaml"
    params:
        settings=settings_of_run(CHECK),
        sources=by_run(CHECK, lambda run: run.train_image_files),
    script:
        "../scripts/validate_training_set.py"


rule heldout_set:
    input:
        batches=by_run(HELDOUT, lambda run: run.batch_tables(run.test)),
    output:
        heldout=directory(FILE[HELDOUT]["folder"]),
    log:
        LOG["heldout_set"],
    conda:
        "../../envs/preprocess.yaml"
    script:
        "../scripts/heldout_set.py"
