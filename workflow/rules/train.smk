# Training with the real Omnipose, the built-in model it may start from, and the size model (only when
# train_size is on).


# The download runs where snakemake runs (the login or submit host): GPU nodes often have no internet.
localrules:
    download_pretrained,


rule download_pretrained:
    output:
        # weights: the run's copy of Omnipose's file; the record names it, its URL and sha256
        weights=f"{FOLDER['pretrained']}/weights",
        record=f"{FOLDER['pretrained']}/pretrained.json",
    log:
        LOG["download_pretrained"],
    conda:
        "../../envs/omnipose.yaml"
    params:
        settings=settings_of_run("pretrained"),
    script:
        "../scripts/download_pretrained.py"


rule train:
    input:
        unpack(train_inputs),
    output:
        # The model file (<models>/<Omnipose's name>, and <name>_best when monitored) is written before the
        # card: the card stands for it (its name depends on nchan, nclasses and dim; see omnitrain/plan.py).
        card=f"{FOLDER['model']}/model_card.json",
        losses=f"{FOLDER['model']}/losses.tsv",
        curve=report(
            f"{FOLDER['model']}/loss_curve.png",
            caption="../report/loss_curve.rst",
            category="Training",
        ),
    log:
        LOG["train"],
    benchmark:
        BENCHMARK["train"]
    conda:
        "../../envs/omnipose.yaml"
    threads: train_resource("model", "train_threads")
    resources:
        gpu=gpus_of("model"),
        mem_mb=train_resource("model", "train_mem_mb"),
        runtime=train_resource("model", "train_runtime"),
    params:
        settings=settings_of_run("model"),
        version=by_run("model", lambda run: run.version["model"]),
        sources=by_run("model", lambda run: run.train_image_files),
        monitor_off=by_run("model", lambda run: run.monitor_off),
        model=by_run("model", lambda run: run.model),
        best=by_run("model", lambda run: run.best_model if run.monitored else None),
    script:
        "../scripts/train.py"


if PLAN.any_size_model:

    rule fit_size_model:
        input:
            card=by_run("size_model", lambda run: f"{run.folder['model']}/model_card.json"),
            trainset=by_run("size_model", lambda run: f"{run.folder['trainset']}/trainset"),
            heldout=by_run("size_model", lambda run: run.folder["heldout"]),
        output:
            # <model>_size.npy, Omnipose's name, is written beside this table (see the train rule's model)
            heldout=f"{FOLDER['size_model']}/size_heldout.tsv",
        log:
            LOG["fit_size_model"],
        benchmark:
            BENCHMARK["fit_size_model"]
        conda:
            "../../envs/omnipose.yaml"
        threads: train_resource("size_model", "train_threads")
        resources:
            gpu=gpus_of("size_model"),
            mem_mb=train_resource("size_model", "train_mem_mb"),
        params:
            settings=settings_of_run("size_model"),
            model=by_run("size_model", lambda run: run.selected_model),
            size=by_run("size_model", lambda run: run.size_model),
        script:
            "../scripts/fit_size_model.py"
