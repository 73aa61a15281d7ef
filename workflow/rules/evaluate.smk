# Held-out evaluation: segment the held-out images with the trained model, score, draw.


rule predict_heldout:
    input:
        unpack(by_run("prediction", lambda run: run.prediction_inputs())),
    output:
        predictions=directory(FOLDER["prediction"]),
    log:
        LOG["predict_heldout"],
    benchmark:
        BENCHMARK["predict_heldout"]
    conda:
        "../../envs/omnipose.yaml"
    threads: train_resource("prediction", "train_threads")
    resources:
        gpu=gpus_of("prediction"),
        mem_mb=train_resource("prediction", "train_mem_mb"),
    params:
        settings=settings_of_run("prediction"),
        files=by_run("prediction", lambda run: run.prediction_files()),
    script:
        "../scripts/predict_heldout.py"


rule evaluate:
    input:
        heldout=by_run("evaluation", lambda run: run.folder["heldout"]),
        predictions=by_run("evaluation", lambda run: run.folder["prediction"]),
    output:
        per_threshold=f"{FOLDER['evaluation']}/per_image_per_threshold.tsv",
        per_image=f"{FOLDER['evaluation']}/per_image.tsv",
        summary=report(
            f"{FOLDER['evaluation']}/summary.tsv",
            caption="../report/summary.rst",
            category="Evaluation",
        ),
        scores=f"{FOLDER['evaluation']}/scores.json",
        ap_curve=report(
            f"{FOLDER['evaluation']}/ap_curve.png",
            caption="../report/ap_curve.rst",
            category="Evaluation",
        ),
        overlays=report(
            f"{FOLDER['evaluation']}/overlays.png",
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
        settings=settings_of_run("evaluation"),
    script:
        "../scripts/evaluate.py"
