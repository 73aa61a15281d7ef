"""Omnipose's built-in models: the name table against the installed omnipose, suggestions, implied settings,
and the download (from a loopback server: tests never reach the internet)."""

from __future__ import annotations

import errno
import functools
import hashlib
import http.server
import json
import ssl
import subprocess
import threading

import pytest
import torch

from omnitrain.pretrained import (
    BUILTINS,
    IDS_FILE,
    IDS_VARIABLE,
    MIRROR_VARIABLE,
    PINNED_COMMIT,
    PretrainedError,
    copy_atomic,
    diam_mean,
    download_verified,
    fetch,
    git_blob_id,
    known_blob_ids,
    model_url,
    not_the_builtin,
    rescaling_diam_mean,
    settings_problems,
    suggestion,
    unknown_model_message,
    verifying_context,
)
from omnitrain.training import (
    TrainingError,
    loadable,
    model_kwargs,
    starting_model,
    weights_differences,
)

models = pytest.importorskip("cellpose_omni.models")


def test_the_table_is_omniposes_own():
    """Names, and the nchan / nclasses Omnipose forces from them (CellposeModel.__init__, the CLI)."""
    assert set(BUILTINS) == set(models.MODEL_NAMES)
    for name, model in BUILTINS.items():
        assert (model.nchan == 2) == (name in models.C2_MODEL_NAMES), name
        assert (model.nclasses == 3) == (name in models.BD_MODEL_NAMES), name
        assert model.file_name == f"{name}torch_0"
    assert BUILTINS["nuclei"].diam_mean == 17 and BUILTINS["cyto2"].diam_mean == 30
    assert BUILTINS["bact_phase_omni"].diam_mean == 0 and not BUILTINS["worm_omni"].rescaled


def config(**kw):
    return {"pretrained_model": None, "nchan": 1, "nclasses": 2, "dim": 2, "diameter": 0, **kw}


def test_a_misspelt_name_gets_a_suggestion_never_cyto():
    assert suggestion("bact_phase_omi") == "bact_phase_omni" and suggestion("Cyto2") == "cyto2"
    assert "did you mean 'nuclei'" in unknown_model_message("nucleii")
    listed = unknown_model_message("my_cells")
    assert "not an Omnipose built-in model name" in listed and "plant_omni" in listed
    assert "is not a file" in unknown_model_message("/data/models/mine.pt")


def test_implied_settings_are_checked_naming_both_values_and_the_fix():
    cyto = settings_problems(config(pretrained_model="cyto"))
    assert cyto == [
        "cyto needs nchan: 2 but nchan is 1: set nchan: 2 and chan: 2, chan2: 1 (cytoplasm green, nuclei red)"
        " as in the Omnipose docs"
    ]
    bact = " ".join(settings_problems(config(pretrained_model="bact_phase_omni", diameter=25)))
    assert "needs nchan: 2 but nchan is 1" in bact and "needs nclasses: 3 but nclasses is 2" in bact
    assert "set diameter: 0" in bact
    assert "2D model" in settings_problems(config(pretrained_model="plant_omni", nclasses=3, dim=3))[0]
    assert settings_problems(config(pretrained_model="bact_phase_omni", nchan=2, nclasses=3)) == []
    assert settings_problems(config(pretrained_model="/my/model")) == []


def test_diam_mean_follows_the_name_as_omniposes_cli():
    assert diam_mean(config(pretrained_model="nuclei", diameter=25)) == 17
    assert diam_mean(config(pretrained_model="bact_phase_omni")) == 0
    assert diam_mean(config(diameter=25)) == 25 and diam_mean(config()) == 30
    assert rescaling_diam_mean(config(pretrained_model="nuclei")) == 0  # diameter 0: no rescaling
    assert rescaling_diam_mean(config(pretrained_model="nuclei", diameter=20)) == 17
    nuclei = {**config(pretrained_model="nuclei", nchan=2), "tiling": {"keep_empty": False}}
    assert model_kwargs(nuclei, False, None)["diam_mean"] == 17


def ids_table(path, **ids):
    """Omnipose's table of git blob ids with ``ids`` ({file: id}) in place of its own; ``path``."""
    lines = IDS_FILE.read_text().splitlines()
    rows = [line.split("\t")[0] for line in lines]
    path.write_text(
        "\n".join(f"{r}\t{ids[r]}" if r in ids else line for r, line in zip(rows, lines, strict=True))
    )
    return path


def serve(folder, tls=None):
    """A loopback server of ``folder`` (HTTPS with ``tls`` = (certificate, key)): (base URL, server)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"{'https' if tls else 'http'}://127.0.0.1:{httpd.server_address[1]}", httpd


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A loopback HTTP server of a folder holding one model file under a built-in's name, whose git blob id
    the table of ids (OMNITRAIN_MODEL_IDS) holds."""
    served = tmp_path / "served"
    served.mkdir()
    models.CellposeModel(gpu=False, nchan=2, nclasses=2, dim=2, omni=True).net.save_model(
        str(served / "cytotorch_0")
    )
    ids = ids_table(tmp_path / "ids.tsv", cytotorch_0=git_blob_id(served / "cytotorch_0"))
    monkeypatch.setenv(IDS_VARIABLE, str(ids))
    base, httpd = serve(served)
    yield base, served, httpd
    httpd.shutdown()  # (twice is harmless)
    httpd.server_close()


def test_a_table_of_ids_of_ones_own_is_read_with_or_without_header(tmp_path, monkeypatch):
    table = tmp_path / "ids.tsv"
    table.write_text("# my mirror\ncytotorch_0 abc\nnucleitorch_0\tdef\n")
    monkeypatch.setenv(IDS_VARIABLE, str(table))
    assert known_blob_ids() == {"cytotorch_0": "abc", "nucleitorch_0": "def"}
    monkeypatch.setenv(IDS_VARIABLE, str(tmp_path / "missing.tsv"))
    with pytest.raises(PretrainedError, match=f"cannot read the table of git blob ids.*{IDS_VARIABLE}"):
        known_blob_ids()


def test_git_blob_id_is_gits_own(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"weights\n")
    assert (
        git_blob_id(path)
        == subprocess.run(
            ["git", "hash-object", str(path)], capture_output=True, text=True, check=True
        ).stdout.strip()
    )


def test_download_then_reuse_then_offline(server, tmp_path, monkeypatch):
    base, served, httpd = server
    monkeypatch.setenv(MIRROR_VARIABLE, base)
    cyto = BUILTINS["cyto"]
    url = model_url(cyto, models._MODEL_URL)
    assert url == f"{base}/cytotorch_0"
    folder = tmp_path / "omnipose_models"
    path, downloaded = fetch(cyto, url, folder, download_verified, loadable)
    assert downloaded and path == folder / "cytotorch_0"
    assert path.read_bytes() == (served / "cytotorch_0").read_bytes()
    httpd.shutdown()  # offline from here: nothing listens any more
    httpd.server_close()
    assert fetch(cyto, url, folder, download_verified, loadable) == (path, False)  # reused, not downloaded
    with pytest.raises(PretrainedError) as info:
        fetch(cyto, url, tmp_path / "empty", download_verified, loadable)
    message = str(info.value)
    assert url in message and str(tmp_path / "empty" / "cytotorch_0") in message
    assert "CELLPOSE_LOCAL_MODELS_PATH" in message and "Training from cyto did not start" in message
    assert not (tmp_path / "empty" / "cytotorch_0").exists()
    monkeypatch.delenv(MIRROR_VARIABLE)
    pinned = models._MODEL_URL.removesuffix("/main") + f"/{PINNED_COMMIT}"  # the commit the ids are from
    assert (
        models._MODEL_URL.endswith("/main") and model_url(cyto, models._MODEL_URL) == f"{pinned}/cytotorch_0"
    )


def test_a_file_that_is_no_model_is_refused_and_removed(server, tmp_path):
    base, served, _ = server
    (served / "nucleitorch_0").write_text("<html>not found</html>")
    with pytest.raises(PretrainedError, match="did not give an Omnipose model file"):
        fetch(BUILTINS["nuclei"], f"{base}/nucleitorch_0", tmp_path, download_verified, loadable)
    assert not (tmp_path / "nucleitorch_0").exists()
    with pytest.raises(PretrainedError, match="answered 404") as info:  # the server is there: not "offline"
        fetch(BUILTINS["cyto2"], f"{base}/cyto2torch_0", tmp_path, download_verified, loadable)
    assert MIRROR_VARIABLE in str(info.value) and str(tmp_path / "cyto2torch_0") in str(info.value)


def test_a_file_other_than_omniposes_is_refused_by_its_git_blob_id(server, tmp_path, monkeypatch):
    base, served, _ = server
    monkeypatch.delenv(
        IDS_VARIABLE
    )  # Omnipose's own ids: the served file is a model, but not Omnipose's cyto
    expected = known_blob_ids()["cytotorch_0"]
    with pytest.raises(PretrainedError) as info:
        fetch(BUILTINS["cyto"], f"{base}/cytotorch_0", tmp_path, download_verified, loadable)
    message = str(info.value)
    assert git_blob_id(served / "cytotorch_0") in message and expected in message and "was removed" in message
    assert not (tmp_path / "cytotorch_0").exists()
    (tmp_path / "cytotorch_0").write_bytes((served / "cytotorch_0").read_bytes())  # found in the folder
    with pytest.raises(PretrainedError, match="Move it away") as info:
        fetch(BUILTINS["cyto"], f"{base}/cytotorch_0", tmp_path, download_verified, loadable)
    assert (tmp_path / "cytotorch_0").exists(), "a file the pipeline did not download is kept"


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1 and its key (openssl): (certificate, key)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_downloads_check_the_certificate(server, certificate, tmp_path, monkeypatch):
    _, served, _ = server
    base, httpd = serve(served, tls=certificate)
    try:
        with pytest.raises(PretrainedError) as info:
            fetch(BUILTINS["cyto"], f"{base}/cytotorch_0", tmp_path / "a", download_verified, loadable)
        message = str(info.value)
        assert "certificate is not trusted" in message and "SSL_CERT_FILE" in message
        assert not list((tmp_path / "a").iterdir()), "nothing of the refused download is left"
        # What Omnipose's download_url_to_file does to the whole process: the pipeline's download ignores it.
        monkeypatch.setattr(ssl, "_create_default_https_context", ssl._create_unverified_context)
        with pytest.raises(PretrainedError, match="certificate is not trusted"):
            fetch(BUILTINS["cyto"], f"{base}/cytotorch_0", tmp_path / "c", download_verified, loadable)
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # the user's own authority: trusted
        path, downloaded = fetch(
            BUILTINS["cyto"], f"{base}/cytotorch_0", tmp_path / "b", download_verified, loadable
        )
        assert downloaded and path.read_bytes() == (served / "cytotorch_0").read_bytes()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_system_without_certificate_authorities_verifies_with_certifis(monkeypatch, tmp_path):
    import certifi

    monkeypatch.setattr(ssl, "create_default_context", lambda: ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    none = ssl.DefaultVerifyPaths(None, str(tmp_path / "empty"), "SSL_CERT_FILE", "", "SSL_CERT_DIR", "")
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: none)
    context = verifying_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 50, f"certifi's bundle ({certifi.where()}) is not loaded"
    system = ssl.DefaultVerifyPaths(certifi.where(), None, "SSL_CERT_FILE", "", "SSL_CERT_DIR", "")
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: system)
    assert verifying_context().cert_store_stats()["x509_ca"] == 0, "the system's own authorities come first"


def test_a_full_disk_is_not_reported_as_being_offline(tmp_path):
    def full(url, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        fetch(BUILTINS["cyto"], "http://127.0.0.1:9/cytotorch_0", tmp_path, full, loadable)


def test_a_file_of_another_network_is_named_with_the_fix(tmp_path):
    """Cellpose keeps files of the same names in the same folder: the whole network is compared."""
    net = models.CellposeModel(gpu=False, nchan=2, nclasses=2, dim=2, omni=True).net
    reference = net.state_dict()
    path = tmp_path / "cytotorch_0"
    torch.save({**reference, "diam_mean": torch.ones(1)}, path)  # Cellpose 2's files carry diam_mean
    differences = weights_differences(path, reference)
    assert differences == ["1 weight(s) not in the network, e.g. diam_mean"]
    message = str(not_the_builtin(BUILTINS["cyto"], path, False, differences))
    assert str(path) in message and "CELLPOSE_LOCAL_MODELS_PATH" in message and path.exists(), (
        "kept: not ours"
    )
    one_channel = models.CellposeModel(gpu=False, nchan=1, nclasses=2, dim=2, omni=True).net.state_dict()
    torch.save(one_channel, path)
    assert any("of another shape" in d for d in weights_differences(path, reference))
    assert weights_differences(path, one_channel) == []
    not_the_builtin(BUILTINS["cyto"], path, True, ["x"])
    assert not path.exists(), "a wrong download is removed"


def test_training_refuses_a_copy_whose_bytes_changed(tmp_path):
    weights, record = tmp_path / "weights", tmp_path / "pretrained.json"
    weights.write_bytes(b"weights")
    sha = hashlib.sha256(b"weights").hexdigest()
    record.write_text(json.dumps({"name": "cyto", "url": "http://x/cytotorch_0", "sha256": sha}))
    path, origin = starting_model(config(pretrained_model="cyto"), record, weights)
    assert path == str(weights) and origin["name"] == "cyto" and origin["sha256"] == sha
    weights.write_bytes(b"other weights")
    with pytest.raises(TrainingError, match="changed since cyto was downloaded"):
        starting_model(config(pretrained_model="cyto"), record, weights)
    assert starting_model(config(), None, None) == (None, None)


def test_copy_is_all_or_nothing(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 1000)
    copy_atomic(tmp_path / "a", tmp_path / "sub" / "b")
    assert (tmp_path / "sub" / "b").read_bytes() == b"x" * 1000
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["b"]
