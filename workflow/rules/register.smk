# Versions: register each run's version (record, lineage manifest, changes since the previous one), rebuild the
# registry table and the latest-version pointer, and, with experiments or folds, the leaderboard.


localrules:
    registry,
    leaderboard,


rule register:
    input:
        unpack(by_run(VERSION, lambda run: run.register_inputs())),
    output:
        record=FILE[VERSION]["record"],
        manifest=FILE[VERSION]["manifest"],
        changes_json=FILE[VERSION]["changes_json"],
        report=FILE[VERSION]["report"],
        changes=report(
            FILE[VERSION]["changes"],
            caption="../report/changes.rst",
            category="Versions",
        ),
    log:
        LOG["register"],
    conda:
        "../../envs/preprocess.yaml"
    params:
        settings=settings_of_run(VERSION),
        version=by_run(VERSION, lambda run: run.version[VERSION]),
        run=by_run(VERSION, lambda run: run.data["run"]),
        versions=by_run(VERSION, lambda run: {k: v for k, v in run.version.items() if k != VERSION}),
        sources=by_run(VERSION, lambda run: run.register_sources(PLAN.inputs.test is not None)),
        results=lambda w, output: results_of(output.record, VERSION),
        folders=by_run(VERSION, lambda run: {k: v for k, v in run.folder.items() if k != VERSION}),
        links=by_run(VERSION, lambda run: run.registered_links()),
        benchmarks=by_run(VERSION, lambda run: dict(run.benchmarks)),
        model_files=by_run(VERSION, lambda run: run.model_files()),
    script:
        "../scripts/register.py"


rule registry:
    input:
        records=[run.file[VERSION]["record"] for run in RUNS.values()],
    output:
        table=f"{RESULTS}/registry.tsv",
        latest=f"{RESULTS}/latest.txt",
    log:
        f"{LOGS}/registry/{PRIMARY.version[VERSION]}.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        version=PRIMARY.version[VERSION],
        results=lambda w, output: str(Path(output.table).parent),
    script:
        "../scripts/registry.py"


rule leaderboard:
    input:
        records=[run.file[VERSION]["record"] for run in RUNS.values()],
    output:
        table=f"{RESULTS}/leaderboard.tsv",
        runs=f"{RESULTS}/leaderboard_runs.tsv",
        plot=report(
            f"{RESULTS}/leaderboard.png",
            caption="../report/leaderboard.rst",
            category="Experiments",
        ),
    log:
        f"{LOGS}/leaderboard/{PRIMARY.version[VERSION]}.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        metric=PLAN.config["leaderboard"]["metric"],
    script:
        "../scripts/leaderboard.py"
