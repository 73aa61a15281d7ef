# Versions: register each run's version (record, lineage manifest, changes since the previous one), rebuild the
# registry table and the latest-version pointer, and, with experiments or folds, the leaderboard.


localrules:
    registry,
    leaderboard,


rule register:
    input:
        unpack(by_run("version", lambda run: run.register_inputs())),
    output:
        record=f"{FOLDER['version']}/record.json",
        manifest=f"{FOLDER['version']}/manifest.json",
        changes_json=f"{FOLDER['version']}/changes.json",
        changes=report(
            f"{FOLDER['version']}/changes.md",
            caption="../report/changes.rst",
            category="Versions",
        ),
    log:
        LOG["register"],
    conda:
        "../../envs/preprocess.yaml"
    params:
        settings=settings_of_run("version"),
        version=by_run("version", lambda run: run.version["version"]),
        run=by_run("version", lambda run: run.data["run"]),
        versions=by_run("version", lambda run: {k: v for k, v in run.version.items() if k != "version"}),
        sources=by_run("version", lambda run: run.register_sources(PLAN.inputs.test is not None)),
        results=lambda w, output: results_of(output.record, "version"),
        folders=by_run("version", lambda run: {k: v for k, v in run.folder.items() if k != "version"}),
        links=by_run("version", lambda run: run.registered_links()),
        benchmarks=by_run("version", lambda run: dict(run.benchmarks)),
        model_files=by_run("version", lambda run: run.model_files()),
    script:
        "../scripts/register.py"


rule registry:
    input:
        records=[f"{run.folder['version']}/record.json" for run in RUNS.values()],
    output:
        table=f"{RESULTS}/registry.tsv",
        latest=f"{RESULTS}/latest.txt",
    log:
        f"{LOGS}/registry/{PRIMARY.version['version']}.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        version=PRIMARY.version["version"],
        results=lambda w, output: str(Path(output.table).parent),
    script:
        "../scripts/registry.py"


rule leaderboard:
    input:
        records=[f"{run.folder['version']}/record.json" for run in RUNS.values()],
    output:
        table=f"{RESULTS}/leaderboard.tsv",
        runs=f"{RESULTS}/leaderboard_runs.tsv",
        plot=report(
            f"{RESULTS}/leaderboard.png",
            caption="../report/leaderboard.rst",
            category="Experiments",
        ),
    log:
        f"{LOGS}/leaderboard/{PRIMARY.version['version']}.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        metric=PLAN.config["leaderboard"]["metric"],
    script:
        "../scripts/leaderboard.py"
