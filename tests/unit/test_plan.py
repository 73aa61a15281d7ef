"""The run plan without Snakemake (omnitrain/plan.py): versions, folders, sharing between experiments, folds,
what an edited mask changes, and refusals."""

from __future__ import annotations

import pytest
from helpers import cells, write_pair

from omnitrain.plan import Plan, PlanError

#: Steps made once per training set whatever the training settings (shared between experiments that only
#: change how the network trains).
PREPARATION = ("validation", "split", "trainset", "check", "heldout")


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A working directory with 12 image/label pairs in data/ (relative paths, as a user runs it)."""
    for i in range(12):
        write_pair(tmp_path / "data", f"img{i:02d}", lab=cells(n=4 + i % 3))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def build(**config) -> Plan:
    return Plan.build({"dir": "data", **config})


def files_below(folder):
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_every_enabled_step_has_a_version_and_a_folder_named_by_it(work):
    before = files_below(work)
    plan = build()
    run = plan.primary
    assert list(plan.runs) == ["base"] and run.experiment == "base" and run.fold is None
    for step, version in run.version.items():
        assert len(version) == 12 and int(version, 16) >= 0
        assert version in run.folder[step] and run.folder[step].startswith("results/")
    assert set(run.image_version) == set(run.sources) == set(run.train + run.test + run.validation)
    assert (
        run.model.startswith(f"{run.folder['model']}/models/") and run.selected_model == run.model + "_best"
    )
    assert run.monitored and run.monitor_off == ""
    # every image in exactly one batch; a batch of one role only
    assert sorted(s for members in run.batches.values() for s in members) == sorted(run.sources)
    for members in run.batches.values():
        assert len({run.sources[s]["role"] for s in members}) == 1
    # building reads the files and writes nothing but the hash cache
    assert files_below(work) - before == {".omnitrain/hashes.tsv"}
    again = build()
    assert dict(again.primary.version) == dict(run.version)
    assert dict(again.primary.image_version) == dict(run.image_version)


def test_the_plan_is_read_only(work):
    run = build().primary
    with pytest.raises(TypeError):
        run.version["model"] = "0" * 12
    with pytest.raises(AttributeError):
        run.model = "elsewhere"


def test_experiments_share_the_steps_their_settings_do_not_change(work):
    plan = build(experiments={"radam": {"RAdam": True}, "raw": {"packing": {"enabled": False}}})
    base, radam, raw = (plan.runs[n] for n in ("base", "radam", "raw"))
    assert plan.primary is base
    for step in PREPARATION:
        assert radam.version[step] == base.version[step], step
        assert plan.run_of(step, radam.version[step]) is base  # the first run that has it makes it
    assert radam.version["model"] != base.version["model"]
    assert plan.run_of("model", radam.version["model"]) is radam
    # packing off: other training images and training set, the same split and held-out images
    assert raw.version["trainset"] != base.version["trainset"]
    assert all(raw.image_version[s] != base.image_version[s] for s in base.train)
    for step in ("validation", "split", "heldout"):
        assert raw.version[step] == base.version[step], step
    assert len({r.version["version"] for r in plan.runs.values()}) == 3


def test_each_fold_has_its_own_validation_images_model_and_folders(work):
    plan = build(cross_validation={"folds": 2})
    assert list(plan.runs) == ["base/fold1", "base/fold2"]
    one, two = plan.runs.values()
    assert one.fold == 1 and two.fold == 2
    assert set(one.validation) and set(one.validation).isdisjoint(two.validation)
    assert set(one.validation) | set(one.train) == set(two.validation) | set(two.train)
    assert one.test == two.test and one.version["heldout"] == two.version["heldout"]
    for step in ("monitor_set", "trainset", "model", "evaluation", "version"):
        assert one.version[step] != two.version[step], step
        assert one.folder[step] != two.folder[step], step
    assert plan.run_of("model", two.version["model"]) is two


def test_an_edited_mask_changes_its_image_and_what_reads_it_and_nothing_else(work):
    before = build().primary
    edited = before.train[0]
    write_pair(work / "data", before.sources[edited]["name"], lab=cells(n=7))
    after = build().primary
    assert {s for s in before.image_version if after.image_version[s] != before.image_version[s]} == {edited}
    assert after.batch_of[edited] != before.batch_of[edited]
    unchanged = [s for s in before.batches if edited not in before.batches[s]]
    assert set(unchanged) <= set(after.batches)
    for step in ("validation", "trainset", "check", "model", "evaluation", "version"):
        assert after.version[step] != before.version[step], step
    # the split waits for the new verdict of the input check; the held-out images are the same
    assert after.test == before.test
    assert after.version["heldout"] == before.version["heldout"]


def test_a_changed_training_flag_keeps_the_training_set(work):
    before, after = build().primary, build(learning_rate=0.05).primary
    for step in PREPARATION:
        assert after.version[step] == before.version[step], step
    for step in ("model", "prediction", "evaluation", "version"):
        assert after.version[step] != before.version[step], step


def test_a_bad_config_is_refused_with_its_fix_and_an_unknown_version_named(work):
    with pytest.raises(PlanError, match="did you mean 'n_epochs'"):
        build(n_epoch=10)
    with pytest.raises(PlanError, match="is not a folder"):
        Plan.build({"dir": "nowhere"})
    plan = build()
    with pytest.raises(PlanError, match="model version 0123456789ab .* is not a version of the current"):
        plan.run_of("model", "0123456789ab")
    with pytest.raises(PlanError, match="not a batch of the current images"):
        plan.run_of_batch("0123456789ab")


def test_the_default_targets_cover_every_run_and_the_leaderboard_only_with_several(work):
    single = build()
    targets = single.targets("results/registry.tsv", ("results/leaderboard.tsv",))
    assert "results/registry.tsv" in targets and "results/leaderboard.tsv" not in targets
    assert f"{single.primary.folder['version']}/record.json" in targets
    several = build(experiments={"radam": {"RAdam": True}})
    targets = several.targets("results/registry.tsv", ("results/leaderboard.tsv",))
    assert "results/leaderboard.tsv" in targets
    for run in several.runs.values():
        assert f"{run.folder['version']}/record.json" in targets


def test_a_dataparallel_training_asks_for_its_gpus_and_is_another_model(work):
    plain = build().primary
    parallel = build(dataparallel=True, resources={"train_gpus": 4}).primary
    assert [parallel.gpus(s) for s in ("model", "size_model", "prediction")] == [4, 1, 1]
    assert [plain.gpus(s) for s in ("model", "prediction")] == [1, 1]
    assert build(use_gpu=False).primary.gpus("model") == 0
    assert parallel.version["trainset"] == plain.version["trainset"]
    assert parallel.version["model"] != plain.version["model"], "a batch split over GPUs: another network"
