# Preprocessing: held-out split, the per-image work in batches (channel selection; tiles and dense
# crops of training images), packing into ensemble images, the preview, and the check of the produced training set.


localrules:
    split,
    heldout_set,


rule split:
    output:
        SPLIT,
    log:
        f"{LOGS}/split/{V['split']}.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        **split_settings(),
    script:
        "../scripts/split.py"


rule prepare_images:
    input:
        unpack(batch_files),
    output:
        f"{RESULTS}/image_batches/{{batch}}.tsv",
    log:
        f"{LOGS}/prepare_images/{{batch}}.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        images=batch_params,
    script:
        "../scripts/prepare_images.py"


rule pack:
    input:
        batches=batch_tables(TRAIN),
    output:
        trainset=directory(f"{TRAINSET_DIR}/trainset"),
        provenance=f"{TRAINSET_DIR}/provenance.tsv",
        stats=f"{TRAINSET_DIR}/packing_stats.json",
    log:
        f"{LOGS}/pack/{V['trainset']}.log",
    benchmark:
        BENCHMARKS["pack"]
    conda:
        "../../envs/preprocess.yaml"
    params:
        **image_settings("train"),
    script:
        "../scripts/pack.py"


rule preview:
    input:
        trainset=rules.pack.output.trainset,
        provenance=rules.pack.output.provenance,
    output:
        report(
            f"{TRAINSET_DIR}/preview.png",
            caption="../report/preview.rst",
            category="Training set",
        ),
    log:
        f"{LOGS}/preview/{V['trainset']}.log",
    conda:
        "../../envs/preprocess.yaml"
    script:
        "../scripts/preview.py"


rule validate_training_set:
    input:
        trainset=rules.pack.output.trainset,
    output:
        table=f"{CHECK_DIR}/validation.tsv",
        summary=report(
            f"{CHECK_DIR}/validation_summary.txt",
            caption="../report/validate_training_set.rst",
            category="Validation",
        ),
    log:
        f"{LOGS}/validate_training_set/{V['check']}.log",
    conda:
        "../../envs/omnipose.yaml"
    params:
        settings=validation_settings(),
        keep_empty=config["tiling"]["keep_empty"],
    script:
        "../scripts/validate_training_set.py"


rule heldout_set:
    input:
        batches=batch_tables(TEST),
    output:
        directory(HELDOUT),
    log:
        f"{LOGS}/heldout_set/{V['heldout']}.log",
    conda:
        "../../envs/preprocess.yaml"
    script:
        "../scripts/heldout_set.py"
