# Training with the real Omnipose, and the size model.


rule train:
    input:
        trainset=rules.pack.output.trainset,
        checked=rules.validate_training_set.output.table,
        pretrained=[ancient(x) for x in PRETRAINED],
    output:
        model=MODEL,
        card=f"{MODEL_DIR}/model_card.json",
        losses=f"{MODEL_DIR}/losses.tsv",
        curve=report(
            f"{MODEL_DIR}/loss_curve.png",
            caption="../report/loss_curve.rst",
            category="Training",
        ),
    log:
        f"{LOGS}/train/{V['model']}.log",
    benchmark:
        BENCHMARKS["train"]
    conda:
        "../../envs/omnipose.yaml"
    threads: config["resources"]["train_threads"]
    resources:
        gpu=GPUS,
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
    params:
        flags=training_settings(),
        version=V["model"],
    script:
        "../scripts/train.py"


rule fit_size_model:
    input:
        model=rules.train.output.model,
        card=rules.train.output.card,
        trainset=rules.pack.output.trainset,
        heldout=rules.heldout_set.output[0],
    output:
        size=f"{SIZE_DIR}/{Path(MODEL).name}_size.npy",
        heldout=f"{SIZE_DIR}/size_heldout.tsv",
    log:
        f"{LOGS}/fit_size_model/{V['size_model']}.log",
    benchmark:
        BENCHMARKS["fit_size_model"]
    conda:
        "../../envs/omnipose.yaml"
    threads: config["resources"]["train_threads"]
    resources:
        gpu=GPUS,
        mem_mb=config["resources"]["train_mem_mb"],
    params:
        **size_settings(),
    script:
        "../scripts/fit_size_model.py"
