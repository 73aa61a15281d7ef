# Adapters from the run plan (omnitrain/plan.py: config check, inputs, versions, folders, runs) to Snakemake's
# paths, input functions and params. The rules' paths hold the versions as wildcards ({model}, {trainset}, ...):
# a job finds its run (experiment and fold) by its version, so runs whose versions are equal share one job.
import sys
from pathlib import Path

from snakemake.logging import logger

# The library next to the workflow (omnitrain/) is importable here; the rules' scripts add the
# same folder to their own sys.path (they run in subprocesses, possibly in conda envs).
sys.path.insert(0, workflow.basedir)

from omnitrain import export
from omnitrain.export import EXPORT_FOLDER, LATEST as EXPORT_LATEST, ExportError
from omnitrain.hashing import code_digest
from omnitrain.results_lock import ResultsInUse, hold_results
from omnitrain.layout import batch_table
from omnitrain.plan import Plan, PlanError
from omnitrain.segment_plan import SegmentPlanner
from omnitrain.segmentation import SegmentError
from omnitrain.steps import STEPS, results_of, rule_benchmarks, rule_log_patterns, step_files
from omnitrain.steps import VALIDATION, SPLIT, MONITOR_SET, TRAINSET, CHECK, HELDOUT, PRETRAINED  # step names
from omnitrain.steps import MODEL, SIZE_MODEL, PREDICTION, EVALUATION, VERSION


def refuse(message):
    """Stop with the message alone: Snakemake's WorkflowError would frame it with its file and line in
    common.smk, internals that mean nothing to the user it is written for."""
    sys.stderr.write(f"{message.rstrip()}\n")
    sys.exit(1)


try:
    PLAN = Plan.build(config, ".", workflow.configfiles, workflow.basedir)
except PlanError as exc:
    refuse(str(exc))
for _note in PLAN.notes:
    logger.warning(f"Note: {_note}")

RESULTS = PLAN.results
LOGS = f"{RESULTS}/logs"
RUNS, PRIMARY = PLAN.runs, PLAN.primary
# Files, logs and benchmark files with the versions as wildcards: {step: {key: path}} of each step's files,
# named once in omnitrain/steps.py.
FILE = step_files(RESULTS)
LOG = rule_log_patterns(RESULTS)
BENCHMARK = rule_benchmarks(RESULTS, {s.name: f"{{{s.name}}}" for s in STEPS})


wildcard_constraints:
    **{s.name: "[0-9a-f]{12}" for s in STEPS if not s.per_image},
    batch="[0-9a-f]{12}",


def run_of(step, wildcards):
    """The run whose ``step`` version is this job's (wildcard ``step``)."""
    try:
        return PLAN.run_of(step, getattr(wildcards, step))
    except PlanError as exc:
        raise WorkflowError(str(exc))


def by_run(step, value):
    """An input or params function: ``value(run)`` for the run of this job's ``step`` version."""
    return lambda wildcards: value(run_of(step, wildcards))


def settings_of_run(step):
    """A rule's params.settings: exactly the settings its step's version covers, in the job's run."""
    return by_run(step, lambda run: run.settings[step])


def train_resource(step, key):
    """A resource of the GPU jobs, from the config of the job's run (experiments may change resources)."""
    return lambda wildcards, attempt: run_of(step, wildcards).config["resources"][key]


def gpus_of(step):
    """The GPUs a job of ``step`` asks for (SLURM --gpus): resources.train_gpus for a training."""
    return lambda wildcards, attempt: run_of(step, wildcards).gpus(step)


def gpu_jobs_of(step):
    """1 for a GPU job: the local profile's gpu_jobs=1 runs one at a time. A counter apart from ``gpu``: a
    global limit on ``gpu`` would also cap what a cluster job asks for (the local profile applies there too).
    """
    return lambda wildcards, attempt: min(run_of(step, wildcards).gpus(step), 1)


def batch_run(wildcards):
    try:
        return PLAN.run_of_batch(wildcards.batch)
    except PlanError as exc:
        raise WorkflowError(str(exc))


def batch_files(wildcards):
    """The user's files of one batch's images (ancient: their bytes, not their times, are in the versions)."""
    batch_run(wildcards)
    return {k: [ancient(f) for f in v] for k, v in PLAN.batch_files(wildcards.batch).items()}


def train_inputs(wildcards):
    files = run_of(MODEL, wildcards).train_inputs()
    return {**files, "pretrained": [ancient(p) for p in files["pretrained"]]}


def final_targets():
    """What `snakemake` builds by default: the targets of every enabled step (omnitrain/steps.py) of every run,
    and the leaderboard when there is more than one run."""
    board = (rules.leaderboard.output.table, rules.leaderboard.output.plot)
    return PLAN.targets(rules.registry.output.table, board)


# `snakemake segment` (workflow/rules/segment.smk): planned on first use only (a training run never needs it).
SEGMENT = SegmentPlanner(PLAN.config, RESULTS, PLAN.envs, list(PLAN.inputs.sha256.values()), PLAN.hash_cache)


def segment_job(wildcards=None):
    """The segment plan, for the segment rules (a WorkflowError says why there is none for this job)."""
    try:
        return SEGMENT.for_job(*(getattr(wildcards, k, None) for k in ("segmodel", "segbatch", "segset")))
    except SegmentError as exc:
        raise WorkflowError(str(exc))


def segment_targets(wildcards):
    """The target `snakemake segment`, refused at once in one message as a config problem is (asked for by
    file or through the API, the segment rules' input functions refuse it too, with Snakemake's frame)."""
    plan, refusal = SEGMENT.plan()
    if plan is None:
        refuse(refusal)
    return SEGMENT.targets(plan)


# `snakemake export` (workflow/rules/export.smk): planned on first use only, as segment is.
_export_plan = []


def export_plan():
    """(the export plan, "") or (None, why not)."""
    if not _export_plan:
        try:
            code = code_digest("export_model.py")
            _export_plan.append((export.plan(PLAN.config, RESULTS, code, PLAN.envs["export"]), ""))
        except ExportError as exc:
            _export_plan.append((None, str(exc)))
    return _export_plan[0]


def export_job(wildcards):
    """The export plan, for the export rules; a WorkflowError when there is none, or when the job's version
    and key are not the plan's (export.model or its settings changed while this run was going on)."""
    plan, refusal = export_plan()
    if plan is None:
        raise WorkflowError(refusal)
    asked = (getattr(wildcards, "expmodel", plan["version"]), getattr(wildcards, "expkey", plan["key"]))
    if asked != (plan["version"], plan["key"]):
        raise WorkflowError(
            f"exports/{asked[0]}/{asked[1]} is not what export.model and its settings give now: were they"
            " changed while this run was going on? Run snakemake export again"
        )
    return plan


def export_targets(wildcards):
    """The target `snakemake export`: the package's folder and the pointer to it, refused at once in one message."""
    plan, refusal = export_plan()
    if plan is None:
        refuse(refusal)
    return [plan["folder"], f"{RESULTS}/{EXPORT_LATEST}"]


# The report's first page: the primary run's version's own (written by register), else a page that says to
# run the workflow first (workflow/report/workflow.rst). Only whether the file exists is looked at here.
_intro = Path(PRIMARY.file[VERSION]["report"])
REPORT_INTRO = str(_intro.resolve()) if _intro.is_file() else "workflow/report/workflow.rst"


onstart:
    # Snakemake's lock is per working directory: runs from two of them that share one results folder would both
    # write its registry. The second is refused until the first ends (segmenting holds a lock of its own).
    try:
        hold_results(RESULTS, workflow.dag_settings.targets, logger.warning)
    except ResultsInUse as exc:
        refuse(str(exc))
    # A training label that is still a draft's bytes: said before a training on it (the registered version's
    # change record says it again, also for drafts saved unchanged under other label numbers).
    for _label in PLAN.unedited_drafts():
        logger.warning(
            f"Note: {_label} is a draft added unedited (the model's own masks): correct it, or training"
            " teaches the model its own mistakes"
        )
