"""Rule train: train Omnipose on the pipeline's training set (the real CellposeModel.train)."""

import logging
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from omnitrain.config import OMNIPOSE_FLAGS
from omnitrain.hashing import sha256
from omnitrain.layout import save_path_of
from omnitrain.manifest import digest, files_of, write_json
from omnitrain.monitor import Monitor, load_validation_set
from omnitrain.omni import omnipose_models
from omnitrain.resume import EarlyStopped, Interrupted, ResumableTraining
from omnitrain.runlog import get_logger, route_omnipose, run_step
from omnitrain.sparsity import source_names
from omnitrain.training import (
    DEFAULT_TYX,
    EpochRecorder,
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


def loss_curve(rows, path, history=(), best_epoch=None) -> None:
    """Training loss per epoch and, when monitored, validation loss and AP (written atomically: a user may
    open it while training runs)."""
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


def main(sm) -> None:
    import torch

    models = omnipose_models()
    import omnipose

    log = get_logger(sm.log[0])
    route_omnipose(sm.log[0])
    cfg = sm.params.settings
    out = sm.output
    # The model file and the best epoch's (when monitored): written before the card, which stands for them
    model_path, best_path = sm.params.model, sm.params.best
    try:
        gpu, device = resolve_device(cfg["use_gpu"])
        pretrained, origin = starting_model(cfg, sm.input.get("builtin"), sm.input.get("builtin_weights"))
        if pretrained:
            check_pretrained(pretrained, cfg["nchan"], cfg["nclasses"], cfg["dim"])
            log.info(f"fine-tuning {origin['name']}: nchan, nclasses and dim match the config")
        ts = load_training_set(sm.input.trainset)
        disagreements = omnipose_disagreements(sm.input.trainset)
        if disagreements:
            raise TrainingError(
                "Omnipose's own loader (cellpose_omni.io) disagrees with the pipeline about the training set"
                f" {sm.input.trainset}: {'; '.join(disagreements)}. This is a bug of the pipeline: report it"
            )
    except TrainingError as exc:
        sys.stderr.write(f"\nTraining cannot start: {exc}\n")
        log.info(f"Training cannot start: {exc}")
        sys.exit(1)
    torch.set_num_threads(sm.threads)
    log.info(f"device: {device}")
    log.info(f"training set: {len(ts.images)} image(s) from {sm.input.trainset}")
    log.info("Omnipose's cellpose_omni.io finds and loads the same pairs as the pipeline")
    log.info(epoch_meaning(cfg, len(ts.images), len(sm.params.sources)))
    seed_everything(cfg["pipeline"]["seed"])
    model = models.CellposeModel(**model_kwargs(cfg, gpu, pretrained))
    if fix_boundary_loss(model):
        log.info("nclasses 3: the loss's boundary term is taken on logits (Omnipose 1.1.4 crashes otherwise)")
    if set_symmetry(model, cfg["training"]["symmetry"]):
        log.info("training.symmetry false: Omnipose's flip-symmetry term is off (one forward pass a step)")
    save_path = str(save_path_of(model_path))
    netstr = Path(model_path).name
    kwargs = train_kwargs(cfg, save_path, netstr, len(sm.params.sources))
    # Full checkpoints beside the model (not a declared output: Snakemake keeps it when the job fails);
    # SIGTERM (SLURM's warning before the time limit) saves the last finished epoch and stops.
    resumable = ResumableTraining(
        model,
        Path(save_path) / "checkpoint.pt",
        sm.params.version,
        log,
        replay_shortcuts=not cfg["dataloader"],
    )
    signal.signal(signal.SIGTERM, resumable.request_stop)
    monitor, monitoring = None, {"on": False, "reason": sm.params.monitor_off}
    if sm.input.get("monitor_set"):
        mon = cfg["monitor"]
        monitor = Monitor(
            model, load_validation_set(sm.input.monitor_set), every=mon["every"], n_epochs=cfg["n_epochs"],
            metric=mon["metric"], patience=mon["patience"],
            tyx=kwargs["tyx"] or DEFAULT_TYX[cfg["dim"]],
            channel_axis=0 if cfg["nchan"] > 1 else None,
            diameter=cfg["diameter"], best_path=best_path, log=log, loss_crops=mon["loss_crops"],
            on_scored=lambda: loss_curve(recorder.rows, out.curve, monitor.history, monitor.best["epoch"]),
        )  # fmt: skip
        resumable.attach_monitor(monitor, failure=lambda: recorder.failure)
        log.info(
            f"monitoring every {mon['every']} epoch(s) on {len(monitor.vs.images)} validation image(s)"
            f" ({len(monitor.crops)} of {monitor.grid_crops} crop(s) for the loss); the best epoch by"
            f" {mon['metric']} is kept"
        )
    elif "split.min_train" in sm.params.monitor_off:  # wanted, but too few images to set any aside
        log.info(f"WARNING monitoring is off: {sm.params.monitor_off}")
    else:
        log.info(f"monitoring is off: {sm.params.monitor_off}")
    on_epoch = monitor.on_epoch if monitor else None
    recorder = EpochRecorder(model, cfg["n_epochs"], out.losses, log, on_epoch=on_epoch)
    omnipose_log = logging.getLogger("cellpose_omni.core")
    omnipose_log.addHandler(recorder)
    start = time.perf_counter()
    try:
        model.train(ts.images, ts.labels, ts.links, train_files=ts.files, **kwargs)
    except Interrupted as exc:
        sys.stderr.write(f"\n{exc}: run the workflow again to continue from there\n")
        sys.exit(1)
    except EarlyStopped:
        # The network holds the weights of the last monitored epoch: they are the model ("last").
        resumable.save_weights(model_path)
    except ValueError as exc:
        names = source_names(sm.input.provenance, sm.params.sources)
        message = sparse_failure(exc, ts, cfg["min_train_masks"], names, cfg["dim"])
        if message is None:
            raise
        resumable.save_progress()
        log.info(message)
        sys.stderr.write(f"\n{message}\nThe checkpoint of the last finished epoch is kept.\n")
        sys.exit(1)
    finally:
        omnipose_log.removeHandler(recorder)
        recorder.close()
    if recorder.failure is not None:
        raise recorder.failure
    if monitor is not None:  # the file of the best epoch, also when a resume replayed it (checkpoint)
        monitor.write_best()
    resumable.finished()
    wall = time.perf_counter() - start
    if not Path(model_path).is_file():
        raise RuntimeError(f"Omnipose did not write {model_path}")
    total = resumable.previous_seconds + wall
    # Omnipose's per-epoch copies: one cut short by a full disk before a resume is removed, not listed.
    checkpoints = []
    for path in sorted(Path(model_path).parent.glob(f"{netstr}*")):
        if path.name == f"{netstr}_best":  # the best epoch's model, not a checkpoint
            continue
        if path == Path(model_path) or loadable(path):
            checkpoints.append(path.name)
        else:
            path.unlink()
            log.info(f"removed {path}: it cannot be loaded (cut short by a full disk or a kill)")
    found = architecture(model_path)
    if monitor:
        loss_curve(recorder.rows, out.curve, monitor.history, monitor.best["epoch"])
    else:
        loss_curve(recorder.rows, out.curve)
    trainset_files = files_of([sm.input.trainset])
    card = {
        "model": str(model_path),
        "model_sha256": sha256(model_path),
        "format": "Omnipose 1.1.4 state_dict (load with cellpose_omni.models.CellposeModel)",
        "nchan": found["nchan"],
        "nclasses": found["nclasses"],
        "dim": found["dim"],
        "diam_mean": float(model.diam_mean),
        "tyx": list(kwargs["tyx"] or DEFAULT_TYX[cfg["dim"]]),
        "crops_per_epoch": max(kwargs["nimg_per_epoch"], len(ts.images)),
        "flags": {k: v for k, v in cfg.items() if k in OMNIPOSE_FLAGS},
        "settings": cfg,
        "seed": cfg["pipeline"]["seed"],
        "pretrained_model": origin,
        "training_set": {
            "folder": sm.input.trainset,
            "images": len(ts.images),
            "objects": int(sum(len(set(lab.ravel().tolist())) - 1 for lab in ts.labels)),
            "digest": digest(trainset_files),
            "files": trainset_files,
        },
        "device": device,
        "versions": {"torch": torch.__version__, "omnipose": omnipose.__version__},
        "epochs": len(recorder.rows),
        "resumed_at_epoch": resumable.start,  # 0: trained in one go
        "training_parts": resumable.parts,  # runs it took (1 + resumes)
        "wall_seconds": round(total, 2),  # all parts: earlier ones up to their last checkpoint
        "last_part_seconds": round(wall, 2),
        "seconds_per_epoch": round(total / max(len(recorder.rows), 1), 3),
        "final_loss": recorder.rows[-1]["loss"] if recorder.rows else None,
        "checkpoints": checkpoints,
        "monitoring": {"on": True, **monitor.summary()} if monitor else monitoring,
        "best_file": str(best_path) if monitor else None,
    }
    write_json(out.card, card)
    log.info(f"model: {model_path} ({wall:.0f} s, final loss {card['final_loss']}); card: {out.card}")


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
