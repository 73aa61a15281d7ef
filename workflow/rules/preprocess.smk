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
            batches=by_run("monitor_set", lambda run: run.batch_tables(run.validation)),
        output:
            heldout=directory(FOLDER["monitor_set"]),
        log:
            LOG["monitor_set"],
        conda:
            "../../envs/preprocess.yaml"
        script:
            "../scripts/heldout_set.py"


rule split:
    input:
        validated=by_run("split", lambda run: f"{run.folder['validation']}/inputs.tsv"),
    output:
        table=f"{FOLDER['split']}/split.tsv",
    log:
        LOG["split"],
    conda:
        "../../envs/preprocess.yaml"
    params:
        settings=settings_of_run("split"),
        sources=by_run("split", lambda run: run.data["sources"]),
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
        batches=by_run("trainset", lambda run: run.batch_tables(run.train)),
    output:
        trainset=directory(f"{FOLDER['trainset']}/trainset"),
        provenance=f"{FOLDER['trainset']}/provenance.tsv",
        stats=f"{FOLDER['trainset']}/packing_stats.json",
    log:
        LOG["pack"],
    benchmark:
        BENCHMARK["pack"]
    conda:
        "../../envs/preprocess.yaml"
    params:
        settings=settings_of_run("trainset"),
    script:
        "../scripts/pack.py"


rule preview:
    input:
        trainset=f"{FOLDER['trainset']}/trainset",
        provenance=f"{FOLDER['trainset']}/provenance.tsv",
    output:
        preview=report(
            f"{FOLDER['trainset']}/preview.png",
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
        trainset=f"{FOLDER['trainset']}/trainset",
        provenance=f"{FOLDER['trainset']}/provenance.tsv",
    output:
        table=f"{FOLDER['check']}/validation.tsv",
        summary=report(
            f"{FOLDER['check']}/validation_summary.txt",
            caption="../report/validate_training_set.rst",
            category="Validation",
        ),
    log:
        LOG["validate_training_set"],
    conda:
        "../../envs/omnipose.yaml"
    params:
        settings=settings_of_run("check"),
        sources=by_run("check", lambda run: run.train_image_files),
    script:
        "../scripts/validate_training_set.py"


rule heldout_set:
    input:
        batches=by_run("heldout", lambda run: run.batch_tables(run.test)),
    output:
        heldout=directory(FOLDER["heldout"]),
    log:
        LOG["heldout_set"],
    conda:
        "../../envs/preprocess.yaml"
    script:
        "../scripts/heldout_set.py"
