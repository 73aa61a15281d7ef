"""The step table: versions follow settings and reads, settings are config keys, scripts read no config."""

from __future__ import annotations

import ast
import copy
import re

import pytest
import yaml
from helpers import ROOT

from omnitrain import steps
from omnitrain.config import check_config, load_schema
from omnitrain.steps import (
    EXPORT_RULES,
    SEGMENT_RULES,
    STEP,
    STEPS,
    downstream,
    project,
    settings_of,
    step_versions,
)

ENVS = {"preprocess": "p" * 64, "omnipose": "o" * 64}


def data():
    image = {"path": "d/a.tif", "name": "a.tif", "sha256": "1" * 64}
    files = {"image": image, "label": None, "links": None}
    return {
        "input_files": {"d/a.tif": "1" * 64, "d/b.tif": "2" * 64, "d/c.tif": "4" * 64},
        "sources": {
            "a": {"name": "a", "role": "train"},
            "b": {"name": "b", "role": "test"},
            "c": {"name": "c", "role": "validation"},
        },
        "train_images": {"a": {"files": files, "name": "a"}},
        "test_images": {"b": {"files": {**files, "image": {**image, "sha256": "2" * 64}}, "name": "b"}},
        "validation_images": {"c": {"files": {**files, "image": {**image, "sha256": "4" * 64}}, "name": "c"}},
        "pretrained": [],
    }


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    return check_config({**base, "dir": str(folder), "train_size": True, "diameter": 30})


def changed(value):
    """Another value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return [*value, value[-1] if value else 1]
    if isinstance(value, dict):
        return {**value, "_changed": 1}
    return 7  # None


def set_key(config, key, value):
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node[part]
    node[last] = value


def flat(versions):
    """{step or step/source: version} so that per-image versions are compared one by one."""
    out = {}
    for name, v in versions.items():
        if isinstance(v, dict):
            out.update({f"{name}/{sid}": x for sid, x in v.items()})
        else:
            out[name] = v
    return out


def covers(step, key) -> bool:
    """The step's settings hold ``key``, or a section it is in (``tiling`` holds ``tiling.keep_empty``).

    (A step holding only part of a section, ``validation.max_split_fraction``, does not see the new
    key that :func:`changed` adds to the section.)"""
    return any(key == k or key.startswith(k + ".") for k in step.settings)


def every_setting():
    return sorted({key for s in STEPS for key in s.settings})


@pytest.mark.parametrize("key", every_setting())
def test_a_setting_changes_its_steps_and_their_downstream_versions_only(config, key):
    before = flat(step_versions(config, data(), ENVS))
    edited = copy.deepcopy(config)
    value = project(config, [key])
    for part in key.split("."):
        value = value[part]
    set_key(edited, key, changed(value))
    after = flat(step_versions(edited, data(), ENVS))
    owners = {s.name for s in STEPS if covers(s, key) and s.enabled(config) and s.enabled(edited)}
    expected = downstream(owners, config) | {"version"}
    moved = {name.split("/")[0] for name in before if name in after and before[name] != after[name]}
    assert moved == expected, f"{key}: changed {sorted(moved)}, expected {sorted(expected)}"


def test_one_edited_image_changes_its_own_version_and_what_reads_it(config):
    before = flat(step_versions(config, data(), ENVS))
    edited = data()
    edited["train_images"]["a"]["files"]["image"]["sha256"] = "3" * 64
    after = flat(step_versions(config, edited, ENVS))
    moved = {name for name in before if before[name] != after[name]}
    assert moved == {
        "train_image/a", "trainset", "check", "model", "size_model", "prediction", "evaluation", "version"
    }  # fmt: skip
    assert before["heldout_image/b"] == after["heldout_image/b"] and before["heldout"] == after["heldout"]


def test_code_of_one_step_changes_that_step_and_downstream(config):
    def code(*scripts):
        return "new" if "evaluate.py" in scripts else "old"

    base = step_versions(config, data(), ENVS, code=lambda *s: "old")
    after = step_versions(config, data(), ENVS, code=code)
    assert {k for k in base if base[k] != after[k]} == {"evaluation", "version"}


def test_the_size_model_is_no_step_when_train_size_is_off(config):
    off = {**config, "train_size": False}
    versions = step_versions(off, data(), ENVS)
    assert "size_model" not in versions and "size_model" not in steps.registered(off)
    assert all(step != "size_model" for step, _ in steps.default_targets(off))
    assert "size_model" not in settings_of(STEP["version"], off)["steps"]
    # Held-out rescaling by the size model needs a diameter: without one the evaluation does not read it.
    assert "size_model" not in steps.reads_of(STEP["prediction"], {**config, "diameter": 0})
    assert "size_model" in steps.reads_of(STEP["prediction"], config)


def schema_paths(schema, prefix=""):
    out = set()
    for key, sub in schema.get("properties", {}).items():
        out.add(prefix + key)
        out |= schema_paths(sub, f"{prefix}{key}.")
    return out


def test_every_setting_is_a_config_key_the_schema_knows():
    known = schema_paths(load_schema())
    for step in STEPS:
        unknown = set(step.settings) - known
        assert not unknown, f"step {step.name}: {sorted(unknown)} are not config keys"


def test_settings_are_the_config_projected_onto_the_keys(config):
    got = project(config, ["nchan", "pipeline.seed", "tiling.keep_empty"])
    assert got == {
        "nchan": config["nchan"],
        "pipeline": {"seed": config["pipeline"]["seed"]},
        "tiling": {"keep_empty": config["tiling"]["keep_empty"]},
    }
    # A script that reads a key its step does not declare fails instead of reading it unversioned.
    with pytest.raises(KeyError):
        settings_of(STEP["trainset"], config)["n_epochs"]


def script_reads_config(path) -> list[int]:
    """Lines where a script touches ``<anything>.config`` (snakemake.config, sm.config, ...)."""
    tree = ast.parse(path.read_text())
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "config"]


def test_no_workflow_script_reads_the_config():
    scripts = sorted((ROOT / "workflow" / "scripts").glob("*.py"))
    assert scripts
    for path in scripts:
        lines = script_reads_config(path)
        assert not lines, f"{path.name} reads the config at lines {lines}"
    # Nor does the library code that reads a job from the snakemake object for a script (from_snakemake):
    # only views.view_setting reads the config, and only the keys of VIEW_SETTINGS.
    for path in sorted((ROOT / "omnitrain").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == "from_snakemake":
                touched = [
                    n.lineno for n in ast.walk(node) if isinstance(n, ast.Attribute) and n.attr == "config"
                ]
                assert not touched, f"{path.name}: from_snakemake reads the config at lines {touched}"


def rule_blocks():
    """{rule name: its text} from the workflow's rule files."""
    blocks = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        parts = re.split(r"^\s*rule (\w+):\n", smk.read_text(), flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            blocks[name] = body
    return blocks


def test_every_rule_is_in_the_table_and_gets_exactly_its_steps_settings():
    blocks = rule_blocks()
    table = {r.name: s for s in STEPS for r in s.rules}
    applying = {r.name: r for r in SEGMENT_RULES + EXPORT_RULES}
    assert set(blocks) == set(table) | set(applying), "rules and the step table disagree"
    for name, rule in applying.items():  # their settings are a registered version's, not the config's
        assert f'"../scripts/{rule.script}"' in blocks[name], f"rule {name}: script is not {rule.script}"
        assert f'"../../envs/{rule.env}.yaml"' in blocks[name], (
            f"rule {name}: env is not envs/{rule.env}.yaml"
        )
    for name, body in blocks.items():
        if name in applying:
            continue
        step = table[name]
        rule = next(r for r in step.rules if r.name == name)
        assert f'"../scripts/{rule.script}"' in body, f"rule {name}: script is not {rule.script}"
        assert f'"../../envs/{rule.env}.yaml"' in body, f"rule {name}: env is not envs/{rule.env}.yaml"
        if step.per_image:
            continue  # prepare_images gets each image's settings in params.images
        wants = f"settings=settings_of_run({step.name.upper()})"
        script = (ROOT / "workflow" / "scripts" / rule.script).read_text()
        if "params.settings" in script or "settings=" in body:
            assert wants in body, f"rule {name} must pass {wants}"


def test_each_file_of_a_step_is_named_once_in_its_step_and_by_key_elsewhere():
    for step in STEPS:
        assert len(set(step.files.values())) == len(step.files), step.name
        assert set(step.targets) <= set(step.files), step.name
        assert set(step.registers.values()) <= set(step.files), step.name
    with pytest.raises(KeyError, match="step model has no file 'cards' .*card, losses, curve"):
        STEP["model"].file("cards")
    names = {f for s in STEPS for f in s.files.values() if "." in f}
    for rules in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = rules.read_text()
        written = sorted(f for f in names if f"/{f}" in text or f'"{f}"' in text)
        assert not written, f"{rules.name} names {written}: use FILE[step][key] (omnitrain/steps.py)"
    paths = steps.step_files("results", {"model": "results/models/abc"})
    assert paths == {"model": {k: f"results/models/abc/{v}" for k, v in STEP["model"].files.items()}}


def test_every_rule_script_is_thin():
    """A script reads its job and calls the library: its main() is at most 40 lines (docs/development.md)."""
    for script in sorted((ROOT / "workflow" / "scripts").glob("*.py")):
        tree = ast.parse(script.read_text())
        mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
        for main in mains:
            assert main.end_lineno - main.lineno + 1 <= 40, f"{script.name}: main() is longer than 40 lines"


def test_a_models_version_covers_the_training_code_and_no_evaluation_or_step_table():
    """The model's version covers the code train.py imports: a change to how evaluation, segmentation or the
    results lock work, or to the step table, must not retrain models (and the live view and run records,
    which the training imports, are drawn with their own code for that reason)."""
    from omnitrain.hashing import PACKAGE, SCRIPTS, _imported_modules

    files, todo = set(), [SCRIPTS / "train.py"]
    while todo:
        for name in _imported_modules(todo.pop()):
            module = PACKAGE / f"{name}.py"
            if module not in files:
                files.add(module)
                todo.append(module)
    modules = {p.stem for p in files}
    assert {"trainer", "training", "epochs", "board", "run_record", "monitor", "resume", "views"} <= modules
    assert not modules & {"steps", "segment_image", "evaluation", "results_lock", "folders", "plan"}
