"""The train step: Omnipose's own ``CellposeModel.train`` on the pipeline's training set, resumable,
watched on validation images, recorded per epoch, and described by a model card.

:func:`train` is the whole step for one :class:`TrainJob` (what the ``train`` rule gives its script):
:func:`start` (device, starting model, training set, Omnipose's own loader agreeing); the model with the
pipeline's fixes (omnitrain.training); the hooks on Omnipose's loop (omnitrain.resume: checkpoints and
SIGTERM; omnitrain.epochs: the per-epoch table; omnitrain.monitor: validation scores and the best epoch);
then :func:`kept_checkpoints`, the loss curve and :func:`model_card`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from .board import TrainingBoard, overlay, run_folder
from .config import OMNIPOSE_FLAGS
from .epochs import EpochRecorder
from .hashing import sha256
from .layout import save_path_of
from .manifest import digest, files_of, write_json
from .monitor import Monitor, load_validation_set
from .omni import omnipose_models
from .resume import EarlyStopped, Interrupted, ResumableTraining
from .run_record import RunRecord, dataset_info, hardware, hyperparameters, model_info, provenance
from .runlog import os_error_message
from .sparsity import source_names
from .training import (
    DEFAULT_TYX,
    TrainingError,
    architecture,
    check_pretrained,
    epoch_meaning,
    fix_boundary_loss,
    load_training_set,
    loadable,
    model_kwargs,
    omnipose_disagreements,
    resolve_device,
    seed_everything,
    set_symmetry,
    sparse_failure,
    starting_model,
    train_kwargs,
)
from .views import view_setting


class TrainingStopped(Exception):
    """The training ended without a model; the message says why and what to do (the script says it, no
    traceback: ``run_step(..., said=(TrainingStopped,))``)."""


@dataclass(frozen=True)
class TrainJob:
    """One train job: the settings its version covers, its input and output files, and its run's facts."""

    settings: dict
    trainset: str  # the training set folder (<base>.tif + <base>_masks.tif)
    provenance: str  # its provenance table (which source image each packed crop came from)
    model: str  # the model file to write (Omnipose's name, below the model folder's models/)
    best: str | None  # the best epoch's model file, when monitored
    card: str
    losses: str
    curve: str
    version: str  # the model's version id (a checkpoint of another training is ignored)
    sources: dict  # {training source id: its image file}
    monitor_off: str  # why training is not monitored ("" when it is)
    threads: int
    builtin: str | None = None  # a built-in model's record and weights (download_pretrained)
    builtin_weights: str | None = None
    monitor_set: str | None = None  # the validation images, when monitored
    tensorboard: bool = False  # the live view (monitor.tensorboard; not part of the version)

    @classmethod
    def from_snakemake(cls, sm) -> TrainJob:
        """The job of the train rule's script (its ``snakemake`` object)."""
        return cls(
            settings=sm.params.settings, trainset=sm.input.trainset, provenance=sm.input.provenance,
            model=sm.params.model, best=sm.params.best, card=sm.output.card, losses=sm.output.losses,
            curve=sm.output.curve, version=sm.params.version, sources=sm.params.sources,
            monitor_off=sm.params.monitor_off, threads=sm.threads, builtin=sm.input.get("builtin"),
            builtin_weights=sm.input.get("builtin_weights"), monitor_set=sm.input.get("monitor_set"),
            tensorboard=bool(view_setting(sm, "monitor.tensorboard")),
        )  # fmt: skip


def start(job: TrainJob, log: logging.Logger):
    """(gpu, device, starting model file, its origin, training set), or TrainingStopped with the reason."""
    cfg = job.settings
    try:
        gpu, device = resolve_device(cfg["use_gpu"])
        pretrained, origin = starting_model(cfg, job.builtin, job.builtin_weights)
        if pretrained:
            check_pretrained(pretrained, cfg["nchan"], cfg["nclasses"], cfg["dim"])
            log.info(f"fine-tuning {origin['name']}: nchan, nclasses and dim match the config")
        ts = load_training_set(job.trainset)
        disagreements = omnipose_disagreements(job.trainset)
        if disagreements:
            raise TrainingError(
                "Omnipose's own loader (cellpose_omni.io) disagrees with the pipeline about the training set"
                f" {job.trainset}: {'; '.join(disagreements)}. This is a bug of the pipeline: report it"
            )
    except TrainingError as exc:
        raise TrainingStopped(f"Training cannot start: {exc}") from None
    log.info(f"device: {device}")
    note = cpu_note(cfg, gpu)
    if note:
        log.info(note)
    log.info(f"training set: {len(ts.images)} image(s) from {job.trainset}")
    log.info("Omnipose's cellpose_omni.io finds and loads the same pairs as the pipeline")
    log.info(epoch_meaning(cfg, len(ts.images), len(job.sources)))
    return gpu, device, pretrained, origin, ts


def cpu_note(cfg: dict, gpu: bool) -> str | None:
    """A note for a 2D training on the CPU with the GPU-sized defaults (Omnipose's 224 px crops, the symmetry
    term on), which learn next to nothing per CPU-minute (docs/quality.md, "Against the user's habit")."""
    crops = cfg["tyx"] or DEFAULT_TYX[2]
    if gpu or cfg["dim"] != 2 or min(crops) <= 128 or not cfg["training"]["symmetry"]:
        return None
    return (
        f"NOTE training on the CPU with GPU-sized settings (crops of {min(crops)} px, the symmetry term on):"
        " on real nuclei these learned nothing in 6 minutes where config/cpu.yaml's did (docs/quality.md);"
        " on a laptop add it after your config: --configfile my.yaml config/cpu.yaml"
    )


def monitor_of(job: TrainJob, model, tyx, log: logging.Logger, draw) -> Monitor | None:
    """The monitor of the validation images (None, said in the log, when training is not monitored);
    ``draw(monitor)`` redraws the loss curve after each scoring."""
    if not job.monitor_set:
        warning = "WARNING " if "split.min_train" in job.monitor_off else ""  # wanted, but too few images
        log.info(f"{warning}monitoring is off: {job.monitor_off}")
        return None
    cfg, mon = job.settings, job.settings["monitor"]
    monitor = Monitor(
        model, load_validation_set(job.monitor_set), every=mon["every"], n_epochs=cfg["n_epochs"],
        metric=mon["metric"], patience=mon["patience"], tyx=tyx,
        channel_axis=0 if cfg["nchan"] > 1 else None, diameter=cfg["diameter"], best_path=job.best, log=log,
        loss_crops=mon["loss_crops"], on_scored=lambda: draw(monitor),
    )  # fmt: skip
    log.info(
        f"monitoring every {mon['every']} epoch(s) on {len(monitor.vs.images)} validation image(s)"
        f" ({len(monitor.crops)} of {monitor.grid_crops} crop(s) for the loss); the best epoch by"
        f" {mon['metric']} is kept"
    )
    return monitor


def limit_visible_gpus(count: int, environ=os.environ) -> str:
    """Let this process see ``count`` GPUs: Omnipose 1.1.4 trains with torch's DataParallel over every GPU it
    sees, so a job that holds one GPU must see one. Keeps the first ``count`` of CUDA_VISIBLE_DEVICES (SLURM
    sets it to the job's own GPUs), or sets 0..count-1 when it is unset. Must run before torch initialises
    CUDA (CUDA reads the variable once). Returns the value set."""
    current = environ.get("CUDA_VISIBLE_DEVICES")
    ids = [d.strip() for d in current.split(",") if d.strip()] if current is not None else []
    environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids[:count] if current is not None else map(str, range(count)))
    return environ["CUDA_VISIBLE_DEVICES"]


def visible_gpus(cfg: dict, log: logging.Logger) -> None:
    """The GPUs the job holds and no other (resources.train_gpus: Omnipose uses every GPU it sees)."""
    if cfg["use_gpu"] is not False:
        visible = limit_visible_gpus(cfg["resources"]["train_gpus"])
        mode = " (dataparallel: each batch split across them)" if cfg["dataparallel"] else ""
        log.info(f"GPUs this job may use: CUDA_VISIBLE_DEVICES={visible}{mode}")


def live_view(job: TrainJob, start: int, log: logging.Logger) -> TrainingBoard | None:
    """The training's TensorBoard run (None when monitor.tensorboard is off)."""
    if not job.tensorboard:
        return None
    folder = run_folder(Path(job.card).parent)
    log.info(f"TensorBoard: {folder} (watch it live: tensorboard --logdir {Path(job.card).parents[2]})")
    try:
        return TrainingBoard(folder, start)
    except ImportError as exc:  # an environment made before tensorboard was in the lock
        log.info(f"WARNING no live view ({exc}): run make env (or set monitor.tensorboard: false)")
        return None


def run_record(job: TrainJob, model, kwargs, ts, save_path: str, netstr: str, resumed_at: int) -> RunRecord:
    """Omnipose 2's run record and loss history of this training (omnitrain/run_record.py)."""
    cfg = job.settings

    def describe() -> dict:
        return {
            "hyperparameters": hyperparameters(model, kwargs, job.tensorboard, cfg["training"]["symmetry"]),
            "model": model_info(model.net),
            "dataset": dataset_info(ts.images, ts.labels, save_path),
            "hardware": hardware(model.device),
            "provenance": provenance(Path(__file__).resolve().parents[1]),
        }

    return RunRecord(save_path, netstr, describe, cfg["save_every"], resumed_at)


def finish_quietly(record: RunRecord, status: str, log: logging.Logger) -> None:
    """The run record's last word on a stopped training: never in the way of the error that stopped it."""
    try:
        record.finish(status)
    except OSError as exc:
        log.info(f"WARNING the run record could not be written: {exc}")


def epoch_writers(board: TrainingBoard | None, record: RunRecord, monitor: Monitor | None):
    """EpochRecorder's ``after``: each epoch to the live view (with the validation overlay when it was
    scored) and to Omnipose 2's run record."""

    def write(row: dict, scores: dict | None, batches: list) -> None:
        if board is not None and row["epoch"] >= board.start:  # (a resume replays the epochs before)
            found = monitor.first_found() if scores and monitor is not None else None
            board.epoch(row, scores, overlay(*found) if found else None)
        record.epoch(row["epoch"], batches, row["learning_rate"])

    return write


def train(job: TrainJob, log: logging.Logger) -> dict:
    """Train, write the model file(s), the per-epoch table, the loss curve and the card; return the card."""
    cfg = job.settings
    visible_gpus(cfg, log)  # before torch or Omnipose touch CUDA
    import torch

    models = omnipose_models()
    gpu, device, pretrained, origin, ts = start(job, log)
    if gpu and cfg["dataparallel"] and torch.cuda.device_count() < cfg["resources"]["train_gpus"]:
        log.info(
            f"WARNING dataparallel over {cfg['resources']['train_gpus']} GPUs asked,"
            f" {torch.cuda.device_count()} seen: training on those"
        )
    torch.set_num_threads(job.threads)
    seed_everything(cfg["pipeline"]["seed"])
    model = models.CellposeModel(**model_kwargs(cfg, gpu, pretrained))
    if fix_boundary_loss(model):
        log.info("nclasses 3: the loss's boundary term is taken on logits (Omnipose 1.1.4 crashes otherwise)")
    if set_symmetry(model, cfg["training"]["symmetry"]):
        log.info("training.symmetry false: Omnipose's flip-symmetry term is off (one forward pass a step)")
    save_path, netstr = str(save_path_of(job.model)), Path(job.model).name
    kwargs = train_kwargs(cfg, save_path, netstr, len(job.sources))
    tyx = kwargs["tyx"] or DEFAULT_TYX[cfg["dim"]]
    # Full checkpoints beside the model (not a declared output: Snakemake keeps it when the job fails);
    # SIGTERM (SLURM's warning before the time limit) saves the last finished epoch and stops.
    resumable = ResumableTraining(
        model, Path(save_path) / "checkpoint.pt", job.version, log, replay_shortcuts=not cfg["dataloader"]
    )
    signal.signal(signal.SIGTERM, resumable.request_stop)
    # (recorder: made below, before the first scoring)
    monitor = monitor_of(
        job, model, tyx, log, lambda m: loss_curve(recorder.rows, job.curve, m.history, m.best["epoch"])
    )
    if monitor is not None:
        resumable.attach_monitor(monitor)
    board = live_view(job, resumable.start, log)
    record = run_record(job, model, kwargs, ts, save_path, netstr, resumable.start)
    began = time.perf_counter()
    scored, after = monitor and monitor.on_epoch, epoch_writers(board, record, monitor)
    with (
        EpochRecorder(model, cfg["n_epochs"], job.losses, log, scored, after) as recorder,
        board or contextlib.nullcontext(),
    ):
        try:
            model.train(ts.images, ts.labels, ts.links, train_files=ts.files, **kwargs)
        except Interrupted as exc:
            finish_quietly(record, "failed", log)  # (Omnipose 2's word for a training that did not end)
            raise TrainingStopped(f"{exc}: run the workflow again to continue from there") from None
        except EarlyStopped:  # the network holds the last monitored epoch's weights: they are the model
            resumable.save_weights(job.model)
        except Exception as exc:  # noqa: BLE001 (said in one message below, or left to run_step)
            if os_error_message("train", exc) is not None:  # a full disk: run_step says it, with the fix
                raise
            names = source_names(job.provenance, job.sources)
            message = sparse_failure(exc, ts, cfg["min_train_masks"], names, cfg["dim"])
            resumable.save_progress()
            finish_quietly(record, "failed", log)
            if message is None:  # anything else that stops Omnipose's loop: where, and the traceback kept
                logging.getLogger("train_traceback").exception("the error that stopped the training")
                epoch = (
                    recorder.finishing if recorder.finishing is not None else getattr(model, "epoch", None)
                )
                message = omnipose_failure(exc, job.version, epoch, cfg["n_epochs"])
            kept = resumable.path.is_file()
            raise TrainingStopped(
                message
                + (
                    "\nThe checkpoint of the last finished epoch is kept: a rerun continues from it."
                    if kept
                    else "\nNo epoch was finished: a rerun starts from the beginning."
                )
            ) from None
    if monitor is not None:  # the file of the best epoch, also when a resume replayed it (checkpoint)
        monitor.write_best()
    resumable.finished()
    wall = time.perf_counter() - began
    if not Path(job.model).is_file():
        raise RuntimeError(f"Omnipose did not write {job.model}")
    if monitor is not None:
        loss_curve(recorder.rows, job.curve, monitor.history, monitor.best["epoch"])
    else:
        loss_curve(recorder.rows, job.curve)
    card = model_card(job, model, ts, kwargs, tyx, origin, device, recorder.rows, monitor, log)
    card |= timing(resumable, wall, len(recorder.rows))
    write_json(job.card, card)
    record.finish("completed")
    log.info(f"model: {job.model} ({wall:.0f} s, final loss {card['final_loss']}); card: {job.card}")
    return card


def omnipose_failure(exc: BaseException, version: str, epoch: int | None, n_epochs: int) -> str:
    """One message for an error that stopped Omnipose's training loop: the model version, the epoch, the
    error, where it was raised and the line of Omnipose's code it passed through (the whole traceback goes
    to the rule's log only)."""
    frames = traceback.extract_tb(exc.__traceback__)
    omnipose = [f for f in frames if package_of(f.filename) in ("cellpose_omni", "omnipose")]
    where = f" (raised at {location(frames[-1])}" if frames else " ("
    if omnipose and omnipose[-1] is not frames[-1]:
        where += f"; in Omnipose's {location(omnipose[-1])}"
    when = f"in epoch {epoch + 1} of {n_epochs}" if epoch is not None else "before its first epoch"
    return (
        f"Training of model version {version} stopped {when}: {type(exc).__name__}: {exc}{where})\n"
        "fix: if the message names a setting (tyx, batch_size, ...) or an image, change it and run again;"
        " otherwise report it with the rule's log, which holds the whole traceback"
    )


#: Packages whose files a message names by their path below the package (others by their file name).
PACKAGES = ("cellpose_omni", "omnipose", "omnitrain", "torch")


def package_of(filename: str) -> str | None:
    return next((p for p in reversed(Path(filename).parts) if p in PACKAGES), None)


def location(frame: traceback.FrameSummary) -> str:
    """``package/file.py, line N, in function`` (the path below its package; the bare name elsewhere)."""
    parts, package = Path(frame.filename).parts, package_of(frame.filename)
    shown = parts[-1] if package is None else "/".join(parts[len(parts) - 1 - parts[::-1].index(package) :])
    return f"{shown}, line {frame.lineno}, in {frame.name}"


def kept_checkpoints(model_path: str, log: logging.Logger) -> list[str]:
    """Omnipose's per-epoch copies of the model: one cut short by a full disk or a kill (before a resume)
    is removed, not listed; the best epoch's file is no checkpoint."""
    netstr, kept = Path(model_path).name, []
    for path in sorted(Path(model_path).parent.glob(f"{netstr}*")):
        if path.name == f"{netstr}_best":
            continue
        if path == Path(model_path) or loadable(path):
            kept.append(path.name)
        else:
            path.unlink()
            log.info(f"removed {path}: it cannot be loaded (cut short by a full disk or a kill)")
    return kept


def timing(resumable: ResumableTraining, wall: float, epochs: int) -> dict:
    """The card's training time over all parts of a training (earlier parts up to their last checkpoint)."""
    total = resumable.previous_seconds + wall
    return {
        "resumed_at_epoch": resumable.start,  # 0: trained in one go
        "training_parts": resumable.parts,  # runs it took (1 + resumes)
        "wall_seconds": round(total, 2),
        "last_part_seconds": round(wall, 2),
        "seconds_per_epoch": round(total / max(epochs, 1), 3),
    }


def model_card(job, model, ts, kwargs, tyx, origin, device, rows, monitor, log) -> dict:
    """What the bare Omnipose file does not record: architecture, settings, training set, device, versions."""
    import omnipose
    import torch

    cfg = job.settings
    found = architecture(job.model)
    trainset_files = files_of([job.trainset])
    return {
        "model": str(job.model),
        "model_sha256": sha256(job.model),
        "format": "Omnipose 1.1.4 state_dict (load with cellpose_omni.models.CellposeModel)",
        "nchan": found["nchan"],
        "nclasses": found["nclasses"],
        "dim": found["dim"],
        "diam_mean": float(model.diam_mean),
        "tyx": list(tyx),
        "crops_per_epoch": max(kwargs["nimg_per_epoch"], len(ts.images)),
        "flags": {k: v for k, v in cfg.items() if k in OMNIPOSE_FLAGS},
        "settings": cfg,
        "seed": cfg["pipeline"]["seed"],
        "pretrained_model": origin,
        "training_set": {
            "folder": job.trainset,
            "images": len(ts.images),
            "objects": int(sum(len(set(lab.ravel().tolist())) - 1 for lab in ts.labels)),
            "digest": digest(trainset_files),
            "files": trainset_files,
        },
        "device": device,
        # GPUs trained on at once (torch DataParallel: Omnipose wraps the network on any GPU)
        "gpus": torch.cuda.device_count() if str(device).startswith("cuda") else 0,
        "dataparallel": job.settings["dataparallel"],
        "versions": {"torch": torch.__version__, "omnipose": omnipose.__version__},
        "epochs": len(rows),
        "final_loss": rows[-1]["loss"] if rows else None,
        "checkpoints": kept_checkpoints(job.model, log),
        "monitoring": (
            {"on": True, **monitor.summary()} if monitor else {"on": False, "reason": job.monitor_off}
        ),
        "best_file": str(job.best) if monitor else None,
    }


def loss_curve(rows, path, history=(), best_epoch=None) -> None:
    """Training loss per epoch and, when monitored, validation loss and AP (written atomically: a user may
    open it while training runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot([r["epoch"] + 1 for r in rows], [r["loss"] for r in rows], marker="o" if len(rows) < 40 else None,
            label="training loss (epoch mean)")  # fmt: skip
    if len(rows) >= 40:  # an epoch of a few batches is a noisy mean: a running mean shows the trend
        window = max(len(rows) // 20, 5)
        losses = np.array([r["loss"] for r in rows], dtype=float)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(window, len(rows) + 1), smooth, color="black", lw=1.2,
                label=f"running mean ({window} epochs)")  # fmt: skip
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Omnipose training" + (" and validation" if history else " loss"))
    ax.grid(alpha=0.3)
    if history:
        ax.set_yscale("log")  # an untrained network's validation loss can be 10^6 times its later value
        epochs = [h["epoch"] + 1 for h in history]
        ax.plot(epochs, [h["val_loss"] for h in history], marker="s", label="validation loss")
        ap = ax.twinx()
        for key, marker, colour, label in (
            ("ap50", "^", "tab:green", "validation AP@0.5"),
            ("mean_ap", "v", "tab:olive", "validation mean AP"),
        ):
            ap.plot(epochs, [h[key] for h in history], marker=marker, color=colour, label=label)
        ap.set_ylim(0, 1)
        ap.set_ylabel("validation AP")
        handles = ax.get_legend_handles_labels()[0] + ap.get_legend_handles_labels()[0]
        ax.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="center right")
        if best_epoch is not None:
            ax.axvline(best_epoch + 1, color="grey", lw=0.8, ls=":", label="best epoch")
    elif len(rows) >= 40:
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    fig.savefig(tmp, dpi=100, metadata={"Software": None})
    plt.close(fig)
    os.replace(tmp, path)
