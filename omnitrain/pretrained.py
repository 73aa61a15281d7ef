"""Omnipose's built-in models as a start for training: names, what each implies, and their download.

Omnipose 1.1.4 does not check a name: its evaluation falls back to ``cyto`` for a name or path it does not
know, its training stops with a TypeError; and it sets nchan and nclasses from the name whatever the user
configured (the CLI also chooses diam_mean by name). The pipeline instead
refuses a misspelt name (with a suggestion) and checks the config against what the name implies
(:func:`settings_problems`) before anything runs, and the downloaded file's architecture against the
config (:func:`omnitrain.training.check_pretrained`) before training.

The table below is Omnipose 1.1.4's own lists (omnipose/core.py: C1_MODELS, C2_BD_MODELS,
C1_BD_MODELS, C2_MODELS; cellpose_omni/models.py: CP_MODELS), written out because the config is
checked where omnipose may not be installed (``--use-conda``); tests/unit/test_pretrained.py compares it
with the installed omnipose.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
import ssl
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from urllib.error import HTTPError, URLError

#: A mirror of those files (e.g. on an intranet) replaces Omnipose's URL when this variable is set. It is
#: not part of any version: the file's sha256, recorded in the card, is.
MIRROR_VARIABLE = "OMNITRAIN_MODEL_URL"
#: The git blob id of each built-in model file in Omnipose's model repository (kevinjohncutler/omnipose-models
#: at the commit named in the file, the repository Omnipose 1.1.4 downloads from): a file whose id differs is
#: not that file. This variable names another such table (file, git_blob_sha1), e.g. for a mirror of another
#: commit of that repository.
IDS_VARIABLE = "OMNITRAIN_MODEL_IDS"
IDS_FILE = Path(__file__).with_name("omnipose_model_ids.tsv")
#: The commit of Omnipose's model repository the ids are from: without a mirror, files are downloaded from it
#: rather than from its main branch, so that a later change upstream cannot refuse every download.
PINNED_COMMIT = "7730bdbf94d2e92d6f73b929c35d8870015eb682"


@dataclass(frozen=True)
class BuiltIn:
    """What a built-in name implies: nchan 2 and nclasses 3 as Omnipose 1.1.4 sets them from its name lists
    (CellposeModel.__init__), otherwise 1 and 2 (the one-channel, no-boundary lists); diam_mean as its CLI's
    training chooses it."""

    name: str
    nchan: int
    nclasses: int
    diam_mean: float  # the CLI's szmean: 0 means the model was trained without rescaling by diameter

    @property
    def file_name(self) -> str:
        return f"{self.name}torch_0"  # cellpose_omni.models.model_path(name, 0, True)

    @property
    def rescaled(self) -> bool:
        return self.diam_mean > 0


_C1 = ("bact_phase_affinity",)  # nchan and nclasses as configured in Omnipose: 1 and 2 by default
_C2_BD = (
    "bact_phase_omni", "bact_fluor_omni", "worm_omni", "worm_bact_omni", "worm_high_res_omni", "cyto2_omni",
)  # fmt: skip
_C1_BD = ("plant_omni",)
_C2 = ("bact_phase_cp", "bact_fluor_cp", "plant_cp", "worm_cp")
_CP = ("cyto", "nuclei", "cyto2")  # Cellpose's models: two channels, cytoplasm then nucleus


def _diam_mean(name: str) -> float:
    """The CLI's rule (cellpose_omni/__main__.py): cyto 30, nuclei 17, bact and worm 0 (trained without
    rescaling), else 30."""
    if "cyto" in name:
        return 30.0
    if "nuclei" in name:
        return 17.0
    if "bact" in name or "worm" in name:
        return 0.0
    return 30.0


BUILTINS: dict[str, BuiltIn] = {
    name: BuiltIn(
        name,
        nchan=2 if name in _C2_BD + _C2 + _CP else 1,
        nclasses=3 if name in _C2_BD + _C1_BD else 2,
        diam_mean=_diam_mean(name),
    )
    for name in _C1 + _C2_BD + _C1_BD + _C2 + _CP
}


class PretrainedError(RuntimeError):
    """A built-in model cannot be used; the message says why and what to do."""


def builtin(value) -> BuiltIn | None:
    """The built-in model a ``pretrained_model`` value names, or None (null, or a path)."""
    return BUILTINS.get(value) if isinstance(value, str) else None


def suggestion(value: str) -> str | None:
    """The built-in name closest to a misspelt ``value`` (case and '-' ignored), or None."""
    cleaned = value.strip().lower().replace("-", "_")
    if cleaned in BUILTINS:
        return cleaned
    match = difflib.get_close_matches(cleaned, list(BUILTINS), n=1, cutoff=0.6)
    return match[0] if match else None


def looks_like_a_name(value: str) -> bool:
    """A value without a folder or an extension reads as a model name (``cyto2``), not as a path."""
    return "/" not in value and "\\" not in value and not Path(value).suffix


def unknown_model_message(value: str) -> str:
    """Why a ``pretrained_model`` that is neither a file nor a built-in name is refused."""
    near = suggestion(value) if looks_like_a_name(value) else None
    if near is not None:
        return (
            f"pretrained_model '{value}' is not an Omnipose built-in model name (nor a file); did you mean"
            f" '{near}'? (Omnipose 1.1.4 does not check: its training stops with a TypeError)"
        )
    if looks_like_a_name(value):
        return (
            f"pretrained_model '{value}' is not an Omnipose built-in model name (nor a file); the names are:"
            f" {', '.join(BUILTINS)}; or give the path of a model file, or null to train from scratch"
        )
    return f"pretrained_model '{value}' is not a file; give the path of a model file, a built-in name or null"


def diam_mean(config: dict) -> float:
    """The diam_mean training uses: the built-in's (Omnipose forces it), else ``diameter`` or 30 (CLI)."""
    model = builtin(config["pretrained_model"])
    if model is not None:
        return model.diam_mean
    return float(config["diameter"] or 30.0)


def rescaling_diam_mean(config: dict) -> float:
    """The diameter training rescales each image's objects to (Omnipose's diam_mean), 0 without rescaling."""
    return diam_mean(config) if config["diameter"] else 0.0


def settings_problems(config: dict) -> list[str]:
    """What in the config contradicts the built-in model it starts from, each with its fix."""
    model = builtin(config["pretrained_model"])
    if model is None:
        return []
    name, msgs = model.name, []
    if config["dim"] != 2:
        msgs.append(f"{name} is a 2D model (dim: 2) but dim is {config['dim']}: fine-tune a 2D model in 2D")
    if config["nchan"] != model.nchan:
        if name in _CP:
            fix = "set nchan: 2 and chan: 2, chan2: 1 (cytoplasm green, nuclei red) as in the Omnipose docs"
            if name == "nuclei":
                fix = "set nchan: 2 with chan: the nuclear channel and chan2: 0 (an empty second channel)"
        elif model.nchan == 2:
            fix = (
                "set nchan: 2 (chan2: 0 gives a one-channel image an empty second channel, as Omnipose does)"
            )
        else:
            fix = f"set nchan: {model.nchan}"
        msgs.append(f"{name} needs nchan: {model.nchan} but nchan is {config['nchan']}: {fix}")
    if config["nclasses"] != model.nclasses:
        kind = "with" if model.nclasses == 3 else "without"
        msgs.append(
            f"{name} was trained {kind} the boundary field: it needs nclasses: {model.nclasses} but nclasses"
            f" is {config['nclasses']}; set nclasses: {model.nclasses}"
        )
    if config["diameter"] and not model.rescaled:
        msgs.append(
            f"{name} was trained without rescaling by diameter (Omnipose's diam_mean is 0 for bacteria and"
            f" worm models) but diameter is {config['diameter']}: set diameter: 0"
        )
    return msgs


def model_url(model: BuiltIn, omnipose_url: str) -> str:
    """The file's URL below Omnipose's (cellpose_omni.models._MODEL_URL), or below the mirror's
    (:data:`MIRROR_VARIABLE`) when that is set."""
    base = os.environ.get(MIRROR_VARIABLE)
    if not base:
        base = omnipose_url.rstrip("/")
        if base.endswith("/main"):  # raw.githubusercontent.com/<owner>/<repo>/main: the pinned commit instead
            base = f"{base.removesuffix('/main')}/{PINNED_COMMIT}"
    return f"{base.rstrip('/')}/{model.file_name}"


def known_blob_ids() -> dict[str, str]:
    """{file name: git blob id} from :data:`IDS_FILE`, or from the table :data:`IDS_VARIABLE` names."""
    path = Path(os.environ.get(IDS_VARIABLE) or IDS_FILE)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PretrainedError(
            f"cannot read the table of git blob ids {path} ({exc.strerror}): set {IDS_VARIABLE} to a readable"
            " file of lines '<file name> <git blob id>', or unset it to use Omnipose's"
        ) from None
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {row[0]: row[1] for row in rows if len(row) >= 2 and row[0] != "file"}  # "file": the header


def git_blob_id(path: str | Path) -> str:
    """The id git gives the file's bytes (``git hash-object``: SHA-1 of ``blob <size>\\0`` and the bytes)."""
    digest = hashlib.sha1(f"blob {Path(path).stat().st_size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verifying_context() -> ssl.SSLContext:
    """A TLS context that checks certificates against the system's authorities (or SSL_CERT_FILE's); on a
    system without any (a minimal container without ca-certificates), against certifi's bundle, which is
    installed with the pipeline: a download there is still verified, never sent unchecked."""
    context = ssl.create_default_context()
    paths = ssl.get_default_verify_paths()
    system = (paths.cafile and Path(paths.cafile).is_file()) or (
        paths.capath and Path(paths.capath).is_dir() and any(Path(paths.capath).iterdir())
    )
    if not system:
        import certifi

        context.load_verify_locations(certifi.where())
    return context


def download_verified(url: str, dst: str | Path, timeout: float = 120) -> None:
    """Download ``url`` to ``dst`` (a temporary file moved in place), the server's certificate and host name
    checked. Written here because Omnipose 1.1.4's download_url_to_file turns TLS verification off for the
    whole process (``ssl._create_default_https_context = ssl._create_unverified_context``); this passes its
    own verifying context, so that setting, if anything made it, does not apply."""
    dst = Path(dst)
    context = verifying_context()
    tmp = tempfile.NamedTemporaryFile(dir=dst.parent, prefix=f".{dst.name}.", delete=False)  # noqa: SIM115
    try:
        with tmp, urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # noqa: S310
            shutil.copyfileobj(response, tmp)
        os.replace(tmp.name, dst)
    finally:
        Path(tmp.name).unlink(missing_ok=True)


def fetch(
    model: BuiltIn,
    url: str,
    folder: str | Path,
    download: Callable[[str, str], None],
    readable: Callable[[Path], bool],
) -> tuple[Path, bool]:
    """The built-in's file in Omnipose's model folder: reused when there and readable, else downloaded with
    ``download(url, path)`` (:func:`download_verified`: a temporary file moved in place); either way its git
    blob id must be the one Omnipose's model repository gives it (:func:`known_blob_ids`).

    Returns (path, whether it was downloaded). Offline, raises :class:`PretrainedError` naming the URL and
    the exact path where the file can be put by hand."""
    folder = Path(folder).expanduser()
    path = folder / model.file_name
    expected = known_blob_ids().get(model.file_name)
    if expected is None:
        raise PretrainedError(
            f"no git blob id is known for {model.file_name} ({IDS_VARIABLE} names the table of ids,"
            f" {os.environ.get(IDS_VARIABLE) or IDS_FILE}): add its id (git hash-object of the file from"
            " Omnipose's model repository) to that table. Training did not start."
        )
    if path.is_file() and readable(path):
        found = git_blob_id(path)
        if found != expected:
            raise _another_file(model, path, found, expected, downloaded_from=None)
        return path, False
    folder.mkdir(parents=True, exist_ok=True)
    by_hand = (
        f"download that file elsewhere and put it at {path} (Omnipose's model folder:"
        " CELLPOSE_LOCAL_MODELS_PATH, or ~/.cellpose/models when unset), then run again. Training from"
        f" {model.name} did not start."
    )
    try:
        download(url, str(path))
    except HTTPError as exc:  # the server answered, but not with the file
        raise PretrainedError(
            f"cannot download the built-in model {model.name}: {url} answered {exc.code} {exc.reason}. Check"
            f" the URL ({MIRROR_VARIABLE} sets a mirror), or {by_hand}"
        ) from None
    # (a full disk is not caught here: it is no network problem)
    except (URLError, HTTPException, ConnectionError, TimeoutError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise PretrainedError(
                f"refused to download the built-in model {model.name} from {url}: the server's certificate is"
                f" not trusted ({reason.verify_message}). If this is your own mirror ({MIRROR_VARIABLE})"
                " with a certificate of your own authority, set SSL_CERT_FILE to that authority's certificate"
                f" (PEM); otherwise {by_hand}"
            ) from None
        raise PretrainedError(
            f"cannot download the built-in model {model.name} from {url} ({exc}). Without internet here,"
            f" {by_hand}"
        ) from None
    if not readable(path):
        path.unlink()
        raise PretrainedError(
            f"{url} did not give an Omnipose model file (it cannot be read as a state_dict); it was removed"
            f" from {path}. Check the URL ({MIRROR_VARIABLE} sets a mirror) and run again. Training from"
            f" {model.name} did not start."
        )
    found = git_blob_id(path)
    if found != expected:
        path.unlink()
        raise _another_file(model, path, found, expected, downloaded_from=url)
    return path, True


def _another_file(model: BuiltIn, path: Path, found: str, expected: str, downloaded_from: str | None):
    """The error for a file whose git blob id is not the one of Omnipose's model repository."""
    ids = (
        f"its git blob id is {found}, where Omnipose's model repository (omnipose-models at"
        f" {PINNED_COMMIT[:7]}) has {expected}"
    )
    other = f"for a file of another commit of that repository, give its id in a table named by {IDS_VARIABLE}"
    if downloaded_from:
        return PretrainedError(
            f"the file downloaded from {downloaded_from} is not Omnipose's {model.file_name}: {ids}; it was"
            f" removed. Check the URL ({MIRROR_VARIABLE} sets a mirror), or {other}; then run again. Training"
            f" from {model.name} did not start."
        )
    return PretrainedError(
        f"{path} in Omnipose's model folder is not Omnipose's {model.file_name}: {ids}. Move it away (it is"
        " then downloaded again), or set CELLPOSE_LOCAL_MODELS_PATH to another folder, or"
        f" {other}; then run again. Training from {model.name} did not start."
    )


def not_the_builtin(model: BuiltIn, path: Path, downloaded: bool, differences: list[str]) -> PretrainedError:
    """The error for a file whose weights are not those of the built-in's network (``differences``)."""
    what = "; ".join(differences)
    if downloaded:
        path.unlink(missing_ok=True)
        return PretrainedError(
            f"the file downloaded for {model.name} does not have the weights of Omnipose 1.1.4's {model.name}"
            f" ({what}); it was removed. Check the URL ({MIRROR_VARIABLE} sets a mirror). Training from"
            f" {model.name} did not start."
        )
    return PretrainedError(
        f"{path} in Omnipose's model folder is not Omnipose 1.1.4's {model.name} ({what}): another program's"
        " file of that name? (Cellpose uses the same folder and names.) Move it away, or set"
        " CELLPOSE_LOCAL_MODELS_PATH to another folder, and run again. Training from"
        f" {model.name} did not start."
    )


def copy_atomic(source: str | Path, target: str | Path) -> None:
    """Copy a file so that ``target`` is either absent or complete (a kill leaves only a temporary file)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
