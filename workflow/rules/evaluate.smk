# Held-out evaluation: segment the held-out images with the trained model, score, draw.


rule predict_heldout:
    input:
        unpack(prediction_inputs),
    output:
        directory(f"{EVAL}/predictions"),
    log:
        f"{LOGS}/predict_heldout/{V['evaluation']}.log",
    benchmark:
        BENCHMARKS["predict_heldout"]
    conda:
        "../../envs/omnipose.yaml"
    threads: config["resources"]["train_threads"]
    resources:
        gpu=GPUS,
        mem_mb=config["resources"]["train_mem_mb"],
    params:
        **evaluation_settings(),
    script:
        "../scripts/predict_heldout.py"


rule evaluate:
    input:
        heldout=rules.heldout_set.output[0],
        predictions=rules.predict_heldout.output[0],
    output:
        per_threshold=f"{EVAL}/per_image_per_threshold.tsv",
        per_image=f"{EVAL}/per_image.tsv",
        summary=report(
            f"{EVAL}/summary.tsv",
            caption="../report/summary.rst",
            category="Evaluation",
        ),
        scores=f"{EVAL}/scores.json",
        ap_curve=report(
            f"{EVAL}/ap_curve.png",
            caption="../report/ap_curve.rst",
            category="Evaluation",
        ),
        overlays=report(
            f"{EVAL}/overlays.png",
            caption="../report/overlays.rst",
            category="Evaluation",
        ),
    log:
        f"{LOGS}/evaluate/{V['evaluation']}.log",
    benchmark:
        BENCHMARKS["evaluate"]
    conda:
        "../../envs/omnipose.yaml"
    params:
        **evaluation_settings(),
    script:
        "../scripts/evaluate.py"
