"""The trained runs that the workflow tests share: their configs and their source images. tests/conftest.py
makes each once per test session (``train_run``, ``monitored_run``, ``experiments_run``, ``demo3d_run``, and
``demo_trained``: config/demo.yaml on the whole demo); a test that changes a run works on a copy
(helpers.copy_run), never on the shared folder. Each is as small as its tests allow."""

from __future__ import annotations

#: tests/workflow/test_workflow_train.py: size model on, too few images to monitor (so monitoring is off).
TRAIN_NAMES = ["colony_dense_02", "colony_dense_03", "colony_mixed_01", "sparse_02"]
TRAIN = {
    "dir": "demo",
    "n_epochs": 3,
    "tyx": [64, 64],  # tiny crops: the CPU trains these tests in seconds per epoch
    "learning_rate": 0.1,
    "RAdam": True,
    "save_every": 2,
    "train_size": True,
    "size_model": {"n_epochs": 3},
    "resources": {"train_threads": 2},
}


#: tests/workflow/test_workflow_monitor.py: monitored every 2 epochs on one validation image.
MONITORED = {
    "dir": "demo",
    "n_epochs": 4,
    "tyx": [64, 64],
    "learning_rate": 0.1,
    "RAdam": True,
    "save_every": 2,
    "save_each": True,
    "split": {"min_train": 2},  # 4 sources: 1 held out, 1 for validation, 2 to train
    "monitor": {"every": 2},
    "resources": {"train_threads": 2},
}
MONITORED_NAMES = ["colony_dense_01", "colony_dense_02", "colony_dense_03", "colony_mixed_01"]


#: tests/workflow/test_workflow_experiments.py: two experiments x two folds, one epoch each.
EXPERIMENTS = {
    "dir": "demo",
    "n_epochs": 1,
    "tyx": [64, 64],
    "batch_size": 4,
    "training": {"nimg_per_epoch": 4},
    "learning_rate": 0.1,
    "RAdam": True,
    "monitor": {"every": 1, "loss_crops": 4},  # what is scored is tested, not how well
    "experiments": {"slow_lr": {"learning_rate": 0.02}},
    "cross_validation": {"folds": 2},
    "resources": {"train_threads": 2},
}
# 5 sources: 1 held out, 4 in two folds of training images
EXPERIMENTS_NAMES = ["colony_dense_01", "colony_dense_02", "colony_dense_03", "colony_mixed_01", "sparse_02"]


#: tests/workflow/test_workflow_3d.py: the 3D demo's volumes.
# Four volumes, one held out, tiny settings: one epoch of two 32^3 crops.
DEMO3D_NAMES = ["cluster_dense_01", "cluster_dense_03", "cluster_mixed_02", "sparse3d_01"]
DEMO3D = {
    "dir": "data",
    "dim": 3,
    "diameter": 0,
    "tyx": [32, 32, 32],
    "n_epochs": 1,
    "batch_size": 2,
    "learning_rate": 0.1,
    "RAdam": True,
    "training": {"nimg_per_epoch": 2},
    "tiling": {"tile_size": 64},  # packing is left on: a 3D run turns it off with a note
    "split": {"min_test": 1, "test_fraction": 0.25},
    "monitor": {"every": 0},
    "resources": {"train_threads": 2},
}
