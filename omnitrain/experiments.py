"""Experiments and cross-validation folds: the runs one config asks for.

A run is one (experiment, fold): the config with the experiment's overrides, and the fold whose training
images it monitors on (None: the usual split). Every run gets its own chain of step versions
(omnitrain/steps.py); steps whose versions are equal in two runs are the same files, built once, so two
experiments that differ only in learning rate share one training set.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from .config import ConfigError, check_config

#: Keys an experiment cannot change: they decide the images and the held-out split, which every experiment
#: shares (its scores are comparable only on the same held-out images), or they configure the runs themselves.
#: dim too: the images are volumes or they are not (and a 3D base config has packing turned off).
SHARED_KEYS = (
    "dir", "test_dir", "img_filter", "mask_filter", "look_one_level_down", "dim", "split", "pipeline",
    "experiments", "cross_validation", "leaderboard", "segment_dir", "segment_model", "segment_drafts",
    "export",
)  # fmt: skip
BASE = "base"
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Run:
    """One training to make: its name (``base``, ``radam``, ``radam/fold2``), experiment, fold, config."""

    name: str
    experiment: str
    fold: int | None
    config: dict


def deep_merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` on top: sections merged key by key, other values replaced."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def experiment_configs(config: dict, notes: list[str] | None = None) -> dict[str, dict]:
    """{experiment: its checked config}, ``base`` first; ConfigError lists every problem of every experiment,
    each named ``experiments.<name>``; ``notes`` (when given) gets what was adjusted in an experiment."""
    out, msgs = {BASE: config}, []
    for name, overrides in config["experiments"].items():
        where = f"experiments.{name}"
        if not isinstance(name, str) or not NAME.fullmatch(name) or name == BASE:
            msgs.append(
                f"{where}: an experiment's name is a word of letters, digits, '_' or '-' starting with a"
                f" letter, and not '{BASE}' (the config itself): rename it"
            )
            continue
        shared = [k for k in overrides if k in SHARED_KEYS]
        if shared:
            msgs.append(
                f"{where}: {', '.join(shared)} cannot differ between experiments (every experiment trains on"
                " the same images and is scored on the same held-out images; the segment and export targets"
                " name the version they use): set it at the top level"
            )
            continue
        try:
            found: list[str] = []
            out[name] = check_config(deep_merge(config, overrides), notes=found)
            if notes is not None:  # the base config's own notes were said already
                notes.extend(f"{where}: {n}" for n in found if n not in notes)
        except ConfigError as exc:
            msgs += [f"{where}: {m}" for m in exc.problems]
    if msgs:
        body = "\n".join(f"  - {m}" for m in msgs)
        raise ConfigError(f"Invalid configuration ({len(msgs)} problem(s)); nothing was run:\n{body}", msgs)
    return out


def plan_runs(config: dict, notes: list[str] | None = None) -> list[Run]:
    """Every run of a checked config: per experiment, one per fold (with cross-validation) and/or one on the
    usual split (without folds, or with ``refit``). Each run's config has ``run: {experiment, fold}``;
    ``notes`` gets what was adjusted in an experiment's config."""
    folds = config["cross_validation"]["folds"]
    runs = []
    for name, cfg in experiment_configs(config, notes).items():
        plan = [(f"{name}/fold{k}", k) for k in range(1, folds + 1)]
        if not folds or config["cross_validation"]["refit"]:
            plan.append((name, None))
        for run_name, fold in plan:
            run_cfg = copy.deepcopy(cfg)
            run_cfg["run"] = {"experiment": name, "fold": fold}
            runs.append(Run(run_name, name, fold, run_cfg))
    return runs


def primary(runs: list[Run]) -> Run:
    """The run ``latest`` points to: the base experiment on the usual split, else its first fold."""
    return next((r for r in runs if r.experiment == BASE and r.fold is None), runs[0])
