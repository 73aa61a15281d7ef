# Training with the real Omnipose, the built-in model it may start from, and the size model (only when
# train_size is on).


# The download runs where snakemake runs (the login or submit host): GPU nodes often have no internet.
localrules:
    download_pretrained,


rule download_pretrained:
    output:
        # weights: the run's copy of Omnipose's file; the record names it, its URL and sha256
        weights=FILE[PRETRAINED]["weights"],
        record=FILE[PRETRAINED]["record"],
    log:
        LOG["download_pretrained"],
    conda:
        "../../envs/omnipose.yaml"
    params:
        settings=settings_of_run(PRETRAINED),
    script:
        "../scripts/download_pretrained.py"


rule train:
    input:
        unpack(train_inputs),
    output:
        # The model file (<models>/<Omnipose's name>, and <name>_best when monitored) is written before the
        # card: the card stands for it (its name depends on nchan, nclasses and dim; see omnitrain/plan.py).
        card=FILE[MODEL]["card"],
        losses=FILE[MODEL]["losses"],
        curve=report(
            FILE[MODEL]["curve"],
            caption="../report/loss_curve.rst",
            category="Training",
        ),
    log:
        LOG["train"],
    benchmark:
        BENCHMARK["train"]
    conda:
        "../../envs/omnipose.yaml"
    threads: train_resource(MODEL, "train_threads")
    resources:
        gpu=gpus_of(MODEL),
        gpu_jobs=gpu_jobs_of(MODEL),
        mem_mb=train_resource(MODEL, "train_mem_mb"),
        runtime=train_resource(MODEL, "train_runtime"),
    params:
        settings=settings_of_run(MODEL),
        version=by_run(MODEL, lambda run: run.version[MODEL]),
        sources=by_run(MODEL, lambda run: run.train_image_files),
        monitor_off=by_run(MODEL, lambda run: run.monitor_off),
        model=by_run(MODEL, lambda run: run.model),
        best=by_run(MODEL, lambda run: run.best_model if run.monitored else None),
    script:
        "../scripts/train.py"


if PLAN.any_size_model:

    rule fit_size_model:
        input:
            card=by_run(SIZE_MODEL, lambda run: run.file[MODEL]["card"]),
            trainset=by_run(SIZE_MODEL, lambda run: run.file[TRAINSET]["trainset"]),
            heldout=by_run(SIZE_MODEL, lambda run: run.file[HELDOUT]["folder"]),
        output:
            # <model>_size.npy, Omnipose's name, is written beside this table (see the train rule's model)
            heldout=FILE[SIZE_MODEL]["heldout"],
        log:
            LOG["fit_size_model"],
        benchmark:
            BENCHMARK["fit_size_model"]
        conda:
            "../../envs/omnipose.yaml"
        threads: train_resource(SIZE_MODEL, "train_threads")
        resources:
            gpu=gpus_of(SIZE_MODEL),
            gpu_jobs=gpu_jobs_of(SIZE_MODEL),
            mem_mb=train_resource(SIZE_MODEL, "train_mem_mb"),
        params:
            settings=settings_of_run(SIZE_MODEL),
            model=by_run(SIZE_MODEL, lambda run: run.selected_model),
            size=by_run(SIZE_MODEL, lambda run: run.size_model),
        script:
            "../scripts/fit_size_model.py"
