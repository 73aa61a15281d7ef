"""The keys of Omnipose 2's run records (imported as ``omnipose_main``), from kevinjohncutler/omnipose at
commit 871f2c93a63a14f8ca84efaa8f4715c4e2749769: src/omnipose/models/run_metadata.py (capture_run_metadata
lines 282-301, capture_hardware 85-104, capture_model_info 117-130, capture_dataset_info 150-164,
capture_provenance 65-75, compute_summary 225-250) and src/omnipose/models/train.py (the loss history, lines
375-384; _train_net's arguments, line 469)."""

OMNIPOSE_RUN = [
    "schema_version", "run_id", "name", "sweep", "tags", "status", "started_at", "finished_at", "duration_s",
    "hyperparameters", "model", "dataset", "hardware", "provenance", "summary", "notes",
]  # fmt: skip
OMNIPOSE_HARDWARE = [
    "device", "device_type", "torch_version", "python_version", "platform", "cuda_available", "mps_available",
    "n_gpu", "gpu_name", "cuda_version",
]  # fmt: skip
OMNIPOSE_MODEL = [
    "architecture", "nbase", "sz", "residual_on", "style_on", "concatenation", "dim", "kernel_size",
    "scale_factor", "dilation", "n_parameters", "data_parallel",
]  # fmt: skip
OMNIPOSE_DATASET = ["n_train", "n_test", "train_mode", "test_mode", "save_path"]
OMNIPOSE_DATASET_ARRAYS = [*OMNIPOSE_DATASET, "sample_image_shapes", "sample_mask_shapes"]
OMNIPOSE_PROVENANCE = [
    "git_sha", "git_branch", "git_describe", "git_dirty", "git_remote", "omnipose_version", "ocdkit_version",
    "argv", "cwd",
]  # fmt: skip
OMNIPOSE_SUMMARY = [
    "final_loss_raw", "min_loss_raw", "min_loss_raw_epoch", "total_batches", "total_epochs_completed",
    "n_loss_components",
]  # fmt: skip
OMNIPOSE_HISTORY = ["epoch", "batch", "train_loss", "epoch_loss", "learning_rate", "timestamp", "raw_losses"]
# _train_net's arguments but the data (which Omnipose 2 leaves out), in its order
OMNIPOSE_TRAIN_NET = [
    "save_path", "save_every", "save_each", "learning_rate", "n_epochs", "momentum", "weight_decay", "SGD",
    "batch_size", "num_workers", "nimg_per_epoch", "do_rescale", "affinity_field", "netstr", "do_autocast",
    "tyx", "timing", "tensorboard", "sym_kernels", "symmetry_weight", "compile", "norm_params",
    "channel_axis",
]  # fmt: skip
