# Held-out evaluation: segment the held-out images with the trained model, score, draw.


rule predict_heldout:
    input:
        unpack(by_run(PREDICTION, lambda run: run.prediction_inputs())),
    output:
        predictions=directory(FILE[PREDICTION]["folder"]),
    log:
        LOG["predict_heldout"],
    benchmark:
        BENCHMARK["predict_heldout"]
    conda:
        "../../envs/omnipose.yaml"
    threads: train_resource(PREDICTION, "train_threads")
    resources:
        gpu=gpus_of(PREDICTION),
        gpu_jobs=gpu_jobs_of(PREDICTION),
        mem_mb=train_resource(PREDICTION, "train_mem_mb"),
    params:
        settings=settings_of_run(PREDICTION),
        files=by_run(PREDICTION, lambda run: run.prediction_files()),
    script:
        "../scripts/predict_heldout.py"


rule evaluate:
    input:
        heldout=by_run(EVALUATION, lambda run: run.file[HELDOUT]["folder"]),
        predictions=by_run(EVALUATION, lambda run: run.file[PREDICTION]["folder"]),
    output:
        per_threshold=FILE[EVALUATION]["per_threshold"],
        per_image=FILE[EVALUATION]["per_image"],
        summary=report(
            FILE[EVALUATION]["summary"],
            caption="../report/summary.rst",
            category="Evaluation",
        ),
        scores=FILE[EVALUATION]["scores"],
        ap_curve=report(
            FILE[EVALUATION]["ap_curve"],
            caption="../report/ap_curve.rst",
            category="Evaluation",
        ),
        overlays=report(
            FILE[EVALUATION]["overlays"],
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
        settings=settings_of_run(EVALUATION),
    script:
        "../scripts/evaluate.py"
