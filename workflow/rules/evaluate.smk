# Held-out evaluation: segment the held-out images with the trained model, score, draw.


rule predict_heldout:
    input:
        unpack(prediction_inputs),
    output:
        predictions=directory(DIR["prediction"]),
    log:
        LOG["predict_heldout"],
    benchmark:
        BENCHMARK["predict_heldout"]
    conda:
        "../../envs/omnipose.yaml"
    threads: config["resources"]["train_threads"]
    resources:
        gpu=GPUS,
        mem_mb=config["resources"]["train_mem_mb"],
    params:
        settings=SETTINGS["prediction"],
    script:
        "../scripts/predict_heldout.py"


rule evaluate:
    input:
        heldout=rules.heldout_set.output.heldout,
        predictions=rules.predict_heldout.output.predictions,
    output:
        per_threshold=f"{DIR['evaluation']}/per_image_per_threshold.tsv",
        per_image=f"{DIR['evaluation']}/per_image.tsv",
        summary=report(
            f"{DIR['evaluation']}/summary.tsv",
            caption="../report/summary.rst",
            category="Evaluation",
        ),
        scores=f"{DIR['evaluation']}/scores.json",
        ap_curve=report(
            f"{DIR['evaluation']}/ap_curve.png",
            caption="../report/ap_curve.rst",
            category="Evaluation",
        ),
        overlays=report(
            f"{DIR['evaluation']}/overlays.png",
            caption="../report/overlays.rst",
            category="Evaluation",
        ),
    log:
        LOG["evaluate"],
    benchmark:
        BENCHMARK["evaluate"]
    conda:
        "../../envs/omnipose.yaml"
    params:
        settings=SETTINGS["evaluation"],
    script:
        "../scripts/evaluate.py"
