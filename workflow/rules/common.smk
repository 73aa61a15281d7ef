# Shared set-up: the checked config, the discovered inputs, the held-out split and output locations.
import sys

# The library next to the workflow (omnitrain/) is importable here; the rules' scripts add the
# same folder to their own sys.path (they run in subprocesses, possibly in conda envs).
sys.path.insert(0, workflow.basedir)

from omnitrain.config import ConfigError, check_config
from omnitrain.discovery import discover
from omnitrain.sources import build_sources
from omnitrain.training import model_name

try:
    config.update(check_config(config))
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

RESULTS = config["pipeline"]["results"]
LOGS = f"{RESULTS}/logs"
PRE = f"{RESULTS}/preprocess"


def find_pairs(folder):
    return discover(
        folder,
        img_filter=config["img_filter"],
        mask_filter=config["mask_filter"],
        look_one_level_down=config["look_one_level_down"],
    )


# Pairs found with Omnipose's naming rules. Every file that matters is an input of
# validate_inputs, so adding, removing or editing one reruns the validation.
INPUTS = find_pairs(config["dir"])
TEST_INPUTS = find_pairs(config["test_dir"]) if config["test_dir"] else None


# Sources by id (the {sid} wildcard): {"pair": Pair, "name": str, "role": "train" | "test"}.
SOURCES = build_sources(INPUTS, TEST_INPUTS, config)
TRAIN = sorted(s for s, v in SOURCES.items() if v["role"] == "train")
TEST = sorted(s for s, v in SOURCES.items() if v["role"] == "test")


wildcard_constraints:
    sid="[^/]+",


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


def source_files(wildcards):
    """The user's files of one source image (links only when there is a links file)."""
    pair = SOURCES[wildcards.sid]["pair"]
    files = {"image": str(pair.image), "label": str(pair.label)}
    if pair.links is not None:
        files["links"] = str(pair.links)
    return files


# The model: Omnipose's file name (<net_type>_<folder>) without the start-time suffix, so that
# Snakemake knows it; Omnipose writes it (and its checkpoints) below <MODEL_DIR>/models/.
MODEL_DIR = f"{RESULTS}/model"
MODEL = f"{MODEL_DIR}/models/{model_name(config['nchan'], config['nclasses'], config['dim'], 'trainset')}"
PRETRAINED = [config["pretrained_model"]] if config["pretrained_model"] else []
GPUS = 0 if config["use_gpu"] is False else 1


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


EVAL = f"{RESULTS}/evaluation"
USE_SIZE = config["train_size"] and config["diameter"] > 0 and config["evaluation"]["use_size_model"]


def prediction_inputs(wildcards):
    files = {
        "model": rules.train.output.model,
        "card": rules.train.output.card,
        "heldout": rules.heldout_set.output[0],
    }
    if USE_SIZE:
        files["size"] = rules.fit_size_model.output.size
    return files


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
    ]
    if config["train_size"]:
        targets += [rules.fit_size_model.output.size, rules.fit_size_model.output.heldout]
    return targets
