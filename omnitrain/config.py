"""Checking the pipeline's configuration before anything runs.

Three passes, each collecting every problem before failing once:

1. unknown keys (a typo such as ``n_epoch`` must never be silently ignored), each with a
   "did you mean";
2. the JSON schema (types, ranges) through :func:`snakemake.utils.validate`, which also fills in
   the defaults;
3. combinations the schema cannot express and that would crash or mislead Omnipose later
   (non-square 2D ``tyx``, ``dataloader`` without workers, ``nchan`` against the channel choice, ...).
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import re
from pathlib import Path

import yaml

from .channels import plan_from_config
from .pretrained import builtin, settings_problems, unknown_model_message

SCHEMA = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"

#: File extensions that must not be part of img_filter or mask_filter.
_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy", ".npz", ".txt")

#: Keys whose string value "None" (as typed on the omnipose command line) means null.
_NULLABLE = ("test_dir", "pretrained_model", "tyx", "channel_axis", "segment_dir")


class ConfigError(ValueError):
    """The configuration cannot be used; the message lists every reason (``problems``: one per line)."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or [message]


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader (no ``!!python`` tag is ever resolved) that refuses duplicate keys."""


class _YamlWord(yaml.constructor.ConstructorError):
    """An unquoted name that YAML reads as something else; ``written`` is the user's own text."""

    def __init__(self, written: str, problem: str, mark):
        super().__init__(None, None, problem, mark)
        self.written = written


def _unique_keys(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)  # YAML merge keys (<<: *anchor) first, as the safe loader does
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str) and isinstance(key_node, yaml.ScalarNode) and not key_node.style:
            # YAML 1.1 reads yes/no/on/off as booleans, 1 as a number, null/~ as nothing, 2024-01-01 as a
            # date: not the name the user wrote
            written = key_node.value
            problem = (
                f"the name {written} is read by YAML as {_yaml_word(key)}"
                if written.strip()
                else "a name is missing before ':'"
            )
            raise _YamlWord(written, problem, key_node.start_mark)
        if not isinstance(key, str | int | float | bool | type(None)):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain name, not a list or a section", key_node.start_mark
            )
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key '{key}' appears twice (first on line {seen[key]})", key_node.start_mark
            )
        seen[key] = line
    return loader.construct_mapping(node, deep)


def _yaml_word(value) -> str:
    """What YAML made of an unquoted name: 'true', 'the number 1', 'null (nothing)'."""
    if value is None:
        return "null (nothing), not a name"
    if isinstance(value, bool):
        return f"{str(value).lower()}, not a name"
    if isinstance(value, int | float):
        return f"the number {value}, not a name"
    return f"a {type(value).__name__} ({value}), not a name"  # a date (2024-01-01), a timestamp


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_keys)


def _key_on_line(path: Path, line: int) -> str:
    text = path.read_text().splitlines()
    found = text[line - 1].split(":", 1)[0].strip(" -") if 0 < line <= len(text) else ""
    return f" (key '{found}')" if found else ""


def check_config_files(paths) -> None:
    """Read each config file again with a strict safe loader: a key given twice (YAML keeps the last
    one silently) or a ``!!python`` tag (Snakemake's own loader resolves it) is a ConfigError naming
    the file, the line and the key. Snakemake has read the files before the workflow runs; this
    makes sure that what it read is what the user meant."""
    msgs = []
    for path in map(Path, paths):
        try:
            yaml.load(path.read_text(), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
        except yaml.constructor.ConstructorError as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark else 0
            if "appears twice" in str(exc.problem):
                msgs.append(f"{path}, line {line}: {exc.problem}: keep one of them")
            elif isinstance(exc, _YamlWord) and exc.written.strip():
                msgs.append(
                    f"{path}, line {line}: {exc.problem}: quote it: '{exc.written}': (a name of your own,"
                    " such as an experiment's; a key of the config is a word such as n_epochs)"
                )
            elif isinstance(exc, _YamlWord):
                msgs.append(f"{path}, line {line}: {exc.problem}: write the name, or remove the line")
            elif "plain name" in str(exc.problem):
                msgs.append(f"{path}, line {line}: {exc.problem}: write the config's key names")
            else:
                msgs.append(
                    f"{path}, line {line}{_key_on_line(path, line)}: {exc.problem}; a config holds plain"
                    " values only (text, numbers, true/false, null, lists, sections): remove the tag"
                )
        except yaml.YAMLError as exc:
            msgs.append(f"{path}: not valid YAML: {exc}")
    if msgs:
        raise ConfigError(_message(msgs))


def load_schema(path: str | Path = SCHEMA) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def _suggest(key: str, known: list[str], elsewhere: dict[str, str]) -> str:
    """A "did you mean" for an unknown key, or an empty string."""
    cleaned = key.lstrip("-").replace("-", "_")
    for candidate in known:
        if candidate == cleaned or candidate.lower() == cleaned.lower():
            return f"; did you mean '{candidate}'?"
    if cleaned in elsewhere:
        return f"; did you mean '{elsewhere[cleaned]}'?"
    match = difflib.get_close_matches(cleaned, known, n=1, cutoff=0.6)
    if match:
        return f"; did you mean '{match[0]}'?"
    match = difflib.get_close_matches(cleaned, list(elsewhere), n=1, cutoff=0.75)
    if match:
        return f"; did you mean '{elsewhere[match[0]]}'?"
    return ""


def _has_sections(sub: dict) -> bool:
    """A section of named keys (not a free mapping such as ``experiments``, whose keys are the user's)."""
    return sub.get("type") == "object" and "properties" in sub


def _all_paths(schema: dict, prefix: str = "") -> dict[str, str]:
    """Every key of the schema by its bare name -> its dotted path (first one wins)."""
    out: dict[str, str] = {}
    for name, sub in schema.get("properties", {}).items():
        out.setdefault(name, prefix + name)
        if _has_sections(sub):
            for leaf, path in _all_paths(sub, prefix + name + ".").items():
                out.setdefault(leaf, path)
    return out


def unknown_keys(config: dict, schema: dict) -> list[str]:
    """Messages for every key of ``config`` the schema does not know, with a suggestion."""
    everywhere = _all_paths(schema)

    def walk(node: dict, sub: dict, prefix: str) -> list[str]:
        props = sub.get("properties", {})
        msgs = []
        for key, value in node.items():
            if key not in props:
                elsewhere = {k: v for k, v in everywhere.items() if v != prefix + k}
                hint = _suggest(str(key), list(props), elsewhere)
                where = f"in section '{prefix[:-1]}'" if prefix else "at the top level"
                msgs.append(f"unknown key '{prefix}{key}' {where}{hint}")
            elif _has_sections(props[key]) and isinstance(value, dict):
                msgs.extend(walk(value, props[key], f"{prefix}{key}."))
        return msgs

    return walk(config, schema, "")


def _normalise(config: dict) -> None:
    """Accept the omnipose command line's spellings: 'None' for null, tyx as "224,224"."""
    for key in _NULLABLE:
        if isinstance(config.get(key), str) and config[key].strip() in ("None", "none", ""):
            config[key] = None
    tyx = config.get("tyx")
    if isinstance(tyx, str):
        with contextlib.suppress(ValueError):  # left as a string: cross_checks names it
            config["tyx"] = [int(v) for v in tyx.split(",")]


_TRUE, _FALSE, _NULL = ("true", "yes", "on"), ("false", "no", "off"), ("null", "none", "~")


def _types(sub: dict) -> set:
    """The JSON types a schema entry allows (its ``type``, or the types of its ``enum`` values)."""
    kinds = sub.get("type", [])
    kinds = {kinds} if isinstance(kinds, str) else set(kinds)
    for value in sub.get("enum", []):
        kinds.add(
            {bool: "boolean", int: "integer", float: "number", type(None): "null"}.get(type(value), "string")
        )
    return kinds


def _coerced(text: str, sub: dict):
    """A command-line string as the type its key wants, or the string itself when it is no such value."""
    kinds, word = _types(sub), text.strip().lower()
    if "null" in kinds and word in _NULL:
        return None
    if "string" in kinds and (not sub.get("enum") or text in sub["enum"]):
        return text  # a string is valid here: keep it
    if "boolean" in kinds and word in _TRUE + _FALSE:
        return word in _TRUE
    if "integer" in kinds and re.fullmatch(r"[+-]?\d+", word):
        return int(word)
    if "number" in kinds and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?", word):
        return float(word)  # never nan or inf
    return text


def coerce_strings(config: dict, schema: dict) -> None:
    """Turn strings into the type their key wants, nested keys too: Snakemake keeps ``--config
    RAdam=true`` as the string 'true', which people type for booleans (and 'no', 'null', '3')."""
    props = schema.get("properties", {})
    for key, value in config.items():
        sub = props.get(key)
        if sub is None:
            continue
        if isinstance(value, dict) and _has_sections(sub):
            coerce_strings(value, sub)
        elif isinstance(value, str):
            config[key] = _coerced(value, sub)
        elif isinstance(value, list) and isinstance(sub.get("items"), dict):  # --config tyx=[96,96]
            config[key] = [_coerced(v, sub["items"]) if isinstance(v, str) else v for v in value]


def _spelling(sub: dict) -> str:
    """How to write a valid value of a schema entry, for the message."""
    kinds = _types(sub)
    if sub.get("enum"):
        return "one of " + ", ".join(yaml.safe_dump(v).splitlines()[0] for v in sub["enum"])
    words = {"boolean": "true or false", "integer": "a whole number", "number": "a number"}
    words |= {"null": "null", "string": "text", "array": "a list such as [224, 224]"}
    words |= {"object": "a section of `name: value` lines"}
    return " or ".join(
        words[k] for k in ("boolean", "integer", "number", "array", "object", "string", "null") if k in kinds
    )


def cross_checks(config: dict) -> list[str]:
    """Problems in combinations of keys (the schema has checked each key alone)."""
    msgs = []
    for key in ("img_filter", "mask_filter"):
        value = config[key]
        ext = next((e for e in _EXTENSIONS if e in value.lower()), None)
        if ext:
            fix = value[: value.lower().index(ext)]
            msgs.append(
                f"{key} '{value}' contains the file extension '{ext}': filters are the end of the file"
                f" name before the extension, so this matches nothing; use '{fix}'"
            )
    if config["img_filter"] == config["mask_filter"]:
        msgs.append(
            "img_filter and mask_filter are equal: images and labels cannot be told apart; set mask_filter to"
            " the end of your label files' names (e.g. _masks) and img_filter to that of your images (or '')"
        )

    tyx = config["tyx"]
    if isinstance(tyx, str):
        msgs.append(
            f"tyx '{tyx}' is not a comma-separated list of whole numbers: write e.g. '224,224' or [224, 224]"
        )
    elif tyx is not None:
        if len(tyx) != config["dim"]:
            msgs.append(f"tyx {tyx} has {len(tyx)} value(s) but dim is {config['dim']}: give one per axis")
        elif config["dim"] == 2 and len(set(_rounded(tyx))) > 1:  # square once rounded up, as Omnipose does
            side = max(_rounded(tyx))
            msgs.append(
                f"tyx {tyx} is not square: Omnipose 1.1.4 crashes on non-square 2D crops"
                f" (omnipose/loss.py); use [{side}, {side}]"
            )
        elif config["dim"] == 3 and len(set(_rounded(tyx))) > 1:
            side = max(_rounded(tyx))
            msgs.append(
                f"tyx {tyx} is not a cube: Omnipose 1.1.4's illumination augmentation builds its gradient"
                " from one side of the crop and applies it along the last axis (omnipose/core.py"
                " random_crop_warp), so a training with unequal sides dies in its first epochs; use"
                f" [{side}, {side}, {side}] (Omnipose's warp fills a crop deeper than a volume)"
            )

    if config["dim"] == 3 and config["train_size"]:
        msgs.append(
            "train_size: true with dim: 3: Omnipose's SizeModel is 2D only (its fit rotates and resizes 2D"
            " images, and its eval says 'image is not 2D cannot compute diameter'); set train_size: false"
            " (3D models segment at the scale they were trained at; the seed's 3D command sets diameter 0)"
        )
    gpus = config["resources"]["train_gpus"]
    if gpus > 1 and not config["dataparallel"]:
        msgs.append(
            f"resources.train_gpus: {gpus} without dataparallel: true: the train job would hold {gpus} GPUs"
            " and train on one; set dataparallel: true to train on all of them, or resources.train_gpus: 1"
        )
    if gpus == 1 and config["dataparallel"]:
        msgs.append(
            "dataparallel: true with resources.train_gpus: 1: one GPU has nothing to split a batch across;"
            " set resources.train_gpus to the number of GPUs (2 or more), or dataparallel: false"
        )
    if gpus > 1 and config["use_gpu"] is False:
        msgs.append(f"resources.train_gpus: {gpus} with use_gpu: false: set resources.train_gpus: 1")
    if config["dataloader"] and config["num_workers"] == 0:
        msgs.append(
            "dataloader: true needs num_workers >= 1 (Omnipose raises with 0 workers): set num_workers: 2 (or"
            " dataloader: false)"
        )

    _, channel_msgs = plan_from_config(config)
    msgs.extend(channel_msgs)
    if config["all_channels"] and config["channels"]["select"] is not None:
        msgs.append("all_channels: true and channels.select both choose channels: keep one of them")

    model = config["pretrained_model"]
    if model is not None and builtin(model) is None and not Path(model).expanduser().is_file():
        msgs.append(unknown_model_message(model))
    msgs.extend(settings_problems(config))

    train = Path(config["dir"])
    if not train.is_dir():
        msgs.append(
            f"dir '{config['dir']}' is not a folder (relative paths are taken from the working"
            f" directory {Path.cwd()}); set dir to the folder of training images and labels"
        )
    test = config["test_dir"]
    if test is not None:
        if not Path(test).is_dir():
            msgs.append(f"test_dir '{test}' is not a folder; set it to the held-out folder, or null")
        elif train.is_dir() and Path(test).resolve() == train.resolve():
            msgs.append("test_dir is the same folder as dir: held-out images must not be trained on")
    return msgs


def check_config(config: dict, schema_path: str | Path = SCHEMA, notes: list[str] | None = None) -> dict:
    """A checked copy of ``config`` with every default filled in; ConfigError lists all problems.
    Settings adjusted rather than refused (tyx rounded up to multiples of 8, packing in 3D) are said in
    ``notes``, when given.

    Unknown keys are set aside (and reported) so that the rest is still checked: one run of the
    workflow names every problem of the config.
    """
    schema = load_schema(schema_path)
    config = copy.deepcopy(dict(config))
    msgs = unknown_keys(config, schema)
    _drop_unknown(config, schema)
    _normalise(config)
    coerce_strings(config, schema)
    type_msgs = schema_errors(config, schema)
    msgs += type_msgs
    adjusted: list[str | None] = []
    if not type_msgs:
        from snakemake.utils import validate

        validate(config, str(schema_path))  # fills in the defaults (the config is valid by now)
        msgs += cross_checks(config)
        adjusted.append(None if msgs else round_tyx(config))
    if msgs:
        raise ConfigError(_message(msgs), msgs)
    adjusted.append(packing_in_3d(config))
    if notes is not None:
        notes.extend(note for note in adjusted if note)
    return config


def _rounded(tyx: list[int]) -> list[int]:
    return [-(-v // 8) * 8 for v in tyx]


def round_tyx(config: dict) -> str | None:
    """Round each ``tyx`` value up to a multiple of 8, as Omnipose does (cellpose_omni/core.py, with a warning
    in its log), so that the config, the step versions and the model card hold the crop really trained on;
    returns the note that says so, or None. The seed's 3D advice, ``--tyx 50,50,50``, trains 56^3 crops."""
    tyx = config["tyx"]
    if not isinstance(tyx, list) or not any(v % 8 for v in tyx):
        return None
    config["tyx"] = _rounded(tyx)
    rounded = ", ".join(f"{v} -> {_rounded([v])[0]}" for v in dict.fromkeys(v for v in tyx if v % 8))
    return (
        f"tyx {tyx} is trained as tyx {config['tyx']}: Omnipose rounds each value up to a multiple of 8"
        f" ({rounded}); write tyx: {config['tyx']} to silence this"
    )


def packing_in_3d(config: dict) -> str | None:
    """Turn dense-crop packing off in 3D; returns the warning to show, or None.

    Packing places 2D rectangles (rectpack has no boxes), and what it is for in 2D, crops that hold a cell
    boundary, a random 3D crop has anyway: on the 3D demo (8 % foreground) the chance that a 32-voxel crop of
    a tile holds a single label value is 0.008 at the median tile and 0.46 at the worst, far from Omnipose's
    101 in a row (config/README.md, "3D"). The training set of a 3D run is its tiles."""
    if config["dim"] != 3 or not config["packing"]["enabled"]:
        return None
    config["packing"]["enabled"] = False
    return (
        "packing.enabled is ignored with dim: 3: dense-crop packing is 2D only, so the training set is the"
        " volumes' tiles (config/README.md, '3D (dim: 3)'); set packing: {enabled: false} to silence this"
    )


def _drop_unknown(node: dict, schema: dict) -> None:
    props = schema.get("properties", {})
    for key in list(node):
        if key not in props:
            del node[key]
        elif _has_sections(props[key]) and isinstance(node[key], dict):
            _drop_unknown(node[key], props[key])


def schema_errors(config: dict, schema: dict) -> list[str]:
    """Every schema violation, each named by its key and said in plain words with its fix (Snakemake's
    validate reports only the first, in jsonschema's words)."""
    from jsonschema import Draft202012Validator

    errors = Draft202012Validator(schema).iter_errors(config)
    return [schema_message(err, schema) for err in sorted(errors, key=lambda e: [str(p) for p in e.path])]


def _entry(schema: dict, path) -> dict:
    """The schema entry of the key at ``path`` (a list's items for an index)."""
    sub = schema
    for part in path:
        if not isinstance(part, str):
            sub = sub.get("items", {})
        elif str(part) in sub.get("properties", {}):
            sub = sub["properties"][str(part)]
        else:  # a name of the user's own (an experiment): the entry every such name has
            extra = sub.get("additionalProperties")
            sub = extra if isinstance(extra, dict) else {}
    return sub


def _shown(value) -> str:
    """A value as the user would write it in the YAML file."""
    return json.dumps(value) if not isinstance(value, str) else f"'{value}'"


def _kind(value) -> str:
    if isinstance(value, bool):
        return "true or false"
    kinds = {list: "a list", dict: "a section", str: "text", int: "a whole number", float: "a number"}
    return "null (nothing)" if value is None else kinds.get(type(value), type(value).__name__)


def schema_message(err, schema: dict) -> str:
    """One schema violation as ``key: what is wrong; the fix``, by the schema keyword it breaks (a table of
    sentences: jsonschema's own, e.g. "should not be valid under {'const': 1}", are not for a user)."""
    key = "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in err.path).lstrip(".") or "the config"
    sub, value, rule = _entry(schema, err.path), err.instance, err.validator_value
    shown = _shown(value)
    if err.validator == "type" or (err.validator == "enum" and not sub.get("enum")):
        return f"{key}: {shown} is {_kind(value)}; write {_spelling(sub) or _spelling({'type': rule})}"
    if err.validator == "enum":
        return f"{key}: {shown} is not one of its choices; write {_spelling(sub)}"
    if err.validator == "minimum":
        return f"{key}: {shown} is below {rule}, the smallest it can be; write {rule} or more"
    if err.validator == "exclusiveMinimum":
        return f"{key}: {shown} must be above {rule}; write a value above {rule}"
    if err.validator == "maximum":
        return f"{key}: {shown} is above {rule}, the largest it can be; write {rule} or less"
    if err.validator == "exclusiveMaximum":
        return f"{key}: {shown} must be below {rule}; write a value below {rule}"
    if err.validator == "minLength":
        return f"{key}: it is empty; give it a value ({' '.join(sub.get('description', '').split())})"
    if err.validator == "minItems":
        return f"{key}: the list {shown} is empty; give at least {rule} value(s)"
    if err.validator == "required":
        missing = [k for k in rule if k not in value]
        return "; ".join(
            f"the config has no '{k}': set it ({_entry(schema, [k]).get('description')})" for k in missing
        )
    if err.validator == "not":
        meaning = " ".join(sub.get("description", "").split())
        return f"{key}: {shown} is not allowed here; write another value ({meaning})"
    # A keyword this table does not know yet: jsonschema's words, with where the key is explained.
    return f"{key}: {err.message}; config/README.md says what {key} takes"


#: The omnipose command-line flags that are top-level keys of the config.
OMNIPOSE_FLAGS = (
    "dir test_dir img_filter mask_filter look_one_level_down nchan nclasses all_channels channel_axis dim"
    " pretrained_model diameter learning_rate RAdam batch_size n_epochs tyx save_every save_each dataloader"
    " num_workers min_train_masks train_size use_gpu chan chan2"
).split()

_FLAG_NOTES = {
    "pretrained_model": "`--pretrained_model` (CLI default `cyto`, a download)",
    "use_gpu": "`--use_gpu` (a flag, off by default)",
}


def key_table(schema: dict | None = None) -> str:
    """The Markdown table of every key, its default and the omnipose flag it mirrors (config/README.md)."""
    schema = schema or load_schema()
    rows = ["| key | default | omnipose flag | meaning |", "|---|---|---|---|"]

    def walk(props, prefix=""):
        for name, sub in props.items():
            if _has_sections(sub):
                yield from walk(sub["properties"], prefix + name + ".")
            else:
                yield prefix + name, sub

    for key, sub in walk(schema["properties"]):
        default = f"`{yaml.safe_dump(sub['default']).splitlines()[0]}`" if "default" in sub else "(required)"
        flag = _FLAG_NOTES.get(key, f"`--{key}`" if key in OMNIPOSE_FLAGS else "—")
        meaning = " ".join(sub.get("description", "").split())
        meaning = re.sub(r" \(omnipose --\w+\)", "", meaning).replace(f"(omnipose --{key}; ", "(")
        rows.append(f"| `{key}` | {default} | {flag} | {meaning} |")
    return "\n".join(rows) + "\n"


def _message(msgs: list[str]) -> str:
    body = "\n".join(f"  - {m}" for m in msgs)
    return f"Invalid configuration ({len(msgs)} problem(s)); nothing was run:\n{body}"


if __name__ == "__main__":  # python -m omnitrain.config: print the key table of config/README.md
    print(key_table(), end="")
