"""The pipeline's steps, declared once: rules, scripts, envs, what each reads, settings and folders.

Everything else is derived from :data:`STEPS`: each step's version id (:func:`step_versions`), its
folder, its rules' logs and benchmark files (:func:`rule_logs`, :func:`rule_benchmarks`), the
settings its rules receive (:func:`settings_of`), the links of a registered version, the inputs of
``register`` and the default targets (:func:`registered`, :func:`default_targets`).
omnitrain/plan.py applies this table to a config's runs and workflow/rules/common.smk adapts the plan to
Snakemake; the rule files only name paths inside the folders it gives them.

A step's version covers its code (the scripts of its rules and the omnitrain modules they import,
:func:`omnitrain.hashing.code_digest`), its rules' conda envs, its settings, the versions of the steps
it reads, and its data (the user's files it reads). Its rules get exactly those settings as
``params.settings`` and read nothing else of the config, so a version covers everything its scripts
read: a key missing from a step's ``settings`` fails with KeyError in its script instead of being
silently left out of the version.

Adding a step: one :class:`Step` entry here (its rules, settings, reads, folder, targets), its rules
in a workflow/rules/*.smk file, and one thin script per rule (docs/development.md, "How to add a step").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from string import Formatter

from .hashing import code_digest, version_id
from .layout import IMAGE_FOLDER
from .pretrained import builtin


@dataclass(frozen=True)
class Rule:
    """One Snakemake rule of a step: its script in workflow/scripts and its env in envs/."""

    name: str
    script: str
    env: str
    benchmark: bool = False  # Snakemake benchmark file (seconds, peak memory) for the version manifest


def always(config: dict) -> bool:
    return True


def train_size(config: dict) -> bool:
    return bool(config["train_size"])


def monitoring(config: dict) -> bool:
    """Training is monitored on validation images: a cross-validation fold's (omnitrain/experiments.py),
    or those the split sets aside when it can (omnitrain/split.py)."""
    in_fold = config.get("run", {}).get("fold") is not None
    return config["monitor"]["every"] > 0 and (in_fold or config["split"]["validation_fraction"] > 0)


def builtin_start(config: dict) -> bool:
    """Training starts from one of Omnipose's built-in models, downloaded by its own step."""
    return builtin(config["pretrained_model"]) is not None


def use_size_model(config: dict) -> bool:
    """Held-out images are rescaled by the size model (only meaningful with a nonzero diameter)."""
    return bool(config["train_size"] and config["diameter"] > 0 and config["evaluation"]["use_size_model"])


@dataclass(frozen=True)
class Step:
    """One versioned step.

    ``settings`` are config keys (``a.b`` for nested ones) its rules read; ``reads`` the steps whose
    versions it covers (``read_if`` makes a read depend on the config); ``data`` the name of the
    parse-time data it covers (the user's files); ``per_image`` steps have one version per source
    image. ``folder`` is formatted with the versions (per image: ``source`` and ``version``).
    ``files`` names, once, the files of its folder by key ("" is the folder itself): the rules declare
    their outputs by these keys, and so do ``targets`` (built by default) and ``registers`` (register's
    input names to keys); ``link`` puts the folder into the registered version's folder.
    """

    name: str
    rules: tuple[Rule, ...]
    folder: str
    settings: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    read_if: dict[str, Callable[[dict], bool]] = field(default_factory=dict)
    data: str | None = None
    per_image: bool = False
    enabled: Callable[[dict], bool] = always
    files: dict[str, str] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    registers: dict[str, str] = field(default_factory=dict)
    link: bool = True

    def file(self, key: str) -> str:
        """The name of one of its files (KeyError names the step's keys)."""
        if key not in self.files:
            raise KeyError(f"step {self.name} has no file {key!r} (its files: {', '.join(self.files)})")
        return self.files[key]

    @property
    def scripts(self) -> tuple[str, ...]:
        return tuple(sorted({r.script for r in self.rules}))

    @property
    def envs(self) -> tuple[str, ...]:
        return tuple(sorted({r.env for r in self.rules}))


#: Step names: the rules, the plan and the library name steps by these (a misspelt one fails at once).
VALIDATION = "validation"
SPLIT = "split"
TRAIN_IMAGE = "train_image"
HELDOUT_IMAGE = "heldout_image"
MONITOR_IMAGE = "monitor_image"
MONITOR_SET = "monitor_set"
TRAINSET = "trainset"
CHECK = "check"
HELDOUT = "heldout"
PRETRAINED = "pretrained"
MODEL = "model"
SIZE_MODEL = "size_model"
PREDICTION = "prediction"
EVALUATION = "evaluation"
VERSION = "version"

# Keys that decide how channels are selected (omnitrain/channels.py).
CHANNELS = ("dim", "channel_axis", "chan", "chan2", "all_channels", "nchan", "channels")
# The training flags (omnipose CLI names) and the pipeline's own training settings.
TRAINING = (
    "pretrained_model", "nchan", "nclasses", "dim", "diameter", "learning_rate", "RAdam", "batch_size",
    "n_epochs", "tyx", "save_every", "save_each", "dataloader", "num_workers", "min_train_masks",
    "use_gpu", "pipeline.seed", "training", "tiling.keep_empty",
    # over several GPUs, each holds part of a batch (its own BatchNorm statistics): another network
    "dataparallel", "resources.train_gpus",
)  # fmt: skip

PREPARE = Rule("prepare_images", "prepare_images.py", "preprocess")

STEPS: tuple[Step, ...] = (
    Step(
        VALIDATION,
        (Rule("validate_inputs", "validate_inputs.py", "preprocess"),),
        folder="validation/{validation}",
        settings=("dir", "test_dir", "img_filter", "mask_filter", "look_one_level_down", "tyx", "validation")
        + CHANNELS,
        data="input_files",
        files={"table": "inputs.tsv", "summary": "inputs_summary.txt"},
        targets=("summary",),
        registers={"validation": "table"},
    ),
    Step(
        SPLIT,
        (Rule("split", "split.py", "preprocess"),),
        folder="splits/{split}",
        settings=("split", "pipeline.seed", "test_dir", "monitor.every"),
        reads=("validation",),  # it waits for the verdict on the inputs (a gate, see omnitrain/plan.py)
        data="sources",
        files={"table": "split.tsv"},
        registers={"split": "table"},
    ),
    Step(
        TRAIN_IMAGE,
        (PREPARE,),
        folder=IMAGE_FOLDER,
        settings=(*CHANNELS, "validation.max_split_fraction", "tiling", "packing"),
        data="train_images",
        per_image=True,
        link=False,
    ),
    Step(
        HELDOUT_IMAGE,
        (PREPARE,),
        folder=IMAGE_FOLDER,
        settings=(*CHANNELS, "validation.max_split_fraction"),
        data="test_images",
        per_image=True,
        link=False,
    ),
    Step(
        MONITOR_IMAGE,
        (PREPARE,),
        folder=IMAGE_FOLDER,
        settings=(*CHANNELS, "validation.max_split_fraction"),
        data="validation_images",
        per_image=True,
        enabled=monitoring,
        link=False,
    ),
    Step(
        MONITOR_SET,
        (Rule("monitor_set", "heldout_set.py", "preprocess"),),
        folder="monitor_sets/{monitor_set}",
        reads=("monitor_image",),
        files={"folder": ""},
        enabled=monitoring,
    ),
    Step(
        TRAINSET,
        (Rule("pack", "pack.py", "preprocess", benchmark=True), Rule("preview", "preview.py", "preprocess")),
        folder="trainsets/{trainset}",
        settings=("tiling", "packing"),
        reads=("train_image",),
        files={
            "trainset": "trainset",
            "provenance": "provenance.tsv",
            "stats": "packing_stats.json",
            "preview": "preview.png",
        },
        targets=("preview",),
        registers={"trainset": "stats"},
    ),
    Step(
        CHECK,
        (Rule("validate_training_set", "validate_training_set.py", "omnipose"),),
        folder="trainsets/{trainset}/checks/{check}",
        settings=(
            "tyx",
            "validation",
            "tiling.keep_empty",
            *CHANNELS,
            "diameter",
            "pretrained_model",  # a built-in's diam_mean (omnitrain/pretrained.py)
            "n_epochs",
            "training.nimg_per_epoch",
            "batch_size",
            "min_train_masks",
        ),  # fmt: skip
        reads=("trainset",),
        files={"table": "validation.tsv", "summary": "validation_summary.txt"},
        targets=("summary",),
        registers={"checked": "table"},
    ),
    Step(
        HELDOUT,
        (Rule("heldout_set", "heldout_set.py", "preprocess"),),
        folder="heldout/{heldout}",
        reads=("heldout_image",),
        files={"folder": ""},
        targets=("folder",),
    ),
    Step(
        PRETRAINED,
        # A local rule (workflow/rules/train.smk): GPU nodes of a cluster often have no internet.
        (Rule("download_pretrained", "download_pretrained.py", "omnipose"),),
        folder="pretrained/{pretrained}",
        settings=("pretrained_model", "nchan", "nclasses", "dim"),
        enabled=builtin_start,
        files={"weights": "weights", "record": "pretrained.json"},
        registers={"pretrained": "record"},
    ),
    Step(
        MODEL,
        (Rule("train", "train.py", "omnipose", benchmark=True),),
        folder="models/{model}",
        # monitor.select is not here: which file is used is decided downstream (same training)
        settings=(*TRAINING, "monitor.every", "monitor.metric", "monitor.patience", "monitor.loss_crops"),
        # train reads the check's table: a new check is a new model version
        reads=("trainset", "check", "monitor_set", "pretrained"),
        data="pretrained",
        files={"card": "model_card.json", "losses": "losses.tsv", "curve": "loss_curve.png"},
        targets=("card", "curve"),
        registers={"card": "card"},
    ),
    Step(
        SIZE_MODEL,
        (Rule("fit_size_model", "fit_size_model.py", "omnipose", benchmark=True),),
        folder="size_models/{size_model}",
        settings=(
            "size_model",
            "diameter",
            "pretrained_model",
            "batch_size",
            "use_gpu",
            "pipeline.seed",
            "monitor.select",
        ),  # fmt: skip
        reads=("model", "trainset", "heldout"),
        enabled=train_size,
        files={"heldout": "size_heldout.tsv"},
        targets=("heldout",),
        registers={"size_heldout": "heldout"},
    ),
    Step(
        PREDICTION,
        (Rule("predict_heldout", "predict_heldout.py", "omnipose", benchmark=True),),
        folder="predictions/{prediction}",
        settings=(
            "evaluation.mask_threshold",
            "evaluation.flow_threshold",
            "evaluation.niter",
            "evaluation.use_size_model",
            "use_gpu",
            "train_size",
            "diameter",
            "monitor.select",
        ),  # fmt: skip
        reads=("model", "heldout", "size_model"),
        read_if={"size_model": use_size_model},
        files={"folder": ""},
    ),
    Step(
        EVALUATION,
        (Rule("evaluate", "evaluate.py", "omnipose", benchmark=True),),
        folder="evaluations/{evaluation}",
        settings=("evaluation.overlay_images",),
        reads=("heldout", "prediction"),
        files={
            "per_threshold": "per_image_per_threshold.tsv",
            "per_image": "per_image.tsv",
            "summary": "summary.tsv",
            "scores": "scores.json",
            "ap_curve": "ap_curve.png",
            "overlays": "overlays.png",
        },
        targets=("summary", "ap_curve", "overlays"),
        registers={"scores": "scores", "per_image": "per_image"},
    ),
    Step(
        VERSION,
        (
            Rule("register", "register.py", "preprocess"),
            Rule("registry", "registry.py", "preprocess"),
            Rule("leaderboard", "leaderboard.py", "preprocess"),
        ),
        folder="versions/{version}",
        settings=("train_size", "monitor.select"),
        reads=(
            "validation",
            "split",
            "trainset",
            "check",
            "heldout",
            "monitor_set",
            "pretrained",
            "model",
            "size_model",
            "prediction",
            "evaluation",
        ),  # fmt: skip
        data="run",  # experiment and fold: each run has its own record, even when all its steps are shared
        files={
            "record": "record.json",
            "manifest": "manifest.json",
            "changes_json": "changes.json",
            "changes": "changes.md",
            "report": "report.rst",  # the first page of `snakemake --report` for this version
        },
        targets=("record",),
        link=False,
    ),
)

#: The rules that apply a registered version to new images (``snakemake segment``, omnitrain/segmentation.py).
#: They are no steps of a training run: what they compute is keyed by the version and the images, and
#: their settings are the version's own, from its record, not the config's.
SEGMENT_RULES: tuple[Rule, ...] = (
    Rule("segment_images", "segment_images.py", "omnipose"),
    Rule("segment_set", "segment_set.py", "preprocess"),
    Rule("segment_latest", "segment_latest.py", "preprocess"),
)
#: The rules that package a registered version for the BioImage Model Zoo (``snakemake export``,
#: omnitrain/export.py): keyed, like the segment rules, by the version and their own settings.
EXPORT_RULES: tuple[Rule, ...] = (
    Rule("export_model", "export_model.py", "export"),
    Rule("export_latest", "export_latest.py", "preprocess"),
)

STEP = {s.name: s for s in STEPS}
#: The step a rule belongs to (prepare_images belongs to both per-image steps: it has no single one).
STEP_OF_RULE = {r.name: s.name for s in STEPS if not s.per_image for r in s.rules}


def enabled_steps(config: dict) -> list[Step]:
    return [s for s in STEPS if s.enabled(config)]


def reads_of(step: Step, config: dict) -> list[str]:
    """The steps whose versions ``step`` covers under ``config`` (disabled steps left out)."""
    return [r for r in step.reads if STEP[r].enabled(config) and step.read_if.get(r, always)(config)]


def project(config: dict, keys) -> dict:
    """The part of ``config`` named by ``keys`` (``a.b`` for nested keys), nested as in the config."""
    out: dict = {}
    for key in keys:
        *parents, last = key.split(".")
        source, target = config, out
        for part in parents:
            source = source[part]
            target = target.setdefault(part, {})
        target[last] = source[last]
    return out


def settings_of(step: Step, config: dict) -> dict:
    """What the step's rules read of the config (and all that its version covers of it).

    The registered version's settings also hold every other enabled step's settings, under "steps"."""
    settings = project(config, step.settings)
    if step.name == "version":
        settings["steps"] = {s.name: settings_of(s, config) for s in enabled_steps(config) if s is not step}
    return settings


def step_versions(config: dict, data: dict, envs: dict[str, str], code=code_digest) -> dict:
    """{step: version id} of every enabled step, per-image steps as {source id: version id}.

    ``data`` holds what the steps' ``data`` names: {name: value}, for per-image steps {source id:
    record}; ``envs`` the digest of each conda env file.
    """
    versions: dict = {}
    for step in enabled_steps(config):
        parts = (
            step.name,
            code(*step.scripts),
            {e: envs[e] for e in step.envs},
            settings_of(step, config),
            {r: versions[r] for r in reads_of(step, config)},
        )
        if step.per_image:
            versions[step.name] = {sid: version_id(*parts, rec) for sid, rec in data[step.data].items()}
        else:
            versions[step.name] = version_id(*parts, data.get(step.data) if step.data else None)
    return versions


def downstream(names, config: dict) -> set[str]:
    """The enabled steps whose versions depend on any of ``names``, these included."""
    found = set(names)
    for step in enabled_steps(config):
        if any(r in found for r in reads_of(step, config)):
            found.add(step.name)
    return found


def step_folders(results: str, versions: dict) -> dict[str, str]:
    """{step: its folder} of the enabled steps that are not per image."""
    return {
        name: f"{results}/{STEP[name].folder.format(**versions)}"
        for name, v in versions.items()
        if not STEP[name].per_image
    }


def folder_wildcards(step: str) -> list[str]:
    """The versions a step's folder names, outermost first (``check``: trainset, check)."""
    return [name for _, name, _, _ in Formatter().parse(STEP[step].folder) if name]


def rule_log_patterns(results: str) -> dict[str, str]:
    """{rule: its log file}, ``<results>/logs/<rule>/{<its step>}.log`` with the versions as wildcards (all
    that its folder names, as Snakemake wants: ``{trainset}_{check}.log`` for the check)."""
    return {
        rule: f"{results}/logs/{rule}/" + "_".join(f"{{{w}}}" for w in folder_wildcards(step)) + ".log"
        for rule, step in STEP_OF_RULE.items()
    }


def rule_benchmarks(results: str, versions: dict) -> dict[str, str]:
    """{rule: its Snakemake benchmark file}, for the rules that keep one."""
    return {
        r.name: f"{results}/benchmarks/{r.name}/{versions[s.name]}.tsv"
        for s in STEPS
        if s.name in versions and not s.per_image
        for r in s.rules
        if r.benchmark
    }


def results_of(file_in_folder: str, step: str) -> str:
    """The results folder, from a file directly inside a step's folder (as Snakemake's lint wants:
    a path parameter derived from an output, not a hard-coded prefix)."""
    return str(Path(file_in_folder).parents[len(Path(STEP[step].folder).parts)])


def version_links(folders: dict[str, str]) -> dict[str, str]:
    """{name: folder} of the parts linked from a registered version's folder."""
    return {name: folder for name, folder in folders.items() if STEP[name].link}


def step_files(results: str, folders: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    """{step: {key: path}} of the steps' declared files: below ``folders`` (a run's, {step: folder}), or with
    the versions as Snakemake wildcards (the rules' paths) when none are given."""
    folders = folders or {s.name: f"{results}/{s.folder}" for s in STEPS if not s.per_image}
    return {
        name: {key: in_folder(folder, file) for key, file in STEP[name].files.items()}
        for name, folder in folders.items()
    }


def in_folder(folder: str, name: str) -> str:
    """A file of a step's folder ("" names the folder itself)."""
    return f"{folder}/{name}" if name else folder


def registered(config: dict) -> dict[str, tuple[str, str]]:
    """register's inputs: {name: (step, file of its folder)} of every enabled step."""
    return {k: (s.name, s.file(v)) for s in enabled_steps(config) for k, v in s.registers.items()}


def default_targets(config: dict) -> list[tuple[str, str]]:
    """(step, file of its folder) of what ``snakemake`` builds by default."""
    return [(s.name, s.file(t)) for s in enabled_steps(config) for t in s.targets]
