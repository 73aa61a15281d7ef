# Preprocessing: held-out split, channel selection (per image), tiling and dense crops (per training
# image), packing into ensemble images, the preview, and the check of the produced training set.


localrules:
    split,
    heldout_set,


rule split:
    output:
        f"{PRE}/split.tsv",
    log:
        f"{LOGS}/split.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        sources={s: {"name": v["name"], "role": v["role"]} for s, v in SOURCES.items()},
        split=config["split"],
        seed=config["pipeline"]["seed"],
        test_dir=config["test_dir"],
    script:
        "../scripts/split.py"


rule select_channels:
    input:
        unpack(source_files),
    output:
        image=f"{PRE}/channels/{{sid}}.tif",
        labels=f"{PRE}/channels/{{sid}}_masks.tif",
        links=f"{PRE}/channels/{{sid}}_links.txt",
        meta=f"{PRE}/channels/{{sid}}.json",
    log:
        f"{LOGS}/select_channels/{{sid}}.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        settings=channel_settings(),
    script:
        "../scripts/select_channels.py"


rule tile:
    input:
        image=rules.select_channels.output.image,
        labels=rules.select_channels.output.labels,
        links=rules.select_channels.output.links,
    output:
        directory(f"{PRE}/tiles/{{sid}}"),
    log:
        f"{LOGS}/tile/{{sid}}.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        tiling=config["tiling"],
    script:
        "../scripts/tile.py"


rule crop:
    input:
        tiles=rules.tile.output[0],
        meta=rules.select_channels.output.meta,
        labels=rules.select_channels.output.labels,
    output:
        directory(f"{PRE}/crops/{{sid}}"),
    log:
        f"{LOGS}/crop/{{sid}}.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        packing=config["packing"],
    script:
        "../scripts/crop.py"


rule pack:
    input:
        parts=expand(
            f"{PRE}/crops/{{sid}}" if config["packing"]["enabled"] else f"{PRE}/tiles/{{sid}}",
            sid=TRAIN,
        ),
        tiles=expand(f"{PRE}/tiles/{{sid}}", sid=TRAIN),
        split=rules.split.output[0],
        validated=VALIDATED,
    output:
        trainset=directory(f"{RESULTS}/trainset"),
        provenance=f"{PRE}/provenance.tsv",
        stats=f"{PRE}/packing_stats.json",
    log:
        f"{LOGS}/pack.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        packing=config["packing"],
        tiling=config["tiling"],
    script:
        "../scripts/pack.py"


rule preview:
    input:
        trainset=rules.pack.output.trainset,
        provenance=rules.pack.output.provenance,
    output:
        report(
            f"{PRE}/preview.png",
            caption="../report/preview.rst",
            category="Training set",
        ),
    log:
        f"{LOGS}/preview.log",
    conda:
        "../../envs/preprocess.yaml"
    script:
        "../scripts/preview.py"


rule validate_training_set:
    input:
        trainset=rules.pack.output.trainset,
    output:
        table=f"{RESULTS}/validation/trainset.tsv",
        summary=report(
            f"{RESULTS}/validation/trainset_summary.txt",
            caption="../report/validate_training_set.rst",
            category="Validation",
        ),
    log:
        f"{LOGS}/validate_training_set.log",
    conda:
        "../../envs/omnipose.yaml"
    params:
        settings=validation_settings(),
        keep_empty=config["tiling"]["keep_empty"],
    script:
        "../scripts/validate_training_set.py"


rule heldout_set:
    input:
        expand(f"{PRE}/channels/{{sid}}{{suffix}}", sid=TEST, suffix=(".tif", "_masks.tif", "_links.txt")),
    output:
        directory(f"{RESULTS}/heldout"),
    log:
        f"{LOGS}/heldout_set.log",
    conda:
        "../../envs/preprocess.yaml"
    script:
        "../scripts/heldout_set.py"
