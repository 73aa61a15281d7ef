"""Omnipose 2's run records beside each trained model, so that its own tools read this pipeline's trainings:
``<save_path>/<netstr>_run.json`` (schema version 1: status, times, hyperparameters, model, dataset, hardware,
provenance, the loss summary) and ``<save_path>/<netstr>_loss_history.json`` (one entry per batch), as
Omnipose main writes them (kevinjohncutler/omnipose, src/omnipose/models/run_metadata.py and train.py at
871f2c93a63a14f8ca84efaa8f4715c4e2749769), read by its ``omnipose-sweep-report`` and live loss viewer.

Omnipose 1.1.4, which trains here, writes neither, so the pipeline writes them from its hooks on the loop
(omnitrain/epochs.py): the run record when the first epoch ends (status "running"), then "completed" or
"failed" with the duration and the summary; the loss history every ``save_every`` epochs and at the end.
Written here rather than by calling Omnipose 2's functions: that package is not on PyPI and cannot be
installed beside 1.1.4 (both are ``omnipose``). Fields 1.1.4 has no counterpart for keep Omnipose 2's key with
the value 1.1.4 behaves as (``compile`` false, ``affinity_field`` false); the per-component losses
(``raw_losses``) are null: 1.1.4's step returns their sum only.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from hashlib import blake2b
from importlib import metadata
from pathlib import Path

SCHEMA_VERSION = 1


def record_paths(save_path: str | Path, netstr: str) -> tuple[Path, Path]:
    """(run record, loss history) of the model ``netstr`` trained into ``save_path``: Omnipose 2's names."""
    return Path(save_path) / f"{netstr}_run.json", Path(save_path) / f"{netstr}_loss_history.json"


def write_json_atomic(path: Path, payload) -> None:
    """Written aside, then renamed (a reader never sees half a file), in Omnipose 2's key order: not
    omnitrain.manifest.write_json, which sorts the keys."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=2, default=str))
        os.replace(tmp, path)
    finally:  # (a full disk leaves no temporary file either)
        tmp.unlink(missing_ok=True)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(args: list[str], repo: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance(repo: Path) -> dict:
    """The pipeline's own repository (Omnipose 2 records the working directory's: here that is the user's
    project, while the code that trained is the pipeline's)."""
    dirty = _git(["status", "--porcelain"], repo)  # None outside a repository (or without git)
    return {
        "git_sha": _git(["rev-parse", "HEAD"], repo),
        "git_branch": _git(["rev-parse", "--abbrev-ref", "HEAD"], repo),
        "git_describe": _git(["describe", "--tags", "--always", "--dirty"], repo),
        "git_dirty": None if dirty is None else bool(dirty),
        "git_remote": _git(["config", "--get", "remote.origin.url"], repo),
        "omnipose_version": _version("omnipose"),
        "ocdkit_version": _version("ocdkit"),
        "argv": list(sys.argv),
        "cwd": str(Path.cwd()),
    }


def hardware(device) -> dict:
    import torch

    dev = torch.device(device)
    cuda = torch.cuda.is_available()
    return {
        "device": str(dev),
        "device_type": dev.type,
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
        "platform": platform.platform(),
        "cuda_available": cuda,
        "mps_available": bool(hasattr(torch.backends, "mps") and torch.backends.mps.is_available()),
        "n_gpu": torch.cuda.device_count() if cuda else 0,
        "gpu_name": torch.cuda.get_device_name(0) if cuda else None,
        "cuda_version": getattr(torch.version, "cuda", None) if cuda else None,
    }


def model_info(net) -> dict:
    import torch

    inner = net.module if isinstance(net, torch.nn.DataParallel) else net
    return {
        "architecture": type(inner).__name__,
        "nbase": list(getattr(inner, "nbase", []) or []),
        **{k: getattr(inner, k, None) for k in ("sz", "residual_on", "style_on", "concatenation", "dim")},
        **{k: getattr(inner, k, None) for k in ("kernel_size", "scale_factor", "dilation")},
        "n_parameters": int(sum(p.numel() for p in inner.parameters())),
        "data_parallel": isinstance(net, torch.nn.DataParallel),
    }


def dataset_info(images: list, labels: list, save_path) -> dict:
    n = min(8, len(images))
    return {
        "n_train": len(images),
        "n_test": 0,
        "train_mode": "arrays" if images else None,
        "test_mode": None,
        "save_path": str(save_path),
        "sample_image_shapes": [list(images[i].shape) for i in range(n)],
        "sample_mask_shapes": [list(labels[i].shape) for i in range(n)],
    }


def hyperparameters(model, kwargs: dict, tensorboard: bool, symmetry: bool) -> dict:
    """Omnipose 2's ``_train_net`` arguments (in its order) as this training used them, then the model's."""
    import torch

    tyx = kwargs.get("tyx")
    hp = {
        "save_path": kwargs["save_path"], "save_every": kwargs["save_every"],
        "save_each": kwargs["save_each"], "learning_rate": kwargs["learning_rate"],
        "n_epochs": kwargs["n_epochs"],
        "momentum": kwargs.get("momentum", 0.9), "weight_decay": kwargs.get("weight_decay", 0.00001),
        "SGD": kwargs["SGD"], "batch_size": kwargs["batch_size"], "num_workers": kwargs["num_workers"],
        "nimg_per_epoch": kwargs["nimg_per_epoch"], "do_rescale": kwargs["rescale"], "affinity_field": False,
        "netstr": kwargs["netstr"], "do_autocast": kwargs["do_autocast"],
        "tyx": list(tyx) if tyx else None, "timing": False, "tensorboard": tensorboard, "sym_kernels": False,
        "symmetry_weight": 1.0 if symmetry else 0.0, "compile": False, "norm_params": None,
        "channel_axis": kwargs["channel_axis"],
    }  # fmt: skip
    for key in ("omni", "nchan", "nclasses", "dim", "diam_mean", "torch_compile", "norm_type"):
        if hasattr(model, key):
            value = getattr(model, key)
            hp[f"model.{key}"] = str(value) if isinstance(value, torch.device) else value
    hp["loss_modules"] = sorted(
        a
        for a in dir(model)
        if a.lower().endswith("loss") and isinstance(getattr(model, a, None), torch.nn.Module)
    )
    hp["torch_seed"] = int(torch.initial_seed())
    return hp


def summary(history: dict) -> dict:
    """Omnipose 2's ``compute_summary`` of a loss history."""
    losses, epochs, raw = history["train_loss"], history["epoch"], history["raw_losses"]
    if not losses:
        return {
            "final_loss_raw": None, "min_loss_raw": None, "min_loss_raw_epoch": None,
            "total_batches": 0, "total_epochs_completed": 0,
        }  # fmt: skip
    lowest = min(range(len(losses)), key=losses.__getitem__)
    return {
        "final_loss_raw": float(losses[-1]),
        "min_loss_raw": float(losses[lowest]),
        "min_loss_raw_epoch": int(epochs[lowest]),
        "total_batches": len(losses),
        "total_epochs_completed": max(epochs) + 1,
        "n_loss_components": len(raw[0]) if raw and raw[0] else 0,
    }


HISTORY_KEYS = ("epoch", "batch", "train_loss", "epoch_loss", "learning_rate", "timestamp", "raw_losses")


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # none, or cut short
        return {}


def _earlier_history(path: Path, before: int) -> dict:
    """The batches of the epochs before ``before`` from an earlier part's history (none when it has none)."""
    earlier = _read(path)
    if not all(isinstance(earlier.get(k), list) for k in HISTORY_KEYS):
        return {k: [] for k in HISTORY_KEYS}
    keep = [i for i, epoch in enumerate(earlier["epoch"]) if epoch < before]
    return {k: [earlier[k][i] for i in keep] for k in HISTORY_KEYS}


class RunRecord:
    """The two files of one training; ``epoch`` after each finished epoch, ``finish`` at its end."""

    def __init__(self, save_path, netstr: str, describe, save_every: int, resumed_at: int = 0):
        """``describe()`` gives the record's hyperparameters, model, dataset, hardware and provenance (taken
        when the first epoch ends, when everything is resolved, as Omnipose 2 does). ``resumed_at``: the first
        epoch a resumed training trains; the earlier parts' batches are kept from their history, and the
        epochs the resume replays are not added again."""
        self.run_path, self.history_path = record_paths(save_path, netstr)
        self.netstr, self.describe = netstr, describe
        self.save_every, self.resumed_at = save_every, resumed_at
        self.history = {k: [] for k in HISTORY_KEYS}
        if resumed_at:
            self.history = _earlier_history(self.history_path, resumed_at)
        self.kept = set(self.history["epoch"])  # epochs of earlier parts (a resume replays them)
        self.record: dict | None = None

    def epoch(self, epoch: int, batch_losses: list[tuple[float, float]], learning_rate: float) -> None:
        """A finished epoch's batches ((loss, time) each) into the history; the record after the first."""
        if epoch in self.kept:  # replayed by a resume: its real batches are in the history already
            return
        for number, (loss, stamp) in enumerate(batch_losses, start=1):
            entry = {"epoch": epoch, "batch": number, "train_loss": float(loss), "epoch_loss": None}
            entry |= {"learning_rate": float(learning_rate), "timestamp": stamp, "raw_losses": None}
            for key, value in entry.items():
                self.history[key].append(value)
        if self.record is None:
            self.start()
        if (epoch + 1) % self.save_every == 0:
            write_json_atomic(self.history_path, self.history)

    def start(self) -> None:
        """The record with status "running"; a resumed training keeps its first part's start and id."""
        started = time.time()
        earlier = _read(self.run_path) if self.resumed_at else {}
        started = earlier.get("started_at", started)
        run_id = blake2b(f"{started}:{self.netstr}:".encode(), digest_size=6).hexdigest()
        self.record = {
            "schema_version": SCHEMA_VERSION,
            "run_id": earlier.get("run_id", run_id),
            "name": self.netstr, "sweep": None, "tags": [], "status": "running",
            "started_at": started, "finished_at": None, "duration_s": None,
            **self.describe(),
            "summary": {}, "notes": "",
        }  # fmt: skip
        write_json_atomic(self.run_path, self.record)

    def finish(self, status: str) -> None:
        """``status`` "completed" or "failed": the times, the summary, and the whole loss history."""
        write_json_atomic(self.history_path, self.history)
        if self.record is None:  # no epoch finished: Omnipose 2 has no record then either
            return
        now = time.time()
        self.record |= {"status": status, "finished_at": now, "duration_s": now - self.record["started_at"]}
        self.record["summary"] = summary(self.history)
        write_json_atomic(self.run_path, self.record)
