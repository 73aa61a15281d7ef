# Shared set-up: the checked config, the discovered inputs, the held-out split and output locations.
import sys
from pathlib import Path

# The library next to the workflow (omnitrain/) is importable here; the rules' scripts add the
# same folder to their own sys.path (they run in subprocesses, possibly in conda envs).
sys.path.insert(0, workflow.basedir)

from omnitrain.batches import batch_ids
from omnitrain.config import ConfigError, check_config
from omnitrain.discovery import discover
from omnitrain.sources import build_sources
from omnitrain.training import model_name
from omnitrain.versions import HashCache, code_digest, version_id

try:
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
TRAIN = sorted(s for s, v in SOURCES.items() if v["role"] == "train")
TEST = sorted(s for s, v in SOURCES.items() if v["role"] == "test")


wildcard_constraints:
    batch="[0-9a-f]{12}",


def validation_settings():
    """The config keys that change what validate_inputs finds."""
    keys = ("img_filter", "mask_filter", "look_one_level_down", "dim", "channel_axis", "tyx")
    keys = (*keys, "chan", "chan2", "all_channels", "nchan")
    return {
        "dir": config["dir"],
        "test_dir": config["test_dir"],
        **{k: config[k] for k in keys},
        "channels": config["channels"],
        "validation": config["validation"],
    }


def channel_settings():
    keys = ("dim", "channel_axis", "chan", "chan2", "all_channels", "nchan")
    return {**{k: config[k] for k in keys}, "channels": config["channels"]}


def image_settings(role):
    """What decides one source image's prepared files: channels, and for training images tiling+packing."""
    settings = {"channels": channel_settings()}
    if role == "train":
        settings.update(tiling=config["tiling"], packing=config["packing"])
    return settings


def split_settings():
    return {
        "sources": {s: {"name": v["name"], "role": v["role"]} for s, v in SOURCES.items()},
        "split": config["split"],
        "seed": config["pipeline"]["seed"],
        "test_dir": config["test_dir"],
    }


def training_settings():
    """The config keys that change the trained model."""
    keys = ("pretrained_model", "nchan", "nclasses", "dim", "diameter", "learning_rate", "RAdam")
    keys = (*keys, "batch_size", "n_epochs", "tyx", "save_every", "save_each", "dataloader")
    keys = (*keys, "num_workers", "min_train_masks", "use_gpu")
    return {
        **{k: config[k] for k in keys},
        "seed": config["pipeline"]["seed"],
        "training": config["training"],
    }


USE_SIZE = config["train_size"] and config["diameter"] > 0 and config["evaluation"]["use_size_model"]


def size_settings():
    return {"size_model": config["size_model"], "diameter": config["diameter"]}


def evaluation_settings():
    return {"evaluation": config["evaluation"], "use_size_model": bool(USE_SIZE)}


# ---- Versions -------------------------------------------------------------------------------------
# Every output that matters lives under a version id derived from what decides it: the sha256 of the
# user's files (and their paths), the versions it reads from, its parameters, its code and its conda
# env (omnitrain/versions.py). Each rule's params are exactly what its version covers, so Snakemake's
# own rerun triggers never fire on an existing version: a change means new paths, old files stay.
# File hashes are cached by (path, size, mtime) in .omnitrain/hashes.tsv.
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
PRETRAINED = [config["pretrained_model"]] if config["pretrained_model"] else []
PRETRAINED_FILES = [[p, HASHES.sha256(p)] for p in PRETRAINED if Path(p).is_file()]
HASHES.save()
PV = {
    sid: version_id(
        "prepare_image",
        code_digest("prepare_images.py"),
        ENVS["preprocess"],
        SOURCE_FILES[sid],
        src["name"],
        src["role"],
        image_settings(src["role"]),
    )
    for sid, src in SOURCES.items()
}
V = {
    "validation": version_id(
        "validate_inputs", code_digest("validate_inputs.py"), ENVS, validation_settings(), INPUT_FILES
    ),
    "split": version_id("split", code_digest("split.py"), split_settings()),
    "trainset": version_id(
        "trainset",
        code_digest("pack.py", "preview.py"),
        ENVS,
        {s: PV[s] for s in TRAIN},
        image_settings("train"),
    ),
    "heldout": version_id("heldout", code_digest("heldout_set.py"), {s: PV[s] for s in TEST}),
}
# The check of the produced training set has its own version: the validation thresholds and tyx (a
# training flag) change the check, not the packed images.
V["check"] = version_id(
    "trainset_check",
    code_digest("validate_training_set.py"),
    ENVS["omnipose"],
    V["trainset"],
    validation_settings(),
    config["tiling"]["keep_empty"],
)
V["model"] = version_id(
    "model",
    code_digest("train.py"),
    ENVS["omnipose"],
    V["trainset"],
    V["check"],  # train reads the check's table: a new check is a new model version
    training_settings(),
    PRETRAINED_FILES,
)
V["size_model"] = (
    version_id(
        "size_model",
        code_digest("fit_size_model.py"),
        V["model"],
        V["trainset"],
        V["heldout"],
        size_settings(),
    )
    if config["train_size"]
    else None
)
V["evaluation"] = version_id(
    "evaluation",
    code_digest("predict_heldout.py", "evaluate.py"),
    V["model"],
    V["size_model"] if USE_SIZE else None,
    V["heldout"],
    evaluation_settings(),
)

VALIDATION_DIR = f"{RESULTS}/validation/{V['validation']}"
SPLIT = f"{RESULTS}/splits/{V['split']}.tsv"
TRAINSET_DIR = f"{RESULTS}/trainsets/{V['trainset']}"
CHECK_DIR = f"{TRAINSET_DIR}/checks/{V['check']}"
HELDOUT = f"{RESULTS}/heldout/{V['heldout']}"
# The model: Omnipose's file name (<net_type>_<folder>) without the start-time suffix, so that
# Snakemake knows it; Omnipose writes it (and its checkpoints) below <MODEL_DIR>/models/.
MODEL_DIR = f"{RESULTS}/models/{V['model']}"
MODEL = f"{MODEL_DIR}/models/{model_name(config['nchan'], config['nclasses'], config['dim'], 'trainset')}"
SIZE_DIR = f"{RESULTS}/size_models/{V['size_model']}"
EVAL = f"{RESULTS}/evaluations/{V['evaluation']}"
GPUS = 0 if config["use_gpu"] is False else 1


def image_dir(sid):
    """The folder of one source image's prepared files (its current version)."""
    return f"{RESULTS}/images/{sid}/{PV[sid]}"


# The per-image work runs in batches of about 16 images (omnitrain/batches.py): {batch id: [sid]}.
# Training and held-out images are never in the same batch, so the training set's inputs (its batch
# tables) depend on the training images only. A batch's id covers its images' versions.
BATCHES = {**batch_ids(TRAIN, PV), **batch_ids(TEST, PV)}
BATCH_OF = {s: b for b, members in BATCHES.items() for s in members}


def batch_tables(sids):
    """The tables of the batches holding these images (each batch once, in order)."""
    return [f"{RESULTS}/image_batches/{b}.tsv" for b in dict.fromkeys(BATCH_OF[s] for s in sids)]


def batch_members(wildcards):
    if wildcards.batch not in BATCHES:
        raise WorkflowError(
            f"{RESULTS}/image_batches/{wildcards.batch}.tsv is not a batch of the current images: were"
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
                "settings": image_settings(role),
                "version": PV[sid],
                "folder": image_dir(sid),  # where this run writes it; the table names only the version
                **files,
            }
        )
    return out


def prediction_inputs(wildcards):
    files = {
        "model": rules.train.output.model,
        "card": rules.train.output.card,
        "heldout": rules.heldout_set.output[0],
    }
    if USE_SIZE:
        files["size_model"] = rules.fit_size_model.output.size
    return files


def register_inputs(wildcards):
    files = {
        "validation": rules.validate_inputs.output.table,
        "split": rules.split.output[0],
        "trainset": rules.pack.output.stats,
        "checked": rules.validate_training_set.output.table,
        "card": rules.train.output.card,
        "scores": rules.evaluate.output.scores,
        "per_image": rules.evaluate.output.per_image,
    }
    if config["train_size"]:
        files["size_model"] = rules.fit_size_model.output.size
    return files


def record_settings():
    """Everything the registry shows as this version's parameters."""
    return {
        "validation": validation_settings(),
        "split": {k: v for k, v in split_settings().items() if k != "sources"},
        "preprocessing": image_settings("train"),
        "training": training_settings(),
        "train_size": config["train_size"],
        "size": size_settings(),
        "evaluation": evaluation_settings(),
    }


# The registered version: the whole chain, validation and split included.
VERSION = version_id("version", code_digest("register.py"), V, record_settings())
VERSION_DIR = f"{RESULTS}/versions/{VERSION}"


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


def version_paths():
    return {
        "validation": VALIDATION_DIR,
        "split": SPLIT,
        "trainset": TRAINSET_DIR,
        "heldout": HELDOUT,
        "model": MODEL,
        "model_card": str(rules.train.output.card),
        "size_model": str(rules.fit_size_model.output.size) if config["train_size"] else None,
        "evaluation": EVAL,
    }


def version_links():
    """The parts of a version, linked from <results>/versions/<id>/."""
    return {
        "validation": VALIDATION_DIR,
        "trainset": TRAINSET_DIR,
        "check": CHECK_DIR,
        "heldout": HELDOUT,
        "model": MODEL_DIR,
        "size_model": SIZE_DIR if config["train_size"] else None,
        "evaluation": EVAL,
    }


# Snakemake benchmark files (seconds, peak memory) of the heavy steps; the version manifest reads them.
BENCHMARKS = {
    "pack": f"{RESULTS}/benchmarks/pack/{V['trainset']}.tsv",
    "train": f"{RESULTS}/benchmarks/train/{V['model']}.tsv",
    "fit_size_model": f"{RESULTS}/benchmarks/fit_size_model/{V['size_model']}.tsv",
    "predict_heldout": f"{RESULTS}/benchmarks/predict_heldout/{V['evaluation']}.tsv",
    "evaluate": f"{RESULTS}/benchmarks/evaluate/{V['evaluation']}.tsv",
}


def final_targets():
    """What `snakemake` builds by default."""
    targets = [
        rules.validate_inputs.output.summary,
        rules.validate_training_set.output.summary,
        rules.preview.output[0],
        rules.heldout_set.output[0],
        rules.train.output.card,
        rules.train.output.curve,
        rules.evaluate.output.summary,
        rules.evaluate.output.ap_curve,
        rules.evaluate.output.overlays,
        rules.registry.output.table,
    ]
    if config["train_size"]:
        targets += [rules.fit_size_model.output.size, rules.fit_size_model.output.heldout]
    return targets
