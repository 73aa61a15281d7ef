# Using a model: segment the images of segment_dir with a registered version (segment_model), each image in its
# own content-addressed folder (reruns segment only new or changed images), then the set's table, review order
# and drafts to correct (omnitrain/segmentation.py, omnitrain/drafts.py). The target is `snakemake segment`.


from omnitrain.segmentation import (
    BATCH_TABLE as SEGMENT_BATCH_TABLE,
    LATEST as SEGMENT_LATEST,
    SET_FOLDER as SEGMENT_SET_FOLDER,
    results_of_set_file,
)


localrules:
    segment_set,
    segment_latest,


wildcard_constraints:
    segmodel="[0-9a-f]{12}",
    segbatch="[0-9a-f]{12}",
    segset="[0-9a-f]{12}",


rule segment_images:
    input:
        images=lambda w: [
            ancient(segment_job(w)["items"][s]["image"]) for s in segment_job(w)["batches"][w.segbatch]
        ],
    output:
        table=f"{RESULTS}/{SEGMENT_BATCH_TABLE.format(model='{segmodel}', batch='{segbatch}')}",
    log:
        f"{LOGS}/segment_images/{{segmodel}}_{{segbatch}}.log",
    conda:
        "../../envs/omnipose.yaml"
    threads: PLAN.config["resources"]["train_threads"]
    resources:
        gpu=0 if PLAN.config["use_gpu"] is False else 1,
        gpu_jobs=0 if PLAN.config["use_gpu"] is False else 1,
        mem_mb=PLAN.config["resources"]["train_mem_mb"],
    params:
        images=lambda w: [segment_job(w)["items"][s] for s in segment_job(w)["batches"][w.segbatch]],
        settings=lambda w: segment_job(w)["settings"],
        # The registered version's files, not inputs: their paths are outputs of the train rule, whose version
        # may not be the current config's; a registered version's files never change (checked at start).
        files=lambda w: segment_job(w)["files"],
        use_gpu=PLAN.config["use_gpu"],  # where it runs, not what it computes: not in the folders' keys
    script:
        "../scripts/segment_images.py"


# drafts/ beside the outputs is no declared output: a rerun in place must not delete the corrections in it.
rule segment_set:
    input:
        tables=lambda w: SEGMENT.batch_tables(segment_job(w)),
    output:
        table=f"{RESULTS}/{SEGMENT_SET_FOLDER.format(model='{segmodel}', set='{segset}')}/segmentation.tsv",
        review=f"{RESULTS}/{SEGMENT_SET_FOLDER.format(model='{segmodel}', set='{segset}')}/review.tsv",
        drafts_table=f"{RESULTS}/{SEGMENT_SET_FOLDER.format(model='{segmodel}', set='{segset}')}/drafts.tsv",
        masks=directory(f"{RESULTS}/{SEGMENT_SET_FOLDER.format(model='{segmodel}', set='{segset}')}/masks"),
    log:
        f"{LOGS}/segment_set/{{segmodel}}_{{segset}}.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        images=lambda w: list(segment_job(w)["items"].values()),
        model_version=lambda w: segment_job(w)["version"],
        set=lambda w: segment_job(w)["set"],
        drafts=lambda w: segment_job(w)["drafts"]["on"],
        mask_filter=lambda w: segment_job(w)["drafts"]["mask_filter"],
        results=lambda w, output: str(results_of_set_file(output.table)),
    script:
        "../scripts/segment_set.py"


rule segment_latest:
    input:
        table=lambda w: f"{SEGMENT.set_folder(segment_job())}/segmentation.tsv",
    output:
        latest=f"{RESULTS}/{SEGMENT_LATEST}",
    log:
        f"{LOGS}/segment_latest.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        folder=lambda w: SEGMENT.set_folder(segment_job()),
    script:
        "../scripts/segment_latest.py"
