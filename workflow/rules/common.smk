# Shared set-up: the checked config, the discovered inputs, the held-out split and output locations.
import json
import sys
from pathlib import Path

from snakemake.logging import logger

# The library next to the workflow (omnitrain/) is importable here; the rules' scripts add the
# same folder to their own sys.path (they run in subprocesses, possibly in conda envs).
sys.path.insert(0, workflow.basedir)

from omnitrain.batches import batch_ids
from omnitrain.config import ConfigError, check_config, check_config_files
from omnitrain.discovery import discover
from omnitrain.experiments import plan_runs, primary
from omnitrain.hashing import HashCache
from omnitrain.layout import batch_table, image_folder, model_file
from omnitrain.pretrained import builtin
from omnitrain.sources import build_sources
from omnitrain.steps import (
    STEP,
    STEPS,
    default_targets,
    enabled_steps,
    in_folder,
    registered,
    reads_of,
    results_of,
    rule_benchmarks,
    rule_log_patterns,
    settings_of,
    step_folders,
    step_versions,
    version_links,
)
from omnitrain.training import model_name, unfit_pretrained_files
from omnitrain.validation import naming_refusal


def refuse(message):
    """Stop while the Snakefile is read, with the message alone: Snakemake's WorkflowError would frame it
    with its file and line in common.smk, internals that mean nothing to the user it is written for."""
    sys.stderr.write(f"{message.rstrip()}\n")
    sys.exit(1)


try:
    check_config_files(workflow.configfiles)
    _notes = []  # settings adjusted rather than refused (tyx rounded up as Omnipose does, packing in 3D)
    config.update(check_config(config, notes=_notes))
    # The runs: (experiment, fold) pairs, each with its own config (omnitrain/experiments.py).
    RUN_PLAN = plan_runs(config, _notes)
    for _note in _notes:
        logger.warning(f"Note: {_note}")
except ConfigError as exc:
    refuse(str(exc))

RESULTS = config["pipeline"]["results"]
LOGS = f"{RESULTS}/logs"


def find_pairs(folder):
    return discover(
        folder,
        img_filter=config["img_filter"],
        mask_filter=config["mask_filter"],
        look_one_level_down=config["look_one_level_down"],
    )


# Pairs found with Omnipose's naming rules (dir, test_dir and the filters are the same for every run).
INPUTS = find_pairs(config["dir"])
TEST_INPUTS = find_pairs(config["test_dir"]) if config["test_dir"] else None
# Naming errors (known without reading a pixel: images without labels, labels without images, two
# images with one base name, ...) refuse every prepare_images job, so that no target, partial run or
# -k can prepare, pack or train from such folders; each job also re-checks its own pairs' contents
# before it writes anything. The refusal is part of the batch ids (see below): a parameter that
# changed without the ids would rerun existing batches, and all that reads them, in place.
NAMING_REFUSAL = naming_refusal(INPUTS, TEST_INPUTS)


def sources_of(cfg, fold=None):
    """Sources by id (names made unique): {"pair", "name", "role": "train" | "test" | "validation", "fold"}."""
    try:
        return build_sources(INPUTS, TEST_INPUTS, cfg, fold)
    except ValueError as exc:  # (called while the Snakefile is read)
        refuse(str(exc))


# ---- Versions, settings and folders: derived from the step table (omnitrain/steps.py) ----------
# Every output that matters lives under a version id derived from what decides it: the sha256 of the
# user's files (and their paths), the versions it reads from, its settings, its code and its conda
# env. Each rule's params.settings are exactly the settings its version covers, and its script reads
# nothing else of the config, so Snakemake's own rerun triggers never fire on an existing version: a
# change means new paths, old files stay. File hashes are cached in .omnitrain/hashes.tsv.
# The rules' paths hold the versions as wildcards ({model}, {trainset}, ...): a job finds its run (the
# experiment and fold it was planned for) by its version, so runs whose versions are equal share one job.
HASHES = HashCache(".omnitrain/hashes.tsv")
ENVS = {e: HASHES.sha256(f"{workflow.basedir}/envs/{e}.yaml") for e in ("preprocess", "omnipose")}
INPUT_FILES = {
    str(p): HASHES.sha256(p) for found in (INPUTS, TEST_INPUTS) if found is not None for p in found.files()
}


def _file_record(path, root):
    if path is None:
        return None
    return {
        "path": str(path),
        "name": Path(path).relative_to(root).as_posix(),
        "sha256": INPUT_FILES[str(path)],
    }


def _source_files(src):
    root = TEST_INPUTS.root if src["role"] == "test" and TEST_INPUTS else INPUTS.root
    pair = src["pair"]
    return {k: _file_record(getattr(pair, k), root) for k in ("image", "label", "links")}


# {sid: {"image"|"label"|"links": {"path", "name" (relative to its folder), "sha256"} | None}}
# (the ids, and which ones are held out, are the same in every run)
SOURCE_FILES = {sid: _source_files(src) for sid, src in sources_of(config).items()}
PRETRAINED_FILES = {}
for _run in RUN_PLAN:
    _path = _run.config["pretrained_model"]
    if _path and not builtin(_path) and Path(_path).is_file():
        PRETRAINED_FILES[_path] = HASHES.sha256(_path)
HASHES.save()
# A model file that does not fit a run's nchan, nclasses or dim (a 2D model for a 3D run, ...) is refused
# before anything runs, naming both values; the train job checks again (the file may change meanwhile).
_unfit = unfit_pretrained_files({r.experiment: r.config for r in RUN_PLAN})
if _unfit:
    refuse("\n".join(_unfit))
# Folders, logs and benchmark files with the versions as wildcards.
FOLDER = {s.name: f"{RESULTS}/{s.folder}" for s in STEPS if not s.per_image}
LOG = rule_log_patterns(RESULTS)
BENCHMARK = rule_benchmarks(RESULTS, {s.name: f"{{{s.name}}}" for s in STEPS})


class Run:
    """One (experiment, fold) of the config: its sources' roles, step versions, folders and model files."""

    def __init__(self, plan):
        self.name, self.experiment, self.fold = plan.name, plan.experiment, plan.fold
        cfg = self.config = plan.config
        self.sources = sources_of(cfg, plan.fold)
        self.train = sorted(s for s, v in self.sources.items() if v["role"] == "train")
        self.test = sorted(s for s, v in self.sources.items() if v["role"] == "test")
        self.validation = sorted(s for s, v in self.sources.items() if v["role"] == "validation")
        # The user's image file of each training source (named in messages about the images made from it).
        self.train_image_files = {s: SOURCE_FILES[s]["image"]["path"] for s in self.train}
        # A model file to start from (a built-in model is its own step's output instead)
        self.pretrained = (
            [cfg["pretrained_model"]]
            if cfg["pretrained_model"] and not builtin(cfg["pretrained_model"])
            else []
        )
        images = lambda sids: {s: {"files": SOURCE_FILES[s], "name": self.sources[s]["name"]} for s in sids}
        # What the steps' "data" names: the user's files each step reads (a source's fold only with folds).
        self.data = {
            "input_files": INPUT_FILES,
            "sources": {
                s: {"name": v["name"], "role": v["role"], **({"fold": v["fold"]} if v["fold"] else {})}
                for s, v in self.sources.items()
            },
            "train_images": images(self.train),
            "test_images": images(self.test),
            "validation_images": images(self.validation),
            "pretrained": [[p, PRETRAINED_FILES[p]] for p in self.pretrained if p in PRETRAINED_FILES],
            "run": {"experiment": self.experiment, "fold": self.fold},
        }
        self.enabled = {s.name for s in enabled_steps(cfg)}
        self.settings = {s.name: settings_of(s, cfg) for s in enabled_steps(cfg)}
        versions = step_versions(cfg, self.data, ENVS)
        # One version per source image (the per-image steps); the other steps have one version each.
        self.pv = {
            **versions.pop("train_image"),
            **versions.pop("heldout_image"),
            **versions.pop("monitor_image", {}),
        }
        self.v = versions
        self.version = versions["version"]
        self.dir = step_folders(RESULTS, versions)
        self.benchmarks = rule_benchmarks(RESULTS, versions)
        # The model file: Omnipose's name (<net_type>_<folder>) without the start-time suffix; Omnipose
        # writes it (and its checkpoints) below <model folder>/models/. It is not a declared output (its name
        # depends on nchan, nclasses and dim, the card's does not): the card, written last, stands for it.
        self.model = model_file(
            self.dir["model"], model_name(cfg["nchan"], cfg["nclasses"], cfg["dim"], "trainset")
        )
        self.gpus = 0 if cfg["use_gpu"] is False else 1
        # Monitoring (omnitrain/monitor.py) needs validation images; the split sets them aside only when
        # enough training images remain (split.min_train). Its best epoch's model is "<model>_best".
        self.monitored = "monitor_set" in self.enabled and bool(self.validation)
        if "monitor_set" not in self.enabled and self.fold is not None:
            self.monitor_off = f"monitor.every is 0 (fold {self.fold}'s images are left out, not scored)"
        elif "monitor_set" not in self.enabled:
            self.monitor_off = "monitor.every is 0 or split.validation_fraction is 0"
        elif not self.validation:
            # (Only what the model's version covers: a changed split.min_train must not rerun it in place.)
            self.monitor_off = (
                f"{len(self.train)} training source image(s) (or groups): too few to set validation images"
                " aside (split.min_train)"
            )
        else:
            self.monitor_off = ""
        self.best_model = f"{self.model}_best"
        self.selected_model = (
            self.best_model if self.monitored and cfg["monitor"]["select"] == "best" else self.model
        )
        self.size_model = f"{self.dir.get('size_model')}/{Path(self.selected_model).name}_size.npy"
        # Held-out images are rescaled by the size model (omnitrain/steps.py, use_size_model)
        self.uses_size_model = "size_model" in reads_of(STEP["prediction"], cfg)
        # The per-image work runs in batches of about 16 images (omnitrain/batches.py): {batch id: [sid]}.
        # Training, held-out and validation images are never in the same batch, so the training set's inputs
        # (its batch tables) depend on the training images only. A batch's id covers its images' versions.
        self.batches = {
            **batch_ids(self.train, self.pv, NAMING_REFUSAL),
            **batch_ids(self.test, self.pv, NAMING_REFUSAL),
            **(batch_ids(self.validation, self.pv, NAMING_REFUSAL) if self.monitored else {}),
        }
        self.batch_of = {s: b for b, members in self.batches.items() for s in members}

    def batch_tables(self, sids):
        """The tables of the batches holding these images (each batch once, in order)."""
        return [str(batch_table(RESULTS, b)) for b in dict.fromkeys(self.batch_of[s] for s in sids)]

    def image_dir(self, sid):
        """The folder of one source image's prepared files (its version in this run)."""
        return str(image_folder(RESULTS, sid, self.pv[sid]))

    def image_settings(self, sid):
        step = {"train": "train_image", "test": "heldout_image", "validation": "monitor_image"}
        return self.settings[step[self.sources[sid]["role"]]]


RUNS = {plan.name: Run(plan) for plan in RUN_PLAN}
PRIMARY = RUNS[primary(RUN_PLAN).name]
# {step: {version: the first run that has it}}, and {batch id: the first run that has it}.
OWNER = {}
for _run in RUNS.values():
    for _step, _version in _run.v.items():
        OWNER.setdefault(_step, {}).setdefault(_version, _run)
BATCH_RUN = {}
for _run in RUNS.values():
    for _batch in _run.batches:
        BATCH_RUN.setdefault(_batch, _run)
ANY_MONITORED = any(r.monitored for r in RUNS.values())
ANY_SIZE_MODEL = any("size_model" in r.enabled for r in RUNS.values())


def unknown_version(step, version):
    return WorkflowError(
        f"{step} version {version} (below {RESULTS}) is not a version of the current config: were images or"
        " settings changed while this run was going on? Run snakemake again (earlier versions are kept as"
        " they are, never rebuilt)"
    )


def run_of(step, wildcards):
    """The run whose ``step`` version is this job's (wildcard ``step``)."""
    version = getattr(wildcards, step)
    if version not in OWNER.get(step, {}):
        raise unknown_version(step, version)
    return OWNER[step][version]


def by_run(step, value):
    """An input or params function: ``value(run)`` for the run of this job's ``step`` version."""
    return lambda wildcards: value(run_of(step, wildcards))


def train_resource(step, key):
    """A resource of the GPU jobs, from the config of the job's run (experiments may change resources)."""
    return lambda wildcards, attempt: run_of(step, wildcards).config["resources"][key]


def gpus_of(step):
    return lambda wildcards, attempt: run_of(step, wildcards).gpus


def settings_of_run(step):
    """A rule's params.settings: exactly the settings its step's version covers, in the job's run."""
    return by_run(step, lambda run: run.settings[step])


def _read_json(path):
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


def _read_text(path):
    path = Path(path)
    return path.read_text().strip() if path.is_file() else ""


# What the report's intro page (workflow/report/workflow.rst) shows; read when `--report` runs.
_SCORES = _read_json(f"{PRIMARY.dir['evaluation']}/scores.json")
config["_report"] = {
    "version": PRIMARY.version,
    "model_version": PRIMARY.v["model"],
    "model": PRIMARY.selected_model,
    "dir": config["dir"],
    "test_dir": config["test_dir"],
    "train_images": len(PRIMARY.train),
    "test_images": len(PRIMARY.test),
    "training_images": _read_json(f"{PRIMARY.dir['trainset']}/packing_stats.json").get("images"),
    **{k: PRIMARY.config[k] for k in ("nchan", "nclasses", "dim", "n_epochs")},
    "evaluated": bool(_SCORES),
    **{
        k: _SCORES.get(k) for k in ("ap50", "mean_ap", "ap50_low", "ap50_high", "mean_ap_low", "mean_ap_high")
    },
    "runs": len(RUNS),
}


wildcard_constraints:
    **{s.name: "[0-9a-f]{12}" for s in STEPS if not s.per_image},
    batch="[0-9a-f]{12}",


def batch_run(wildcards):
    if wildcards.batch not in BATCH_RUN:
        raise WorkflowError(
            f"{batch_table(RESULTS, wildcards.batch)} is not a batch of the current images: were"
            " images or settings changed while this run was going on? Run snakemake again (earlier"
            " versions are kept as they are, never rebuilt)"
        )
    return BATCH_RUN[wildcards.batch]


def batch_files(wildcards):
    """The user's files of one batch's images (links only where there is a links file)."""
    files = {"images": [], "labels": [], "links": []}
    for sid in batch_run(wildcards).batches[wildcards.batch]:
        for key, kind in (("images", "image"), ("labels", "label"), ("links", "links")):
            if SOURCE_FILES[sid][kind] is not None:
                files[key].append(ancient(SOURCE_FILES[sid][kind]["path"]))
    return files


def batch_params(wildcards):
    """Per image of the batch: what its version covers besides the files, its files and its folder."""
    run = batch_run(wildcards)
    out = []
    for sid in run.batches[wildcards.batch]:
        files = {k: v and v["path"] for k, v in SOURCE_FILES[sid].items()}
        out.append(
            {
                "source": sid,
                "name": run.sources[sid]["name"],
                "role": run.sources[sid]["role"],
                "settings": run.image_settings(sid),
                "version": run.pv[sid],
                "folder": run.image_dir(sid),  # where this run writes it; the table names only the version
                **files,
            }
        )
    return out


def prediction_inputs(wildcards):
    run = run_of("prediction", wildcards)
    files = {"card": f"{run.dir['model']}/model_card.json", "heldout": run.dir["heldout"]}
    if run.uses_size_model:
        files["size_heldout"] = f"{run.dir['size_model']}/size_heldout.tsv"
    return files


def prediction_files(wildcards):
    """The model (and size model) files the prediction uses, found beside their step's declared outputs."""
    run = run_of("prediction", wildcards)
    return {"model": run.selected_model, "size_model": run.size_model if run.uses_size_model else None}


def train_inputs(wildcards):
    run = run_of("model", wildcards)
    files = {
        "trainset": f"{run.dir['trainset']}/trainset",
        "provenance": f"{run.dir['trainset']}/provenance.tsv",
        "checked": f"{run.dir['check']}/validation.tsv",
        "pretrained": [ancient(x) for x in run.pretrained],
    }
    if "pretrained" in run.enabled:  # a built-in model, downloaded by its own step
        files["builtin"] = f"{run.dir['pretrained']}/pretrained.json"
        files["builtin_weights"] = f"{run.dir['pretrained']}/weights"
    if run.monitored:  # the validation set only when training is monitored
        files["monitor_set"] = run.dir["monitor_set"]
    return files


def register_inputs(wildcards):
    run = run_of("version", wildcards)
    return {name: in_folder(run.dir[step], path) for name, (step, path) in registered(run.config).items()}


def model_files(run):
    """The model file the evaluation used (monitor.select) and the size model's, for the version's record."""
    files = {"model_file": run.selected_model}
    if "size_model" in run.enabled:
        files["size_model_file"] = run.size_model
    return files


def registered_links(run):
    """The parts linked from the version's folder (the validation set only when it was built)."""
    return {k: v for k, v in version_links(run.dir).items() if k != "monitor_set" or run.monitored}


def register_sources(run):
    """Every source image of this version: role, folder and its files' names and sha256."""
    return {
        sid: {
            "name": src["name"],
            "role": src["role"],
            "from_test_dir": src["role"] == "test" and TEST_INPUTS is not None,
            "files": SOURCE_FILES[sid],
            **({"fold": src["fold"]} if src["fold"] else {}),
        }
        for sid, src in run.sources.items()
    }


def final_targets():
    """What `snakemake` builds by default: the targets of every enabled step (omnitrain/steps.py) of every run,
    and the leaderboard when there is more than one run."""
    targets = {
        in_folder(run.dir[s], path) for run in RUNS.values() for s, path in default_targets(run.config)
    }
    targets.add(rules.registry.output.table)
    if len(RUNS) > 1:
        targets |= {rules.leaderboard.output.table, rules.leaderboard.output.plot}
    return sorted(targets)


# ---- Using a model: `snakemake segment` (workflow/rules/segment.smk) -------------------------------------
from natsort import natsorted

from omnitrain.discovery import _base_of
from omnitrain.drafts import read_drafts, unedited_by_hash
from omnitrain.hashing import code_digest
from omnitrain.segmentation import (
    BATCH_TABLE as SEGMENT_BATCH_TABLE,
    IMAGE_FOLDER as SEGMENT_IMAGE_FOLDER,
    LATEST as SEGMENT_LATEST,
    SET_FOLDER as SEGMENT_SET_FOLDER,
    SegmentError,
    image_key,
    model_files as segment_model_files,
    model_settings,
    resolve_model,
    results_of_set_file,
    set_id,
)
from omnitrain.sources import source_id

# A training label that is still a draft's bytes: said at start, before a training on it (the registered
# version's change record says it again, also for drafts saved unchanged under other label numbers).
_DRAFTS = read_drafts(RESULTS)
if _DRAFTS:
    _labels = {
        str(p.label): INPUT_FILES[str(p.label)]
        for found in (INPUTS, TEST_INPUTS)
        if found is not None
        for p in found.pairs
    }
    # (labels the latest version already trained on were flagged in its change record: not said again)
    try:
        _latest = _read_json(f"{RESULTS}/versions/{_read_text(f'{RESULTS}/latest.txt')}/record.json")
    except ValueError:  # not JSON any more (edited by hand): the registry steps say so, and the fix
        _latest = {}
    _known = {f["sha256"] for f in _latest.get("files", {}).values()}
    for _label in unedited_by_hash({k: v for k, v in _labels.items() if v not in _known}, _DRAFTS):
        logger.warning(
            f"Note: {_label} is a draft added unedited (the model's own masks): correct it, or training"
            " teaches the model its own mistakes"
        )


def _segment_plan():
    """What `snakemake segment` does: the version, its settings and files, the images, batches and set."""
    if not config["segment_dir"]:
        raise SegmentError(
            "segment_dir is not set: name the folder of images to segment, e.g."
            " snakemake segment --config segment_dir=new_images"
        )
    root = Path(config["segment_dir"])
    if not root.is_dir():
        raise SegmentError(f"segment_dir '{root}' is not a folder (relative paths start at {Path.cwd()})")
    found = find_pairs(root)
    images = natsorted(found.unlabeled + [p.image for p in found.pairs], key=str)
    if not images:
        raise SegmentError(
            f"segment_dir '{root}' holds no image (.tif, .tiff, .png, .jpg, .jpeg ending in img_filter"
            f" '{config['img_filter']}'; subfolders only with look_one_level_down)"
        )
    if found.duplicate_bases:
        names = "; ".join(", ".join(map(str, group)) for group in found.duplicate_bases)
        raise SegmentError(f"two images with one base name would get one label name: {names}: rename one")
    record = resolve_model(RESULTS, str(config["segment_model"]))
    version = record["version"]
    settings = model_settings(record)
    if config["channel_axis"] is not None:  # where the new images keep their channels: the config says
        settings["channels"] = {**settings["channels"], "channel_axis": config["channel_axis"]}
    files = segment_model_files(record)
    missing = [f for f in files.values() if f and not Path(f).is_file()]
    if missing:
        raise SegmentError(
            f"version {version}'s files are gone ({', '.join(missing)}): removed by hand? Name another"
            f" version with segment_model (see {RESULTS}/registry.tsv)"
        )
    code, env = code_digest("segment_images.py"), ENVS["omnipose"]
    in_training = set(INPUT_FILES.values())
    items = {}
    for path in images:
        base = _base_of(path, config["img_filter"])
        rel = path.parent.relative_to(root)
        name = base if str(rel) == "." else f"{rel.as_posix()}/{base}"
        sha = HASHES.sha256(path)
        key = image_key(version, settings, sha, path.name, code, env)
        sid = source_id(name)
        items[sid] = {
            "source": sid,
            "name": name,
            "name_with_extension": path.relative_to(root).as_posix(),
            "base": base,
            "image": str(path),
            "sha256": sha,
            "key": key,
            "model_version": version,
            "in_training": sha in in_training,
            "folder": f"{RESULTS}/{SEGMENT_IMAGE_FOLDER.format(model=version, source=sid, key=key)}",
        }
    HASHES.save()
    drafts = {
        "on": config["segment_drafts"],
        "mask_filter": config["mask_filter"],
        "in_training": sorted(s for s, i in items.items() if i["in_training"]),
    }
    pairs = [[s, i["key"]] for s, i in items.items()]
    batches = batch_ids(list(items), {s: i["key"] for s, i in items.items()})
    return {
        "version": version,
        "settings": settings,
        "files": files,
        "items": items,
        "batches": batches,
        "drafts": drafts,
        "set": set_id(version, pairs, drafts, code_digest("segment_set.py"), ENVS["preprocess"]),
    }


_SEGMENT = {}  # the plan or its refusal, once worked out: only runs that need it (a training run never does)


def _planned():
    if not _SEGMENT:
        try:
            _SEGMENT.update(plan=_segment_plan(), refusal="")
        except SegmentError as exc:  # said only when a segment target is asked for
            _SEGMENT.update(plan=None, refusal=str(exc))
    return _SEGMENT["plan"], _SEGMENT["refusal"]


# Asked for on the command line (`snakemake segment`): refused at once, in one message as a config problem is.
# Snakemake reads the Snakefile before it hands the targets over, hence its command line; the input
# functions below say it too (with Snakemake's traceback), for the API or a segment file asked for by path.
if "segment" in sys.argv[1:] and _planned()[0] is None:
    refuse(_planned()[1])


def segment_plan(wildcards=None):
    """The plan, for the segment rules' inputs and params; with wildcards, only for this plan's version
    and batches (another one means segment_dir or segment_model changed while this run was going on)."""
    plan, refusal = _planned()
    if plan is None:
        raise WorkflowError(refusal)
    model, batch = getattr(wildcards, "segmodel", None), getattr(wildcards, "segbatch", None)
    segset = getattr(wildcards, "segset", None)
    if (
        (model and model != plan["version"])
        or (batch and batch not in plan["batches"])
        or (segset and segset != plan["set"])
    ):
        which = f"batch {batch}" if batch else f"set {segset}"
        raise WorkflowError(
            f"segmentations/{model} ({which}) is not what"
            " segment_dir and segment_model give now: were they changed while this run was going on?"
            " Run snakemake segment again"
        )
    return plan


def segment_set_folder(plan):
    return f"{RESULTS}/{SEGMENT_SET_FOLDER.format(model=plan['version'], set=plan['set'])}"


def segment_targets(wildcards):
    plan = segment_plan()
    return [f"{segment_set_folder(plan)}/segmentation.tsv", f"{RESULTS}/{SEGMENT_LATEST}"]


def segment_batch_inputs(wildcards):
    plan = segment_plan(wildcards)
    return [ancient(plan["items"][s]["image"]) for s in plan["batches"][wildcards.segbatch]]


def segment_batch_tables(wildcards):
    plan = segment_plan(wildcards)
    table = f"{RESULTS}/{SEGMENT_BATCH_TABLE}"
    return [table.format(model=plan["version"], batch=b) for b in plan["batches"]]
