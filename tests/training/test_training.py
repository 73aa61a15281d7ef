"""Training helpers against Omnipose itself: names, architecture checks, device choice, determinism."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from omnitrain.demo import make_image
from omnitrain.epochs import EpochRecorder
from omnitrain.training import (
    TrainingError,
    architecture,
    check_pretrained,
    crops_per_epoch,
    epoch_meaning,
    fix_boundary_loss,
    model_kwargs,
    net_type,
    resolve_device,
    seed_everything,
    set_symmetry,
    train_kwargs,
    unfit_pretrained_files,
)

models = pytest.importorskip("cellpose_omni.models")


def config(**kw):
    base = {
        "pretrained_model": None,
        "diameter": 0,
        "nchan": 1,
        "nclasses": 2,
        "dim": 2,
        "tiling": {"keep_empty": False},
        "tyx": [64, 64],  # tiny crops: these tests check bookkeeping, not learning
        "learning_rate": 0.1,
        "save_every": 100,
        "save_each": False,
        "n_epochs": 2,
        "batch_size": 2,
        "dataloader": False,
        "num_workers": 0,
        "min_train_masks": 1,
        "RAdam": True,
    }
    return {**base, **kw}


@pytest.mark.parametrize(("nchan", "nclasses"), [(1, 2), (2, 3)])
def test_net_type_and_architecture_match_omnipose(tmp_path, nchan, nclasses):
    cfg = config(nchan=nchan, nclasses=nclasses)
    model = models.CellposeModel(**model_kwargs(cfg, False, None))
    assert model.net_type == net_type(nchan, nclasses, 2)
    path = tmp_path / "m"
    model.net.save_model(str(path))
    assert architecture(path) == {"nchan": nchan, "nclasses": nclasses, "dim": 2}


def test_3d_architecture_and_a_2d_model_refused_for_a_3d_run(tmp_path):
    three = tmp_path / "three_d"
    model = models.CellposeModel(**model_kwargs(config(dim=3), False, None))
    assert model.net_type == net_type(1, 2, 3)
    model.net.save_model(str(three))
    assert architecture(three) == {"nchan": 1, "nclasses": 2, "dim": 3}
    flat = tmp_path / "two_d"
    models.CellposeModel(**model_kwargs(config(), False, None)).net.save_model(str(flat))
    with pytest.raises(TrainingError) as info:
        check_pretrained(flat, nchan=1, nclasses=2, dim=3)
    assert "dim = 2 in the model but dim: 3 in the config" in str(info.value)
    with pytest.raises(TrainingError, match="dim = 3 in the model but dim: 2 in the config"):
        check_pretrained(three, nchan=1, nclasses=2, dim=2)
    # What the workflow checks before anything runs, per experiment: named by it when there are several.
    runs = {
        "base": config(dim=3, pretrained_model=str(flat)),
        "other": config(dim=3, pretrained_model=str(three)),
    }
    (msg,) = unfit_pretrained_files(runs)
    assert (
        msg.startswith(f"experiment base: pretrained_model {flat}")
        and "dim = 2 in the model but dim: 3" in msg
    )
    assert unfit_pretrained_files({"base": config(pretrained_model="cyto")}) == []  # built-ins: own checks
    (tmp_path / "junk").write_bytes(b"not a model")
    assert (
        "cannot be read"
        in unfit_pretrained_files({"base": config(pretrained_model=str(tmp_path / "junk"))})[0]
    )


def test_wrong_pretrained_model_is_refused_with_both_values(tmp_path):
    path = tmp_path / "two_channels"
    models.CellposeModel(**model_kwargs(config(nchan=2), False, None)).net.save_model(str(path))
    with pytest.raises(TrainingError) as info:
        check_pretrained(path, nchan=1, nclasses=2, dim=2)
    assert "nchan = 2 in the model but nchan: 1 in the config" in str(info.value)
    assert check_pretrained(path, nchan=2, nclasses=2, dim=2)["nchan"] == 2
    (tmp_path / "junk").write_bytes(b"not a model")
    with pytest.raises(TrainingError, match="cannot be read"):
        check_pretrained(tmp_path / "junk", 1, 2, 2)


def test_random_bytes_as_a_model_get_one_line_with_the_fix_not_torchs_page(tmp_path):
    path = tmp_path / "random.pth"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(TrainingError) as info:
        architecture(path)
    message = str(info.value)
    assert "\n" not in message and "PyTorch 2.6" not in message and "arbitrary code" not in message
    assert "cannot be read as a torch state_dict" in message and "a built-in name such as" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_use_gpu_true_without_gpu_is_a_clear_error():
    with pytest.raises(TrainingError, match="sees no CUDA GPU"):
        resolve_device(True)
    assert resolve_device("auto")[0] is False
    assert resolve_device(False)[1].startswith("cpu (use_gpu: false")


def train_once(tmp_path, name):
    images, labels = [], []
    for demo in ("colony_dense_02", "colony_dense_03"):
        img, lab = make_image(demo)
        images.append(img[:192, :192].astype(np.float32))
        labels.append(lab[:192, :192])
    cfg = config()
    seed_everything(0)
    model = models.CellposeModel(**model_kwargs(cfg, False, None))
    log = logging.getLogger(f"test.{name}")
    recorder = EpochRecorder(model, cfg["n_epochs"], tmp_path / f"{name}.tsv", log)
    try:
        path = model.train(images, labels, [None, None], **train_kwargs(cfg, str(tmp_path / name), "net"))
    finally:
        recorder.close()
    return torch.load(path, map_location="cpu", weights_only=True), recorder.rows


def test_two_seeded_cpu_runs_give_identical_weights(tmp_path):
    first, rows = train_once(tmp_path, "a")
    second, _ = train_once(tmp_path, "b")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert [r["epoch"] for r in rows] == [0, 1] and all(np.isfinite(r["loss"]) for r in rows)
    table = (tmp_path / "a.tsv").read_text().splitlines()
    assert table[0].split("\t") == ["epoch", "loss", "learning_rate", "seconds", "elapsed", "eta_seconds"]
    assert len(table) == 3


def test_an_epoch_keeps_the_meaning_of_omnipose_train_on_the_raw_folder():
    cfg = {"batch_size": 8, "training": {"nimg_per_epoch": None}}
    # 17 source images packed into 5: 17 crops per epoch (as omnipose --train on the folder), not 5.
    assert crops_per_epoch(cfg, 17) == 17 and "an epoch is 17 crop(s)" in epoch_meaning(cfg, 5, 17)
    assert crops_per_epoch(cfg, 3) == 8, "never fewer than batch_size"
    chosen = {"batch_size": 8, "training": {"nimg_per_epoch": 4}}
    assert crops_per_epoch(chosen, 17) == 4
    assert "WARNING batches of 4 crop(s), not batch_size 8" in epoch_meaning(chosen, 2, 17)
    assert "an epoch is 6 crop(s)" in epoch_meaning(chosen, 6, 17)  # Omnipose: at least one per image
    assert "WARNING" not in epoch_meaning(cfg, 2, 3)


def test_omniposes_sparse_failure_names_the_image_and_offers_packing_in_2d_only():
    from omnitrain.training import TrainingSet, sparse_failure

    ts = TrainingSet(
        [np.zeros((8, 8))] * 2, [np.ones((8, 8), np.uint16)] * 2, [None] * 2, ["ts/a.tif", "ts/b.tif"]
    )
    exc = ValueError("Sparse or over-dense image detected. Problematic index is: 1")
    flat = sparse_failure(exc, ts, 1, {"b": "data/b.tif"})
    volume = sparse_failure(exc, ts, 1, {"b": "data/b.tif"}, dim=3)
    assert "ts/b.tif (from data/b.tif)" in flat and "turn packing on" in flat
    assert "ts/b.tif (from data/b.tif)" in volume and "packing" not in volume and "larger tyx" in volume
    assert sparse_failure(ValueError("something else"), ts, 1, {}) is None


def test_boundary_models_train_with_the_logit_loss():
    """Omnipose 1.1.4's boundary term (BCELoss on raw outputs) raises at once; the replacement trains."""
    from omnitrain.demo import make_image

    img, lab = make_image("colony_dense_02")
    images = [np.stack([img[:192, :192], np.zeros((192, 192))]).astype(np.float32)]
    labels = [lab[:192, :192]]
    kwargs = dict(channels=None, channel_axis=0, n_epochs=1, batch_size=2, tyx=(64, 64), rescale=False,
                  min_train_masks=0, save_every=10, SGD=False, learning_rate=0.1)  # fmt: skip

    def model():
        torch.manual_seed(0)
        return models.CellposeModel(gpu=False, nchan=2, nclasses=3, dim=2, omni=True, diam_mean=0.0)

    broken = model()
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        broken.train(images, labels, [None], save_path=None, **kwargs)
    fixed = model()
    assert fix_boundary_loss(fixed)
    fixed.train(images, labels, [None], save_path=None, **kwargs)
    assert not fix_boundary_loss(models.CellposeModel(gpu=False, nchan=1, nclasses=2, dim=2, omni=True))


def test_omniposes_own_loader_is_checked_against_the_training_set(tmp_path, monkeypatch):
    """The train job's cross-check: cellpose_omni.io finds and loads our pairs, or says where not."""
    import types

    from helpers import cells, write_pair

    from omnitrain import training
    from omnitrain.discovery import discover

    for i in range(2):
        write_pair(tmp_path, f"packed_{i:03d}", lab=cells(n=3 + i))
    assert training.omnipose_disagreements(tmp_path) == []
    one_pair = types.SimpleNamespace(pairs=discover(tmp_path).pairs[:1])
    monkeypatch.setattr(training, "discover", lambda folder: one_pair)
    (said,) = training.omnipose_disagreements(tmp_path)
    assert said.startswith("Omnipose pairs") and "packed_001_masks.tif" in said


def test_symmetry_off_runs_the_network_once_a_step_and_still_learns():
    """Omnipose 1.1.4 runs the network on the batch and its two flips each step; training.symmetry false
    binds its own symmetry_weight=0: one pass a step, the same loss terms otherwise."""
    img, lab = make_image("colony_dense_02")
    images, labels = [img[:192, :192].astype(np.float32)], [lab[:192, :192]]
    kwargs = train_kwargs(config(n_epochs=1, training={"nimg_per_epoch": 4}), None, "net")

    def forward_passes(symmetry: bool) -> tuple[int, int]:
        seed_everything(0)
        model = models.CellposeModel(**model_kwargs(config(), False, None))
        assert set_symmetry(model, symmetry) is (not symmetry)
        calls, steps = [0], [0]
        model.net.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        step = model._train_step

        def counted(*args, **kw):
            steps[0] += 1
            return step(*args, **kw)

        model._train_step = counted
        before = [p.detach().clone() for p in model.net.parameters()]
        model.train(images, labels, [None], **kwargs)
        assert any(not torch.equal(a, b) for a, b in zip(before, model.net.parameters(), strict=True))
        return calls[0], steps[0]

    on, on_steps = forward_passes(True)
    off, off_steps = forward_passes(False)
    assert on_steps == off_steps == 2  # 4 crops in batches of 2
    assert (on, off) == (3 * on_steps, off_steps)
