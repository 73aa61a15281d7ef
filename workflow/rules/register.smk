# Versions: register the current version (record, lineage manifest, changes since the previous one)
# and rebuild the registry table and the latest-version pointer.


localrules:
    registry,


rule register:
    input:
        unpack(register_inputs),
    output:
        record=f"{DIR['version']}/record.json",
        manifest=f"{DIR['version']}/manifest.json",
        changes_json=f"{DIR['version']}/changes.json",
        changes=report(
            f"{DIR['version']}/changes.md",
            caption="../report/changes.rst",
            category="Versions",
        ),
    log:
        LOG["register"],
    conda:
        "../../envs/preprocess.yaml"
    params:
        settings=SETTINGS["version"],
        version=VERSION,
        versions={k: v for k, v in V.items() if k != "version"},
        sources=register_sources(),
        results=lambda w, output: results_of(output.record, "version"),
        folders={k: v for k, v in DIR.items() if k != "version"},
        links=registered_links(),
        benchmarks=BENCHMARK,
    script:
        "../scripts/register.py"


rule registry:
    input:
        record=rules.register.output.record,
    output:
        table=f"{RESULTS}/registry.tsv",
        latest=f"{RESULTS}/latest.txt",
    log:
        LOG["registry"],
    conda:
        "../../envs/preprocess.yaml"
    params:
        version=VERSION,
        results=lambda w, output: str(Path(output.table).parent),
    script:
        "../scripts/registry.py"
