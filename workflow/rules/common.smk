# Shared set-up: the checked config, the discovered inputs, the held-out split and output locations.
import json
import sys
from pathlib import Path

# The library next to the workflow (omnitrain/) is importable here; the rules' scripts add the
# same folder to their own sys.path (they run in subprocesses, possibly in conda envs).
sys.path.insert(0, workflow.basedir)

from omnitrain.batches import batch_ids
from omnitrain.config import ConfigError, check_config, check_config_files
from omnitrain.discovery import discover
from omnitrain.hashing import HashCache
from omnitrain.layout import batch_table, image_folder, model_file
from omnitrain.sources import build_sources
from omnitrain.steps import (
    STEP,
    default_targets,
    enabled_steps,
    registered,
    reads_of,
    results_of,
    rule_benchmarks,
    rule_logs,
    settings_of,
    step_folders,
    step_versions,
    version_links,
)
from omnitrain.training import model_name
from omnitrain.validation import naming_refusal

try:
    check_config_files(workflow.configfiles)
    config.update(check_config(config))
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

RESULTS = config["pipeline"]["results"]
LOGS = f"{RESULTS}/logs"


def find_pairs(folder):
    return discover(
        folder,
        img_filter=config["img_filter"],
        mask_filter=config["mask_filter"],
        look_one_level_down=config["look_one_level_down"],
    )


# Pairs found with Omnipose's naming rules.
INPUTS = find_pairs(config["dir"])
TEST_INPUTS = find_pairs(config["test_dir"]) if config["test_dir"] else None


# Sources by id (names made unique): {"pair": Pair, "name": str, "role": "train" | "test"}.
try:
    SOURCES = build_sources(INPUTS, TEST_INPUTS, config)
except ValueError as exc:
    raise WorkflowError(str(exc)) from None
# Naming errors (known without reading a pixel: images without labels, labels without images, two
# images with one base name, ...) refuse every prepare_images job, so that no target, partial run or
# -k can prepare, pack or train from such folders; each job also re-checks its own pairs' contents
# before it writes anything. The refusal is part of the batch ids (see below): a parameter that
# changed without the ids would rerun existing batches, and all that reads them, in place.
NAMING_REFUSAL = naming_refusal(INPUTS, TEST_INPUTS)
TRAIN = sorted(s for s, v in SOURCES.items() if v["role"] == "train")
TEST = sorted(s for s, v in SOURCES.items() if v["role"] == "test")
VALIDATION = sorted(s for s, v in SOURCES.items() if v["role"] == "validation")


wildcard_constraints:
    batch="[0-9a-f]{12}",


# ---- Versions, settings and folders: derived from the step table (omnitrain/steps.py) ----------
# Every output that matters lives under a version id derived from what decides it: the sha256 of the
# user's files (and their paths), the versions it reads from, its settings, its code and its conda
# env. Each rule's params.settings are exactly the settings its version covers, and its script reads
# nothing else of the config, so Snakemake's own rerun triggers never fire on an existing version: a
# change means new paths, old files stay. File hashes are cached in .omnitrain/hashes.tsv.
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
SOURCE_FILES = {sid: _source_files(src) for sid, src in SOURCES.items()}
# The user's image file of each training source (named in messages about the images made from it).
TRAIN_IMAGE_FILES = {s: SOURCE_FILES[s]["image"]["path"] for s in TRAIN}
PRETRAINED = [config["pretrained_model"]] if config["pretrained_model"] else []
PRETRAINED_FILES = [[p, HASHES.sha256(p)] for p in PRETRAINED if Path(p).is_file()]
HASHES.save()
# What the steps' "data" names: the user's files each step reads.
DATA = {
    "input_files": INPUT_FILES,
    "sources": {s: {"name": v["name"], "role": v["role"]} for s, v in SOURCES.items()},
    "train_images": {s: {"files": SOURCE_FILES[s], "name": SOURCES[s]["name"]} for s in TRAIN},
    "test_images": {s: {"files": SOURCE_FILES[s], "name": SOURCES[s]["name"]} for s in TEST},
    "validation_images": {s: {"files": SOURCE_FILES[s], "name": SOURCES[s]["name"]} for s in VALIDATION},
    "pretrained": PRETRAINED_FILES,
}
ENABLED = {s.name for s in enabled_steps(config)}
SETTINGS = {s.name: settings_of(s, config) for s in enabled_steps(config)}
V = step_versions(config, DATA, ENVS)
# One version per source image (the per-image steps); the other steps have one version each.
PV = {**V.pop("train_image"), **V.pop("heldout_image"), **V.pop("monitor_image", {})}
VERSION = V["version"]
DIR = step_folders(RESULTS, V)
LOG = rule_logs(RESULTS, V)
BENCHMARK = rule_benchmarks(RESULTS, V)
# The model file: Omnipose's name (<net_type>_<folder>) without the start-time suffix, so that
# Snakemake knows it; Omnipose writes it (and its checkpoints) below <model folder>/models/.
MODEL = model_file(DIR["model"], model_name(config["nchan"], config["nclasses"], config["dim"], "trainset"))
GPUS = 0 if config["use_gpu"] is False else 1
# Monitoring (omnitrain/monitor.py) needs validation images; the split sets them aside only when enough
# training images remain (split.min_train). Its best epoch's model is "<model>_best", beside the last.
MONITORED = "monitor_set" in ENABLED and bool(VALIDATION)
if "monitor_set" not in ENABLED:
    MONITOR_OFF = "monitor.every is 0 or split.validation_fraction is 0"
elif not VALIDATION:
    # (Only what the model's version covers: a changed split.min_train must not rerun it in place.)
    MONITOR_OFF = (
        f"{len(TRAIN)} training source image(s) (or groups): too few to set validation images aside"
        " (split.min_train)"
    )
else:
    MONITOR_OFF = ""
BEST_MODEL = f"{MODEL}_best"
SELECTED_MODEL = BEST_MODEL if MONITORED and config["monitor"]["select"] == "best" else MODEL


def _read_json(path):
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


# What the report's intro page (workflow/report/workflow.rst) shows; read when `--report` runs.
_SCORES = _read_json(f"{DIR['evaluation']}/scores.json")
config["_report"] = {
    "version": VERSION,
    "model_version": V["model"],
    "model": SELECTED_MODEL,
    "dir": config["dir"],
    "test_dir": config["test_dir"],
    "train_images": len(TRAIN),
    "test_images": len(TEST),
    "training_images": _read_json(f"{DIR['trainset']}/packing_stats.json").get("images"),
    **{k: config[k] for k in ("nchan", "nclasses", "dim", "n_epochs")},
    "evaluated": bool(_SCORES),
    "ap50": _SCORES.get("ap50"),
    "mean_ap": _SCORES.get("mean_ap"),
}


def image_dir(sid):
    """The folder of one source image's prepared files (its current version)."""
    return str(image_folder(RESULTS, sid, PV[sid]))


def image_settings(sid):
    step = {"train": "train_image", "test": "heldout_image", "validation": "monitor_image"}
    return SETTINGS[step[SOURCES[sid]["role"]]]


# The per-image work runs in batches of about 16 images (omnitrain/batches.py): {batch id: [sid]}.
# Training, held-out and validation images are never in the same batch, so the training set's inputs (its batch
# tables) depend on the training images only. A batch's id covers its images' versions.
BATCHES = {
    **batch_ids(TRAIN, PV, NAMING_REFUSAL),
    **batch_ids(TEST, PV, NAMING_REFUSAL),
    **batch_ids(VALIDATION, PV, NAMING_REFUSAL),
}
BATCH_OF = {s: b for b, members in BATCHES.items() for s in members}


def batch_tables(sids):
    """The tables of the batches holding these images (each batch once, in order)."""
    return [str(batch_table(RESULTS, b)) for b in dict.fromkeys(BATCH_OF[s] for s in sids)]


def batch_members(wildcards):
    if wildcards.batch not in BATCHES:
        raise WorkflowError(
            f"{batch_table(RESULTS, wildcards.batch)} is not a batch of the current images: were"
            " images or settings changed while this run was going on? Run snakemake again (earlier"
            " versions are kept as they are, never rebuilt)"
        )
    return BATCHES[wildcards.batch]


def batch_files(wildcards):
    """The user's files of one batch's images (links only where there is a links file)."""
    files = {"images": [], "labels": [], "links": []}
    for sid in batch_members(wildcards):
        for key, kind in (("images", "image"), ("labels", "label"), ("links", "links")):
            if SOURCE_FILES[sid][kind] is not None:
                files[key].append(ancient(SOURCE_FILES[sid][kind]["path"]))
    return files


def batch_params(wildcards):
    """Per image of the batch: what its version covers besides the files, its files and its folder."""
    out = []
    for sid in batch_members(wildcards):
        role = SOURCES[sid]["role"]
        files = {k: v and v["path"] for k, v in SOURCE_FILES[sid].items()}
        out.append(
            {
                "source": sid,
                "name": SOURCES[sid]["name"],
                "role": role,
                "settings": image_settings(sid),
                "version": PV[sid],
                "folder": image_dir(sid),  # where this run writes it; the table names only the version
                **files,
            }
        )
    return out


def prediction_inputs(wildcards):
    files = {
        "model": SELECTED_MODEL,
        "card": rules.train.output.card,
        "heldout": rules.heldout_set.output.heldout,
    }
    if "size_model" in reads_of(STEP["prediction"], config):
        files["size_model"] = rules.fit_size_model.output.size
    return files


def train_inputs(wildcards):
    """The validation set only when training is monitored."""
    return {"monitor_set": rules.monitor_set.output.heldout} if MONITORED else {}


def output_of(rule, name):
    return getattr(getattr(rules, rule).output, name)


def register_inputs(wildcards):
    files = {name: output_of(rule, out) for name, (rule, out) in registered(config).items()}
    files["model_file"] = SELECTED_MODEL  # the model the evaluation used (monitor.select)
    return files


def registered_links():
    """The parts linked from the version's folder (the validation set only when it was built)."""
    return {k: v for k, v in version_links(DIR).items() if k != "monitor_set" or MONITORED}


def register_sources():
    """Every source image of this version: role, folder and its files' names and sha256."""
    return {
        sid: {
            "name": src["name"],
            "role": src["role"],
            "from_test_dir": src["role"] == "test" and TEST_INPUTS is not None,
            "files": SOURCE_FILES[sid],
        }
        for sid, src in SOURCES.items()
    }


def final_targets():
    """What `snakemake` builds by default: the targets of every enabled step (omnitrain/steps.py)."""
    return [output_of(rule, out) for rule, out in default_targets(config)]
