"""The config: omnipose flag names, defaults, "did you mean", and refused combinations."""

from __future__ import annotations

import re

import pytest
import yaml

from omnitrain.config import (
    OMNIPOSE_FLAGS,
    SCHEMA,
    ConfigError,
    check_config,
    check_config_files,
    key_table,
    load_schema,
)


@pytest.fixture
def base(good_folder):
    return {"dir": str(good_folder)}


#: The verbs a refusal's fix starts with ("set nchan: 2", "write a whole number", "quote it", ...).
FIX_WORDS = re.compile(
    r"\b(set|write|use|give|remove|rename|quote|keep|choose|save|add|move|lower|raise|turn|drop|run"
    r"|did you mean)\b",
    re.I,
)


def refused(config) -> str:
    with pytest.raises(ConfigError) as info:
        check_config(config)
    return str(info.value)


def test_every_omnipose_flag_is_a_top_level_key():
    props = load_schema()["properties"]
    assert set(OMNIPOSE_FLAGS) <= set(props)


def test_defaults_are_filled(base):
    config = check_config(base)
    assert config["mask_filter"] == "_masks" and config["nchan"] == 1 and config["nclasses"] == 2
    assert config["pretrained_model"] is None and config["use_gpu"] == "auto"
    assert config["pipeline"] == {"results": "results", "seed": 0}
    assert config["channels"] == {"select": None}
    assert config["validation"]["min_objects"] == 3
    assert base == {"dir": base["dir"]}, "the caller's dict is not modified"


def test_shipped_config_files_are_valid(good_folder):
    for name in ("config.yaml", "demo.yaml", "cpu.yaml"):
        with open(SCHEMA.parents[2] / "config" / name) as fh:
            config = yaml.safe_load(fh)
        config["dir"] = str(good_folder)
        check_config(config)


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ({"n_epoch": 10}, "n_epochs"),
        ({"radam": True}, "RAdam"),
        ({"--use_gpu": True}, "use_gpu"),
        ({"mask-filter": "_m"}, "mask_filter"),
        ({"learningrate": 0.1}, "learning_rate"),
        ({"seed": 3}, "pipeline.seed"),
        ({"pipeline": {"sed": 3}}, "seed"),
        ({"validation": {"min_object": 3}}, "min_objects"),
    ],
)
def test_unknown_keys_are_refused_with_did_you_mean(base, typo, suggestion):
    message = refused({**base, **typo})
    key = next(iter(typo))
    assert "unknown key" in message and key.lstrip("-") in message
    assert f"did you mean '{suggestion}'?" in message


def test_all_unknown_keys_are_listed_at_once(base):
    message = refused({**base, "n_epoch": 1, "batchsize": 2})
    assert "n_epoch" in message and "batchsize" in message and "2 problem(s)" in message


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"tyx": [224, 256]}, ["not square", "[256, 256]"]),
        ({"tyx": [224]}, ["one per axis"]),
        ({"tyx": "224,2x4"}, ["not a comma-separated list"]),
        ({"dataloader": True}, ["num_workers"]),
        ({"nchan": 3}, ["nchan is 3", "select 1 channel(s)"]),
        ({"chan": 2, "chan2": 3}, ["select 2 channel(s)", "nchan is 1"]),
        ({"channels": {"select": [0, 1]}}, ["channels.select keeps 2", "nchan: 2"]),
        ({"channels": {"select": [0]}, "all_channels": True}, ["keep one of them"]),
        ({"img_filter": "_img.tif"}, ["extension '.tif'", "use '_img'"]),
        ({"mask_filter": "_masks.png"}, ["extension '.png'", "use '_masks'"]),
        ({"mask_filter": "_x", "img_filter": "_x"}, ["cannot be told apart"]),
        ({"pretrained_model": "bact_phase_omi"}, ["not an Omnipose built-in", "mean 'bact_phase_omni'"]),
        ({"pretrained_model": "cytoplasm_model"}, ["not an Omnipose built-in", "cyto2_omni"]),
        ({"pretrained_model": "cyto"}, ["cyto needs nchan: 2 but nchan is 1", "chan: 2, chan2: 1"]),
        (
            {"pretrained_model": "bact_phase_omni", "nchan": 2},
            ["needs nclasses: 3 but nclasses is 2", "set nclasses: 3"],
        ),
        (
            {"pretrained_model": "bact_phase_omni", "nchan": 2, "nclasses": 3, "diameter": 30},
            ["without rescaling", "set diameter: 0"],
        ),
        ({"pretrained_model": "/no/such/model"}, ["is not a file"]),
        ({"dir": "/no/such/folder"}, ["is not a folder", "working directory"]),
        ({"test_dir": "/no/such/folder"}, ["test_dir", "is not a folder"]),
        ({"n_epochs": "many"}, ["n_epochs: 'many' is text; write a whole number"]),
        ({"n_epochs": 0}, ["n_epochs: 0 is below 1, the smallest it can be; write 1 or more"]),
        ({"use_gpu": "sometimes"}, ["use_gpu", "write one of auto, true, false"]),
        ({"dim": 4}, ["dim"]),
        ({"chan": 4}, ["chan"]),
    ],
)
def test_invalid_values_and_combinations_are_refused(base, bad, words):
    message = refused({**base, **bad})
    for word in words:
        assert word in message, (word, message)
    for problem in message.splitlines()[1:]:  # each refusal says what to do, not only what is wrong
        assert FIX_WORDS.search(problem), problem


def test_test_dir_equal_to_dir_is_refused(base):
    assert "held-out" in refused({**base, "test_dir": base["dir"]})


def test_missing_dir_is_refused():
    assert "dir" in refused({})


def test_command_line_spellings_are_accepted(base):
    config = check_config({**base, "pretrained_model": "None", "tyx": "224,224", "test_dir": "None"})
    assert config["pretrained_model"] is None and config["test_dir"] is None
    assert config["tyx"] == [224, 224]


def test_valid_combinations_pass(base, tmp_path):
    model = tmp_path / "model"
    model.write_bytes(b"weights")
    check_config(
        {**base, "nchan": 2, "chan": 2, "chan2": 1, "tyx": [256, 256], "pretrained_model": str(model)}
    )
    check_config({**base, "dataloader": True, "num_workers": 2, "dim": 3, "tyx": [64, 64, 64]})
    check_config({**base, "all_channels": True, "nchan": 3})
    check_config({**base, "channels": {"select": [2, 0]}, "nchan": 2})


def test_builtin_models_pass_with_the_settings_they_imply(base):
    check_config({**base, "pretrained_model": "cyto", "nchan": 2, "chan": 2, "chan2": 1, "diameter": 30})
    check_config({**base, "pretrained_model": "bact_phase_omni", "nchan": 2, "nclasses": 3})  # chan2 0: zeros
    check_config({**base, "pretrained_model": "plant_omni", "nclasses": 3})


def test_config_readme_documents_every_key_and_default():
    readme = (SCHEMA.parents[2] / "config" / "README.md").read_text()
    table = key_table()
    assert table in readme, "config/README.md is out of date: paste `python -m omnitrain.config` into it"
    for key in OMNIPOSE_FLAGS:
        assert f"| `{key}` |" in table and f"`--{key}`" in table


@pytest.mark.parametrize(
    ("given", "key", "wanted"),
    [
        ({"RAdam": "true"}, "RAdam", True),
        ({"RAdam": "False"}, "RAdam", False),
        ({"use_gpu": "no"}, "use_gpu", False),
        ({"use_gpu": "auto"}, "use_gpu", "auto"),
        ({"n_epochs": "10"}, "n_epochs", 10),
        ({"learning_rate": "0.05"}, "learning_rate", 0.05),
        ({"diameter": "0"}, "diameter", 0),
        ({"channel_axis": "null"}, "channel_axis", None),
    ],
)
def test_command_line_strings_are_coerced_for_typed_keys(base, given, key, wanted):
    assert check_config({**base, **given})[key] == wanted


def test_nested_command_line_strings_are_coerced(base):
    config = check_config({**base, "packing": {"enabled": "no"}, "training": {"nimg_per_epoch": "16"}})
    assert config["packing"]["enabled"] is False and config["training"]["nimg_per_epoch"] == 16


def test_an_uncoercible_string_names_the_spelling_that_works(base):
    message = refused({**base, "RAdam": "maybe"})
    assert "RAdam" in message and "write true or false" in message
    assert "write a whole number" in refused({**base, "n_epochs": "ten"})


def test_config_files_with_duplicate_keys_or_python_tags_are_refused(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("dir: data\nn_epochs: 4000\nlearning_rate: 0.1\nn_epochs: 10\n")
    with pytest.raises(ConfigError) as info:
        check_config_files([dup])
    assert f"{dup}, line 4: key 'n_epochs' appears twice (first on line 2)" in str(info.value)
    tag = tmp_path / "tag.yaml"
    tag.write_text("dir: data\nlearning_rate: !!python/name:os.system\n")
    with pytest.raises(ConfigError) as info:
        check_config_files([tag])
    assert f"{tag}, line 2 (key 'learning_rate')" in str(info.value) and "remove the tag" in str(info.value)
    good = tmp_path / "good.yaml"
    good.write_text("dir: data\npacking:\n  enabled: false\nexperiments:\n  'yes':\n    n_epochs: 2\n")
    check_config_files([good])


@pytest.mark.parametrize(
    ("written", "read_as"),
    [("yes", "true"), ("off", "false"), ("1", "the number 1"), ("null", "null"), ("~", "null")],
)
def test_names_that_yaml_reads_as_booleans_numbers_or_null_are_refused_as_written(tmp_path, written, read_as):
    path = tmp_path / "words.yaml"
    path.write_text(f"dir: data\nexperiments:\n  {written}:\n    n_epochs: 2\n")
    with pytest.raises(ConfigError) as info:
        check_config_files([path])
    message = str(info.value)
    assert f"{path}, line 3: the name {written} is read by YAML as {read_as}" in message
    assert f"quote it: '{written}':" in message


def _schema_leaves(entry, path=()):
    """(path, entry) of every key of the schema that holds a value (sections are walked into)."""
    for name, sub in entry.get("properties", {}).items():
        if sub.get("properties"):
            yield from _schema_leaves(sub, (*path, name))
        else:
            yield (*path, name), sub


def _breaking_values(sub):
    """One value per rule of a schema entry that breaks that rule: a wrong type, below the minimum, ..."""
    kinds = {sub["type"]} if isinstance(sub.get("type"), str) else set(sub.get("type", []))
    values = [[1] if "object" in kinds else {"a": 1}]
    if "minimum" in sub:
        values.append(sub["minimum"] - 1)
    if "exclusiveMinimum" in sub:
        values.append(sub["exclusiveMinimum"])
    if "maximum" in sub:
        values.append(sub["maximum"] + 1)
    if sub.get("enum"):
        values.append("bogus")
    if "minLength" in sub:
        values.append("")
    if "minItems" in sub:
        values.append([])
    if "not" in sub:
        values.append(sub["not"]["const"])
    return values


#: jsonschema's own sentences, which no refusal may show (they name schema keywords, not fixes).
JSONSCHEMA_WORDS = (
    "is not of type", "should not be valid", "is less than", "is greater than", "is a required property",
    "is too short", "should be non-empty", "is not one of [", "{'const'",
)  # fmt: skip


def test_every_schema_rule_of_every_key_is_refused_in_plain_words_with_a_fix(base):
    schema, tried = yaml.safe_load(SCHEMA.read_text()), 0
    for path, sub in _schema_leaves(schema):
        for value in _breaking_values(sub):
            config = {**base}
            section = config
            for part in path[:-1]:
                section = section.setdefault(part, {})
            section[path[-1]] = value
            message = refused(config)
            key = ".".join(path)
            lines = [line for line in message.splitlines() if line.startswith(f"  - {key}")]
            assert lines, f"{key} = {value!r} is not named:\n{message}"
            assert all(word not in message for word in JSONSCHEMA_WORDS), message
            assert any(fix in lines[0] for fix in ("; write", "; give", "; set")), lines[0]
            tried += 1
    assert tried > 100  # every key of the schema, each of its rules


def test_a_missing_required_key_says_what_to_set():
    message = refused({"learning_rate": 0.1})
    assert "the config has no 'dir': set it (folder of training images and labels" in message


def test_several_gpus_without_dataparallel_are_refused_with_the_fix(base):
    message = refused({**base, "resources": {"train_gpus": 2}})
    assert "resources.train_gpus: 2 without dataparallel: true" in message and "train on one" in message
    assert "set dataparallel: true" in message
    on_cpu = {**base, "dataparallel": True, "use_gpu": False, "resources": {"train_gpus": 4}}
    assert "with use_gpu: false" in refused(on_cpu)
    assert "nothing to split" in refused({**base, "dataparallel": True})
    config = check_config({**base, "dataparallel": True, "resources": {"train_gpus": 4}})
    assert config["dataparallel"] is True and config["resources"]["train_gpus"] == 4
