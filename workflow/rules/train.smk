# Training with the real Omnipose, and the size model (only when train_size is on).


rule train:
    input:
        unpack(train_inputs),
        trainset=rules.pack.output.trainset,
        provenance=rules.pack.output.provenance,
        checked=rules.validate_training_set.output.table,
        pretrained=[ancient(x) for x in PRETRAINED],
    output:
        **({"best": BEST_MODEL} if MONITORED else {}),
        model=MODEL,
        card=f"{DIR['model']}/model_card.json",
        losses=f"{DIR['model']}/losses.tsv",
        curve=report(
            f"{DIR['model']}/loss_curve.png",
            caption="../report/loss_curve.rst",
            category="Training",
        ),
    log:
        LOG["train"],
    benchmark:
        BENCHMARK["train"]
    conda:
        "../../envs/omnipose.yaml"
    threads: config["resources"]["train_threads"]
    resources:
        gpu=GPUS,
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
    params:
        settings=SETTINGS["model"],
        version=V["model"],
        sources=TRAIN_IMAGE_FILES,
        monitor_off=MONITOR_OFF,
    script:
        "../scripts/train.py"


if "size_model" in ENABLED:

    rule fit_size_model:
        input:
            model=SELECTED_MODEL,
            card=rules.train.output.card,
            trainset=rules.pack.output.trainset,
            heldout=rules.heldout_set.output.heldout,
        output:
            size=f"{DIR['size_model']}/{Path(SELECTED_MODEL).name}_size.npy",
            heldout=f"{DIR['size_model']}/size_heldout.tsv",
        log:
            LOG["fit_size_model"],
        benchmark:
            BENCHMARK["fit_size_model"]
        conda:
            "../../envs/omnipose.yaml"
        threads: config["resources"]["train_threads"]
        resources:
            gpu=GPUS,
            mem_mb=config["resources"]["train_mem_mb"],
        params:
            settings=SETTINGS["size_model"],
        script:
            "../scripts/fit_size_model.py"
