"""The run plan: what a config asks the workflow to make, as plain Python (no Snakemake).

``Plan.build(config, workdir)`` checks the config, finds the image/label pairs with Omnipose's rules, hashes
the user's files (cached in ``<workdir>/.omnitrain/hashes.tsv``), and plans every run (an experiment and a
fold of cross-validation): its source images and their roles, the version id, folder and settings of every
step (from the step table, :mod:`omnitrain.steps`), its model files and its batches of per-image work. Runs
whose steps have equal versions share them: :meth:`Plan.run_of` names the run a job of that version belongs
to (the first run that has it). ``workflow/rules/common.smk`` turns this into Snakemake's inputs and params;
the unit tests use it directly.

Building a plan reads the config files, the user's images and label files (their bytes, once, for the hashes)
and a pretrained model file's header; it writes nothing but the hash cache.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from .batches import batch_ids
from .config import ConfigError, check_config, check_config_files
from .discovery import Discovery, discover
from .drafts import read_drafts, unedited_by_hash
from .experiments import Run as RunOfConfig
from .experiments import plan_runs, primary
from .hashing import HashCache
from .layout import batch_table, image_folder, model_file
from .pretrained import builtin
from .sources import build_sources
from .steps import (
    CHECK,
    HELDOUT,
    HELDOUT_IMAGE,
    MODEL,
    MONITOR_IMAGE,
    MONITOR_SET,
    PREDICTION,
    PRETRAINED,
    SIZE_MODEL,
    STEP,
    TRAIN_IMAGE,
    TRAINSET,
    default_targets,
    enabled_steps,
    in_folder,
    reads_of,
    registered,
    rule_benchmarks,
    settings_of,
    step_files,
    step_folders,
    step_versions,
    version_links,
)
from .training import model_name, unfit_pretrained_files
from .validation import naming_refusal

#: The conda env files whose bytes are part of the versions of the steps that run in them.
ENVS = ("preprocess", "omnipose", "export")
#: Which per-image step prepares a source image of each role.
IMAGE_STEP = {"train": TRAIN_IMAGE, "test": HELDOUT_IMAGE, "validation": MONITOR_IMAGE}
ROOT = Path(__file__).resolve().parents[1]
#: File hashes by (path, size, mtime, ctime, inode), below the working directory: a dry run reads only
#: files that changed.
HASH_CACHE = ".omnitrain/hashes.tsv"


class PlanError(ValueError):
    """The config or the input folders cannot be planned: the message says what and the fix."""


def frozen(mapping: dict) -> MappingProxyType:
    """A read-only view (the plan is built once and shared by every job's input functions)."""
    return MappingProxyType(mapping)


@dataclass(frozen=True)
class Inputs:
    """The user's files: pairs found in ``dir`` (and ``test_dir``), their sha256, the naming refusal."""

    train: Discovery
    test: Discovery | None
    sha256: MappingProxyType  # {path: sha256} of every image, label and links file
    naming_refusal: str  # "" when the folders' naming is sound

    def files_of(self, src: dict) -> dict:
        """{"image"|"label"|"links": {"path", "name" (below its folder), "sha256"} | None} of a source."""
        root = self.test.root if src["role"] == "test" and self.test else self.train.root
        pair = src["pair"]
        return {
            kind: None
            if getattr(pair, kind) is None
            else {
                "path": str(getattr(pair, kind)),
                "name": Path(getattr(pair, kind)).relative_to(root).as_posix(),
                "sha256": self.sha256[str(getattr(pair, kind))],
            }
            for kind in ("image", "label", "links")
        }

    def label_sha256(self) -> dict[str, str]:
        """{label path: sha256} of every pair's label (training and held-out folders)."""
        return {
            str(p.label): self.sha256[str(p.label)]
            for found in (self.train, self.test)
            if found is not None
            for p in found.pairs
        }


@dataclass(frozen=True)
class Run(RunOfConfig):
    """One (experiment, fold) of the config (name, experiment, fold, config: omnitrain.experiments.Run) and
    its plan: its sources' roles, step versions, folders and model files."""

    sources: MappingProxyType  # {source id: {"pair", "name", "role", "fold"}}
    train: tuple[str, ...]  # source ids by role
    test: tuple[str, ...]
    validation: tuple[str, ...]
    source_files: MappingProxyType  # {source id: its files (Inputs.files_of)}
    pretrained: tuple[str, ...]  # a model file to start from (a built-in model is a step of its own)
    data: MappingProxyType  # what the steps' versions cover of the user's files (omnitrain/steps.py "data")
    enabled: frozenset[str]
    settings: MappingProxyType  # {step: the settings its version covers}
    version: MappingProxyType  # {step: version id}, the steps that are not per image
    image_version: MappingProxyType  # {source id: version id of its prepared folder}
    folder: MappingProxyType  # {step: folder}
    file: MappingProxyType  # {step: {key: path}}, the files its Step declares (omnitrain/steps.py)
    benchmarks: MappingProxyType  # {rule: Snakemake benchmark file}
    model: str  # Omnipose's model file (no start-time suffix), below the model folder's models/
    monitored: bool  # validation images watch the training
    monitor_off: str  # why not, when not ("" when monitored)
    selected_model: str  # the model the size model, evaluation and registry use (monitor.select)
    size_model: str
    uses_size_model: bool  # held-out images are rescaled by the size model
    batches: MappingProxyType  # {batch id: [source id]} of the per-image work (omnitrain/batches.py)
    results: str
    batch_of: MappingProxyType = field(init=False)

    def __post_init__(self):
        object.__setattr__(
            self, "batch_of", frozen({s: b for b, members in self.batches.items() for s in members})
        )

    def gpus(self, step: str) -> int:
        """GPUs a job of ``step`` asks for: resources.train_gpus for a training, 1 for the others."""
        if self.config["use_gpu"] is False:
            return 0
        return self.config["resources"]["train_gpus"] if step == MODEL else 1

    @property
    def best_model(self) -> str:
        return f"{self.model}_best"

    @property
    def train_image_files(self) -> dict[str, str]:
        """The user's image file of each training source (named in messages about the images made from it)."""
        return {s: self.source_files[s]["image"]["path"] for s in self.train}

    def batch_tables(self, sids) -> list[str]:
        """The tables of the batches holding these images (each batch once, in order)."""
        return [str(batch_table(self.results, b)) for b in dict.fromkeys(self.batch_of[s] for s in sids)]

    def image_dir(self, sid: str) -> str:
        """The folder of one source image's prepared files (its version in this run)."""
        return str(image_folder(self.results, sid, self.image_version[sid]))

    def image_settings(self, sid: str) -> dict:
        return self.settings[IMAGE_STEP[self.sources[sid]["role"]]]

    def batch_params(self, batch: str) -> list[dict]:
        """Per image of a batch: what its version covers besides the files, its files and its folder."""
        return [
            {
                "source": sid,
                "name": self.sources[sid]["name"],
                "role": self.sources[sid]["role"],
                "settings": self.image_settings(sid),
                "version": self.image_version[sid],
                "folder": self.image_dir(sid),  # where this run writes it; the table names only the version
                **{k: v and v["path"] for k, v in self.source_files[sid].items()},
            }
            for sid in self.batches[batch]
        ]

    def train_inputs(self) -> dict:
        """The train job's input files (a built-in model's copy and the validation set only when used)."""
        trainset = self.file[TRAINSET]
        files = {
            "trainset": trainset["trainset"],
            "provenance": trainset["provenance"],
            "checked": self.file[CHECK]["table"],
            "pretrained": list(self.pretrained),
        }
        if PRETRAINED in self.enabled:
            files["builtin"] = self.file[PRETRAINED]["record"]
            files["builtin_weights"] = self.file[PRETRAINED]["weights"]
        if self.monitored:
            files["monitor_set"] = self.file[MONITOR_SET]["folder"]
        return files

    def prediction_inputs(self) -> dict:
        files = {"card": self.file[MODEL]["card"], "heldout": self.file[HELDOUT]["folder"]}
        if self.uses_size_model:
            files["size_heldout"] = self.file[SIZE_MODEL]["heldout"]
        return files

    def prediction_files(self) -> dict:
        """The model (and size model) files the prediction uses, beside their steps' declared outputs."""
        return {"model": self.selected_model, "size_model": self.size_model if self.uses_size_model else None}

    def register_inputs(self) -> dict:
        return {
            name: in_folder(self.folder[step], path) for name, (step, path) in registered(self.config).items()
        }

    def model_files(self) -> dict:
        """The model file the evaluation used (monitor.select) and the size model's, for the record."""
        files = {"model_file": self.selected_model}
        if SIZE_MODEL in self.enabled:
            files["size_model_file"] = self.size_model
        return files

    def registered_links(self) -> dict:
        """The parts linked from the version's folder (the validation set only when it was built)."""
        return {
            k: v for k, v in version_links(dict(self.folder)).items() if k != MONITOR_SET or self.monitored
        }

    def register_sources(self, from_test_dir: bool) -> dict:
        """Every source image of this version: role, folder and its files' names and sha256."""
        return {
            sid: {
                "name": src["name"],
                "role": src["role"],
                "from_test_dir": src["role"] == "test" and from_test_dir,
                "files": self.source_files[sid],
                **({"fold": src["fold"]} if src["fold"] else {}),
            }
            for sid, src in self.sources.items()
        }

    def targets(self) -> set[str]:
        """What ``snakemake`` builds of this run by default: the targets of its enabled steps."""
        return {in_folder(self.folder[s], path) for s, path in default_targets(self.config)}


@dataclass(frozen=True)
class Plan:
    """Every run of a config, and which run owns each shared version and batch."""

    config: dict  # the checked config
    results: str
    notes: tuple[str, ...]  # settings adjusted rather than refused (tyx rounded up, packing off in 3D)
    inputs: Inputs
    envs: MappingProxyType  # {env: sha256 of envs/<env>.yaml}
    runs: MappingProxyType  # {run name: Run}
    primary: Run  # the run `latest` points to
    owner: MappingProxyType  # {step: {version: the first run that has it}}
    batch_run: MappingProxyType  # {batch id: the first run that has it}
    hash_cache: str  # the file-hash cache of the working directory

    @classmethod
    def build(
        cls, config: dict, workdir: str | Path = ".", configfiles=(), basedir: str | Path = ROOT
    ) -> Plan:
        """The plan of ``config`` (Snakemake's merged config) run in ``workdir``; ``configfiles`` are read
        again with a strict loader. PlanError says what cannot be planned, and the fix."""
        workdir = Path(workdir)
        try:
            check_config_files(configfiles)
            notes: list[str] = []
            cfg = check_config(config, notes=notes)
            run_plans = plan_runs(cfg, notes)
        except ConfigError as exc:
            raise PlanError(str(exc)) from None
        results = cfg["pipeline"]["results"]
        hash_cache = str(workdir / HASH_CACHE)
        hashes = HashCache(hash_cache)
        inputs = find_inputs(cfg, hashes)
        envs = frozen({e: hashes.sha256(Path(basedir) / "envs" / f"{e}.yaml") for e in ENVS})
        pretrained_files = {}
        for plan in run_plans:
            path = plan.config["pretrained_model"]
            if path and not builtin(path) and Path(path).is_file():
                pretrained_files[path] = hashes.sha256(path)
        hashes.save()
        # A model file that does not fit a run's nchan, nclasses or dim (a 2D model for a 3D run, ...) is
        # refused before anything runs, naming both values; the train job checks again.
        unfit = unfit_pretrained_files({r.experiment: r.config for r in run_plans})
        if unfit:
            raise PlanError("\n".join(unfit))
        runs = {p.name: plan_run(p, inputs, envs, pretrained_files, results) for p in run_plans}
        owner: dict[str, dict[str, Run]] = {}
        batch_run: dict[str, Run] = {}
        for run in runs.values():
            for step, version in run.version.items():
                owner.setdefault(step, {}).setdefault(version, run)
            for batch in run.batches:
                batch_run.setdefault(batch, run)
        return cls(
            config=cfg,
            results=results,
            notes=tuple(notes),
            inputs=inputs,
            envs=envs,
            runs=frozen(runs),
            primary=runs[primary(run_plans).name],
            owner=frozen({s: frozen(v) for s, v in owner.items()}),
            batch_run=frozen(batch_run),
            hash_cache=hash_cache,
        )

    @property
    def any_monitored(self) -> bool:
        return any(r.monitored for r in self.runs.values())

    @property
    def any_size_model(self) -> bool:
        return any(SIZE_MODEL in r.enabled for r in self.runs.values())

    def run_of(self, step: str, version: str) -> Run:
        """The run that owns this version of ``step``; PlanError when the config has no such version."""
        if version not in self.owner.get(step, {}):
            raise PlanError(
                f"{step} version {version} (below {self.results}) is not a version of the current config:"
                " were images or settings changed while this run was going on? Run snakemake again (earlier"
                " versions are kept as they are, never rebuilt)"
            )
        return self.owner[step][version]

    def run_of_batch(self, batch: str) -> Run:
        if batch not in self.batch_run:
            raise PlanError(
                f"{batch_table(self.results, batch)} is not a batch of the current images: were images or"
                " settings changed while this run was going on? Run snakemake again (earlier versions are"
                " kept as they are, never rebuilt)"
            )
        return self.batch_run[batch]

    def batch_files(self, batch: str) -> dict[str, list[str]]:
        """The user's files of one batch's images (links only where there is a links file)."""
        run = self.run_of_batch(batch)
        files = {"images": [], "labels": [], "links": []}
        for sid in run.batches[batch]:
            for key, kind in (("images", "image"), ("labels", "label"), ("links", "links")):
                if run.source_files[sid][kind] is not None:
                    files[key].append(run.source_files[sid][kind]["path"])
        return files

    def unedited_drafts(self) -> list[str]:
        """Training labels whose bytes are still a draft's (the model's own masks, added unedited), except
        those the latest version already trained on (its change record flagged them). Said at the start of
        a run, before a training on them; reads the drafts tables and the latest version's record."""
        drafts = read_drafts(self.results)
        if not drafts:
            return []
        latest = Path(self.results) / "latest.txt"
        version = latest.read_text().strip() if latest.is_file() else ""
        try:
            known = read_json(Path(self.results) / "versions" / version / "record.json").get("files", {})
        except ValueError:  # not JSON any more (edited by hand): the registry steps say so, and the fix
            known = {}
        trained = {f["sha256"] for f in known.values()}
        labels = {path: sha for path, sha in self.inputs.label_sha256().items() if sha not in trained}
        return unedited_by_hash(labels, drafts)

    def targets(self, registry: str, leaderboard: tuple[str, ...]) -> list[str]:
        """What ``snakemake`` builds by default: every run's targets, the registry, and the leaderboard's
        files when there is more than one run."""
        targets = set().union(*(run.targets() for run in self.runs.values())) | {registry}
        if len(self.runs) > 1:
            targets |= set(leaderboard)
        return sorted(targets)


def read_json(path) -> dict:
    """A JSON file's object, or {} when there is no such file."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


def find_inputs(config: dict, hashes: HashCache) -> Inputs:
    """The pairs of ``dir`` and ``test_dir`` (Omnipose's naming rules), their hashes and naming refusal."""
    train = find_pairs(config, config["dir"])
    test = find_pairs(config, config["test_dir"]) if config["test_dir"] else None
    sha256 = {str(p): hashes.sha256(p) for found in (train, test) if found is not None for p in found.files()}
    # Naming errors (known without reading a pixel: images without labels, labels without images, two images
    # with one base name, ...) refuse every prepare_images job, whatever the target; the refusal is part of
    # the batch ids, so a parameter never changes without them (which would rerun batches in place).
    return Inputs(train, test, frozen(sha256), naming_refusal(train, test))


def find_pairs(config: dict, folder) -> Discovery:
    return discover(
        folder,
        img_filter=config["img_filter"],
        mask_filter=config["mask_filter"],
        look_one_level_down=config["look_one_level_down"],
    )


def plan_run(plan, inputs: Inputs, envs, pretrained_files: dict, results: str) -> Run:
    """One run of the plan (``plan``: an experiment and fold of omnitrain.experiments.plan_runs)."""
    cfg = plan.config
    try:
        sources = build_sources(inputs.train, inputs.test, cfg, plan.fold)
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    by_role = {role: tuple(sorted(s for s, v in sources.items() if v["role"] == role)) for role in IMAGE_STEP}
    source_files = {sid: inputs.files_of(src) for sid, src in sources.items()}
    pretrained = (
        (cfg["pretrained_model"],) if cfg["pretrained_model"] and not builtin(cfg["pretrained_model"]) else ()
    )

    def images(sids):
        return {s: {"files": source_files[s], "name": sources[s]["name"]} for s in sids}

    # What the steps' "data" names: the user's files each step reads (a source's fold only with folds).
    data = {
        "input_files": dict(inputs.sha256),
        "sources": {
            s: {"name": v["name"], "role": v["role"], **({"fold": v["fold"]} if v["fold"] else {})}
            for s, v in sources.items()
        },
        "train_images": images(by_role["train"]),
        "test_images": images(by_role["test"]),
        "validation_images": images(by_role["validation"]),
        "pretrained": [[p, pretrained_files[p]] for p in pretrained if p in pretrained_files],
        "run": {"experiment": plan.experiment, "fold": plan.fold},
    }
    enabled = {s.name for s in enabled_steps(cfg)}
    versions = step_versions(cfg, data, dict(envs))
    # One version per source image (the per-image steps); the other steps have one version each.
    image_version = {
        **versions.pop(TRAIN_IMAGE),
        **versions.pop(HELDOUT_IMAGE),
        **versions.pop(MONITOR_IMAGE, {}),
    }
    folders = step_folders(results, versions)
    # The model file: Omnipose's name (<net_type>_<folder>) without the start-time suffix; Omnipose writes it
    # (and its checkpoints) below <model folder>/models/. It is not a declared output (its name depends on
    # nchan, nclasses and dim, the card's does not): the card, written last, stands for it.
    model = str(model_file(folders[MODEL], model_name(cfg["nchan"], cfg["nclasses"], cfg["dim"], "trainset")))
    monitored, monitor_off = monitoring(cfg, enabled, plan.fold, by_role)
    selected = f"{model}_best" if monitored and cfg["monitor"]["select"] == "best" else model
    # The per-image work runs in batches of about 16 images: training, held-out and validation images are
    # never in one batch, so the training set's inputs (its batch tables) depend on the training images only.
    batches = {
        **batch_ids(list(by_role["train"]), image_version, inputs.naming_refusal),
        **batch_ids(list(by_role["test"]), image_version, inputs.naming_refusal),
        **(batch_ids(list(by_role["validation"]), image_version, inputs.naming_refusal) if monitored else {}),
    }
    return Run(
        name=plan.name,
        experiment=plan.experiment,
        fold=plan.fold,
        config=cfg,
        sources=frozen(sources),
        train=by_role["train"],
        test=by_role["test"],
        validation=by_role["validation"],
        source_files=frozen(source_files),
        pretrained=pretrained,
        data=frozen(data),
        enabled=frozenset(enabled),
        settings=frozen({s.name: settings_of(s, cfg) for s in enabled_steps(cfg)}),
        version=frozen(versions),
        image_version=frozen(image_version),
        folder=frozen(folders),
        file=frozen(step_files(results, folders)),
        benchmarks=frozen(rule_benchmarks(results, versions)),
        model=model,
        monitored=monitored,
        monitor_off=monitor_off,
        selected_model=selected,
        size_model=f"{folders.get(SIZE_MODEL)}/{Path(selected).name}_size.npy",
        uses_size_model=SIZE_MODEL in reads_of(STEP[PREDICTION], cfg),
        batches=frozen(batches),
        results=results,
    )


def monitoring(cfg: dict, enabled: set, fold: int | None, by_role: dict) -> tuple[bool, str]:
    """(whether validation images watch the training, why not). The split sets them aside only when enough
    training images remain (split.min_train); the reason names only what the model's version covers."""
    if MONITOR_SET not in enabled and fold is not None:
        return False, f"monitor.every is 0 (fold {fold}'s images are left out, not scored)"
    if MONITOR_SET not in enabled:
        return False, "monitor.every is 0 or split.validation_fraction is 0"
    if not by_role["validation"]:
        return False, (
            f"{len(by_role['train'])} training source image(s) (or groups): too few to set validation images"
            " aside (split.min_train)"
        )
    return True, ""
