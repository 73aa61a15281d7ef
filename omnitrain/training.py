"""Training with the real Omnipose (cellpose_omni.models.CellposeModel.train), as the omnipose CLI does it.

The call mirrors omnipose 1.1.4's ``__main__`` (CellposeModel(...) then .train(...)), with these
deliberate differences, each documented in config/README.md: ``min_train_masks`` is honoured (the CLI
passes 0 unless --logits); the device is chosen by ``use_gpu: auto``; seeds are set; a pretrained
model is checked against nchan/nclasses/dim before training (Omnipose silently trains from random
weights on a mismatch); a built-in's diam_mean follows its name (omnitrain/pretrained.py); with nclasses 3
the loss's boundary term is taken on logits (:func:`fix_boundary_loss`: Omnipose 1.1.4 crashes otherwise);
``training.symmetry: false`` turns the flip-symmetry term off (:func:`set_symmetry`: no CLI flag in 1.1.4);
and the model file name has no timestamp (so Snakemake knows it).
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .discovery import discover
from .imageio import read_array
from .labels import read_links
from .pretrained import diam_mean

#: Keys of an Omnipose state_dict that reveal the architecture (DESIGN.md §5).
FIRST_CONV = "downsample.down.res_down_0.conv.conv_0.2.weight"
OUTPUT_CONV = "output.2.weight"

#: Omnipose's default training crop when tyx is not given (cellpose_omni/core.py, _train_net).
DEFAULT_TYX = {2: (224, 224), 3: (128, 128, 128)}


class TrainingError(RuntimeError):
    """Training cannot start; the message says why and what to do."""


def net_type(nchan: int, nclasses: int, dim: int) -> str:
    """Omnipose's network name for the CLI's architecture (CellposeModel.net_type in 1.1.4)."""
    return (
        "cellpose_residual_on_style_on_concatenation_off_omni_abstract"
        f"_nclasses_{nclasses}_nchan_{nchan}_dim_{dim}"
    )


def model_name(nchan: int, nclasses: int, dim: int, label: str) -> str:
    """The model file name: Omnipose's ``<net_type>_<folder>`` without its start-time suffix."""
    return f"{net_type(nchan, nclasses, dim)}_{label}"


def resolve_device(use_gpu) -> tuple[bool, str]:
    """(use CUDA?, a description of the device). ``use_gpu``: "auto", True or False."""
    import torch

    available = torch.cuda.is_available()
    if use_gpu is True and not available:
        raise TrainingError(
            f"use_gpu: true, but torch {torch.__version__} sees no CUDA GPU"
            f" (CUDA build: {torch.version.cuda or 'none'}). Run on a GPU node, or set use_gpu: auto"
            " (CPU when no GPU) or use_gpu: false."
        )
    if available and use_gpu in (True, "auto"):
        return True, f"cuda:0 ({torch.cuda.get_device_name(0)}, torch {torch.__version__})"
    why = "use_gpu: false" if use_gpu is False else "no CUDA GPU visible"
    return False, f"cpu ({why}; {torch.get_num_threads()} threads, torch {torch.__version__})"


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (Omnipose reseeds numpy per epoch itself; torch it does not)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def architecture(path: str | Path) -> dict[str, int]:
    """nchan, nclasses and dim of an Omnipose model file (a bare state_dict)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch's own message is a page on weights_only and pickling: its first line is the reason.
        reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        if "weights only load failed" in reason.lower():
            reason = "not a file of weights that torch.load reads safely (weights_only=True)"
        raise TrainingError(
            f"pretrained_model {path} cannot be read as a torch state_dict: {reason}; give the file Omnipose"
            " saved (models/<name> in its training folder), a built-in name such as cyto2_omni, or null"
        ) from None
    if not isinstance(state, dict) or FIRST_CONV not in state or OUTPUT_CONV not in state:
        raise TrainingError(
            f"pretrained_model {path} is not an Omnipose/Cellpose model file (no '{FIRST_CONV}' weights)"
        )
    out = state[OUTPUT_CONV]
    dim = out.ndim - 2
    return {"nchan": int(state[FIRST_CONV].shape[1]), "nclasses": int(out.shape[0]) - dim + 1, "dim": dim}


def weights_differences(path: str | Path, reference: dict) -> list[str]:
    """How a model file's weights differ from a network's state_dict ``reference``: keys missing or extra,
    and tensors of another shape (Omnipose loads with strict=False on the CPU, which hides all three)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, extra = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
    shapes = sorted(
        k for k in set(state) & set(reference) if tuple(state[k].shape) != tuple(reference[k].shape)
    )
    out = []
    for label, keys in (("missing", missing), ("not in the network", extra), ("of another shape", shapes)):
        if keys:
            out.append(f"{len(keys)} weight(s) {label}, e.g. {keys[0]}")
    return out


def check_pretrained(path: str | Path, nchan: int, nclasses: int, dim: int) -> dict[str, int]:
    """Refuse a pretrained model whose architecture differs from the config, naming both values."""
    found = architecture(path)
    why = architecture_mismatch(path, found, nchan, nclasses, dim)
    if why:
        raise TrainingError(why)
    return found


def unfit_pretrained_files(configs: dict[str, dict]) -> list[str]:
    """Why the model files (not built-in names) that experiments start from do not fit them: ``configs`` maps
    experiment names to their configs (folds share theirs); one message per problem, named by its experiment
    when there are several. Each file is read once (the workflow checks them every time it starts, on every
    cluster job too)."""
    from .pretrained import builtin

    found: dict[str, dict | str] = {}
    msgs = []
    for name, cfg in configs.items():
        path = cfg["pretrained_model"]
        if not path or builtin(path) or not Path(path).is_file():
            continue  # built-ins have their own checks; a missing file is a config error
        if path not in found:
            try:
                found[path] = architecture(path)
            except TrainingError as exc:
                found[path] = str(exc)
        arch = found[path]
        why = (
            arch
            if isinstance(arch, str)
            else architecture_mismatch(path, arch, cfg["nchan"], cfg["nclasses"], cfg["dim"])
        )
        if why:
            msgs.append(why if len(configs) == 1 else f"experiment {name}: {why}")
    return list(dict.fromkeys(msgs))


def architecture_mismatch(path, found: dict[str, int], nchan: int, nclasses: int, dim: int) -> str | None:
    """How a model file's architecture ``found`` differs from the config, naming both values; None if not."""
    wanted = {"nchan": nchan, "nclasses": nclasses, "dim": dim}
    wrong = [
        f"{k} = {found[k]} in the model but {k}: {wanted[k]} in the config"
        for k in wanted
        if found[k] != wanted[k]
    ]
    if wrong:
        return (
            f"pretrained_model {path} does not fit the config: {'; '.join(wrong)}. Omnipose would"
            " silently train from random weights instead. Set the config to the model's values, choose a"
            " model trained with these settings, or set pretrained_model: null to train from scratch."
        )
    return None


def starting_model(config: dict, builtin_record=None, builtin_weights=None) -> tuple[str | None, dict | None]:
    """The file training starts from and what the model card says of it: a built-in model's copy (its
    download step's record: name, URL, sha256) or the configured file; (None, None) from scratch.

    A built-in's copy whose bytes are no longer those recorded at its download is refused."""
    from .hashing import sha256

    if builtin_record:
        record = json.loads(Path(builtin_record).read_text())
        found = sha256(builtin_weights)
        if found != record["sha256"]:
            raise TrainingError(
                f"{builtin_weights} changed since {record['name']} was downloaded (sha256 {found}, recorded"
                f" {record['sha256']} in {builtin_record}); delete both files to download it again"
            )
        return str(builtin_weights), {**record, "path": str(builtin_weights)}
    path = config["pretrained_model"]
    if not path:
        return None, None
    return path, {"name": path, "path": path, "sha256": sha256(path)}


@dataclass
class TrainingSet:
    images: list[np.ndarray]
    labels: list[np.ndarray]
    links: list[set | None]
    files: list[str]


SPARSE_FAILURE = re.compile(r"Sparse or over-dense image detected.*?Problematic index is: (\d+)", re.S)


def sparse_failure(
    exc: BaseException, ts: TrainingSet, min_train_masks: int, sources: dict, dim: int = 2
) -> str | None:
    """The message for Omnipose's 'Sparse or over-dense image detected', naming the image; None for
    any other error.

    Omnipose's index counts the images it kept (at least min_train_masks objects, by the largest label);
    ``sources`` maps a training image's file name (without extension) to the user's source image(s).
    """
    match = SPARSE_FAILURE.search(str(exc))
    if not match:
        return None
    kept = [f for f, lab in zip(ts.files, ts.labels, strict=True) if int(lab.max()) >= min_train_masks]
    index = int(match.group(1))
    image = kept[index] if index < len(kept) else f"training image number {index}"
    source = sources.get(Path(image).stem, "?")
    return (
        f"Omnipose gave up on the training image {image} (from {source}): 101 random crops in a row held"
        " fewer than 2 label values ('Sparse or over-dense image detected').\n"
        "fix: "
        + ("turn packing on (packing.enabled: true), " if dim == 2 else "")
        + "use a larger tyx, crop the source image around its cells or drop it, or lower"
        " validation.sparse_crop_risk so that validate_training_set refuses such images before training"
    )


def load_training_set(folder: str | Path) -> TrainingSet:
    """The pipeline's training set folder (<base>.tif + <base>_masks.tif [+ _links.txt]) as arrays."""
    found = discover(folder)
    if not found.pairs:
        raise TrainingError(f"no image/label pairs in the training set {folder}")
    ts = TrainingSet([], [], [], [])
    for pair in found.pairs:
        ts.images.append(read_array(pair.image))
        ts.labels.append(read_array(pair.label))
        links = read_links(pair.links)
        ts.links.append(set(links) if links else None)
        ts.files.append(str(pair.image))
    return ts


def omnipose_disagreements(folder: str | Path) -> list[str]:
    """Where Omnipose's own discovery and loader (``cellpose_omni.io``, what ``omnipose --train --dir`` runs)
    disagree with the pipeline about its training set folder; empty when both find the same pairs and load
    the same arrays.

    Checked in the train job, which imports Omnipose anyway: validate_training_set needs no Omnipose (with
    diameter 0), and importing it cost each of those jobs 7-10 s on a busy 2-core machine."""
    from .omni import omnipose_models

    omnipose_models()
    from cellpose_omni import io

    folder = str(folder)
    pairs = discover(folder).pairs
    images = io.get_image_files(folder, "_masks", "", False)
    labels, links = io.get_label_files(images, label_filter="_masks", img_filter="", links=True)
    absolute = os.path.abspath
    theirs = sorted(
        (absolute(i), absolute(lb), absolute(lk) if lk else None)
        for i, lb, lk in zip(images, labels, links, strict=True)
    )
    ours = sorted(
        (absolute(p.image), absolute(p.label), absolute(p.links) if p.links else None) for p in pairs
    )
    if theirs != ours:
        return [f"Omnipose pairs {theirs} but the pipeline {ours}"]
    loaded = io.load_train_test_data(folder, mask_filter="_masks", look_one_level_down=False, omni=True)
    out = []
    for img, lab, name in zip(*loaded[:2], loaded[3], strict=True):
        ours_img = read_array(name)
        if img.shape != ours_img.shape or not np.array_equal(img, ours_img):
            out.append(f"{name}: Omnipose loads a different image")
        if lab.shape != ours_img.shape[-lab.ndim :]:
            out.append(f"{name}: Omnipose loads labels of shape {lab.shape} for an image of {img.shape}")
    return out


def model_kwargs(config: dict, gpu: bool, pretrained: str | None) -> dict:
    """CellposeModel(...) arguments, exactly as the omnipose CLI builds them for training (``pretrained``: a
    file; a built-in's diam_mean comes from its name, as the CLI's)."""
    return {
        "gpu": gpu,
        "pretrained_model": pretrained,
        "diam_mean": diam_mean(config),
        "nchan": config["nchan"],
        "nclasses": config["nclasses"],
        "dim": config["dim"],
        "omni": True,
        "residual_on": True,
        "style_on": True,
        "concatenation": False,
        "nsample": 4,
        "kernel_size": 2,
        "dilation": 1,
        "scale_factor": 2,
        "allow_blank_masks": bool(config["tiling"]["keep_empty"]),
    }


def set_symmetry(model, on: bool) -> bool:
    """Turn Omnipose's flip-symmetry loss term off (``training.symmetry: false``); True when it did.

    Omnipose 1.1.4's loop calls ``model._train_step(x, lbl)`` with its default ``symmetry_weight=1`` and
    offers no flag for it: the step is bound to 0, Omnipose's own switch (its loss rescales every term, so
    only 0 and not-0 differ). With it off, a step runs the network once instead of three times (2D)."""
    if on:
        return False
    model._train_step = functools.partial(model._train_step, symmetry_weight=0)
    return True


def fix_boundary_loss(model) -> bool:
    """Let Omnipose 1.1.4 train a model with the boundary field (nclasses 3: bact_phase_omni, cyto2_omni,
    plant_omni, ...); returns whether it was needed.

    Its loss scores the boundary output with ``BatchMeanBSE`` (torch's BCELoss) on the network's raw output,
    which is not a probability: training stops at the first batch with "all elements of input should be
    between 0 and 1", from scratch and when fine-tuning. Omnipose's own comment beside it keeps the
    ``BCEWithLogitsLoss`` it replaced, and the built-in boundary models were trained with that one. So the
    term is replaced, after Omnipose sets its loss terms up (``_set_criterion``, called by train()), by the
    same per-sample mean computed on logits. Written here because no release of Omnipose fixes it."""
    import torch

    if model.nclasses != model.dim + 2:  # Omnipose's own test for a boundary output
        return False

    class BatchMeanBCEWithLogits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bce = torch.nn.BCEWithLogitsLoss(reduction="none")

        def forward(self, pred, target):
            per_elem = self.bce(pred, target)
            return per_elem.reshape(per_elem.size(0), -1).mean(dim=1).mean()

    set_up = model._set_criterion

    def set_criterion():
        set_up()
        model.BCELoss = BatchMeanBCEWithLogits()

    model._set_criterion = set_criterion
    return True


def crops_per_epoch(config: dict, n_sources: int) -> int:
    """The ``nimg_per_epoch`` passed to Omnipose: ``training.nimg_per_epoch``, or by default the number of
    training SOURCE images, and never fewer than ``batch_size``.

    Omnipose's own default (the number of training images) means, after packing, a handful of crops per
    epoch (demo: 2): a ``batch_size: 16`` would silently become a batch of 2 and ``n_epochs: 4000`` far
    fewer gradient steps than the same flags on the raw folder. With this default an epoch is at least
    what ``omnipose --train`` on the raw folder does (Omnipose itself takes the larger of this and the
    number of training images)."""
    chosen = config["training"]["nimg_per_epoch"]
    return int(chosen) if chosen else max(int(n_sources), int(config["batch_size"]))


def epoch_meaning(cfg, n_images: int, n_sources: int) -> str:
    """What an epoch is here (packing changes it), with a warning when batches come out smaller."""
    per_epoch = max(crops_per_epoch(cfg, n_sources), n_images)  # Omnipose takes the larger
    why = (
        "training.nimg_per_epoch"
        if cfg["training"]["nimg_per_epoch"]
        else (f"by default max({n_sources} training source image(s), batch_size {cfg['batch_size']})")
    )
    text = f"an epoch is {per_epoch} crop(s) ({why}; {n_images} image(s) in the training set)"
    if per_epoch < cfg["batch_size"]:
        text += (
            f"\nWARNING batches of {per_epoch} crop(s), not batch_size {cfg['batch_size']}: raise"
            " training.nimg_per_epoch to at least batch_size"
        )
    return text


def train_kwargs(config: dict, save_path: str, netstr: str, n_sources: int | None = None) -> dict:
    """CellposeModel.train(...) arguments, as the omnipose CLI passes them (min_train_masks honoured);
    with ``n_sources`` (the training source images) an epoch is :func:`crops_per_epoch` crops."""
    tyx = config["tyx"]
    return {
        "learning_rate": float(config["learning_rate"]),
        "channels": None,
        "channel_axis": 0 if config["nchan"] > 1 else None,
        "save_path": save_path,
        "save_every": config["save_every"],
        "save_each": config["save_each"],
        "rescale": config["diameter"] != 0,
        "n_epochs": config["n_epochs"],
        "batch_size": config["batch_size"],
        "dataloader": config["dataloader"],
        "num_workers": config["num_workers"],
        "min_train_masks": config["min_train_masks"],
        "SGD": not config["RAdam"],
        "tyx": tuple(int(v) for v in tyx) if tyx else None,
        "netstr": netstr,
        "nimg_per_epoch": (
            crops_per_epoch(config, n_sources)
            if n_sources is not None
            else config.get("training", {}).get("nimg_per_epoch")
        ),
        "do_autocast": False,  # --amp is broken in omnipose 1.1.4 (autocast without device_type)
    }


def loadable(path: str | Path) -> bool:
    """Whether torch can load a saved state (a file cut short by a full disk or a kill cannot)."""
    import torch

    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for a broken file
        return False
    return True


def load_trained_model(path: str | Path, card: dict, gpu: bool):
    """A trained model as Omnipose loads it, with the architecture its model card records."""
    from cellpose_omni import models

    return models.CellposeModel(
        gpu=gpu,
        pretrained_model=str(path),
        nchan=card["nchan"],
        nclasses=card["nclasses"],
        dim=card["dim"],
        omni=True,
        diam_mean=card["diam_mean"],
    )
