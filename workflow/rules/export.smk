# Sharing a model: a BioImage Model Zoo package of a registered version (export.model), tested with
# bioimageio.core as it is made (omnitrain/export.py). The target is `snakemake export`; the package's folder
# is keyed by the version, the export settings and the code, and exports/latest.zip links the newest.


localrules:
    export_latest,


wildcard_constraints:
    expmodel="[0-9a-f]{12}",
    expkey="[0-9a-f]{12}",


# The version's files are params, not inputs: their paths are outputs of rules whose versions may not be the
# current config's; a registered version's files never change (the plan checks they are there).
rule export_model:
    output:
        folder=directory(f"{RESULTS}/{EXPORT_FOLDER.format(model='{expmodel}', key='{expkey}')}"),
    log:
        f"{LOGS}/export_model/{{expmodel}}_{{expkey}}.log",
    conda:
        "../../envs/export.yaml"
    threads: PLAN.config["resources"]["train_threads"]
    params:
        job=export_job,
    script:
        "../scripts/export_model.py"


rule export_latest:
    input:
        folder=lambda w: export_targets(w)[0],
    output:
        latest=f"{RESULTS}/{EXPORT_LATEST}",
    log:
        f"{LOGS}/export_latest.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        package=lambda w: export.package_name(export_job(w)["version"]),
    script:
        "../scripts/export_latest.py"
