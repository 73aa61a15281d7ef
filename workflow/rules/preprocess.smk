# Preprocessing: the held-out split, the per-image work in batches (channel selection; tiles and dense
# crops of training images), packing into ensemble images, the preview, and the check of the produced training set.


localrules:
    split,
    heldout_set,


if "monitor_set" in ENABLED:

    localrules:
        monitor_set,

    rule monitor_set:
        input:
            batches=batch_tables(VALIDATION),
        output:
            heldout=directory(DIR["monitor_set"]),
        log:
            LOG["monitor_set"],
        conda:
            "../../envs/preprocess.yaml"
        script:
            "../scripts/heldout_set.py"


rule split:
    input:
        validated=rules.validate_inputs.output.table,
    output:
        table=f"{DIR['split']}/split.tsv",
    log:
        LOG["split"],
    conda:
        "../../envs/preprocess.yaml"
    params:
        settings=SETTINGS["split"],
        sources=DATA["sources"],
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
        images=batch_params,
        refused=NAMING_REFUSAL,
    script:
        "../scripts/prepare_images.py"


rule pack:
    input:
        batches=batch_tables(TRAIN),
    output:
        trainset=directory(f"{DIR['trainset']}/trainset"),
        provenance=f"{DIR['trainset']}/provenance.tsv",
        stats=f"{DIR['trainset']}/packing_stats.json",
    log:
        LOG["pack"],
    benchmark:
        BENCHMARK["pack"]
    conda:
        "../../envs/preprocess.yaml"
    params:
        settings=SETTINGS["trainset"],
    script:
        "../scripts/pack.py"


rule preview:
    input:
        trainset=rules.pack.output.trainset,
        provenance=rules.pack.output.provenance,
    output:
        preview=report(
            f"{DIR['trainset']}/preview.png",
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
        trainset=rules.pack.output.trainset,
        provenance=rules.pack.output.provenance,
    output:
        table=f"{DIR['check']}/validation.tsv",
        summary=report(
            f"{DIR['check']}/validation_summary.txt",
            caption="../report/validate_training_set.rst",
            category="Validation",
        ),
    log:
        LOG["validate_training_set"],
    conda:
        "../../envs/omnipose.yaml"
    params:
        settings=SETTINGS["check"],
        sources=TRAIN_IMAGE_FILES,
    script:
        "../scripts/validate_training_set.py"


rule heldout_set:
    input:
        batches=batch_tables(TEST),
    output:
        heldout=directory(DIR["heldout"]),
    log:
        LOG["heldout_set"],
    conda:
        "../../envs/preprocess.yaml"
    script:
        "../scripts/heldout_set.py"
