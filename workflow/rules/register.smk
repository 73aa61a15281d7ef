# Versions: register the current version (record, lineage manifest, changes since the previous one)
# and rebuild the registry table and the latest-version pointer.


localrules:
    registry,


rule register:
    input:
        unpack(register_inputs),
    output:
        record=f"{VERSION_DIR}/record.json",
        manifest=f"{VERSION_DIR}/manifest.json",
        changes_json=f"{VERSION_DIR}/changes.json",
        changes=report(
            f"{VERSION_DIR}/changes.md",
            caption="../report/changes.rst",
            category="Versions",
        ),
    log:
        f"{LOGS}/register/{VERSION}.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        version=VERSION,
        versions=V,
        sources=register_sources(),
        params=record_settings(),
        paths=version_paths(),
        links=version_links(),
        benchmarks=BENCHMARKS,
    script:
        "../scripts/register.py"


rule registry:
    input:
        record=rules.register.output.record,
    output:
        table=f"{RESULTS}/registry.tsv",
        latest=f"{RESULTS}/latest.txt",
    log:
        f"{LOGS}/registry.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        version=VERSION,
    script:
        "../scripts/registry.py"
