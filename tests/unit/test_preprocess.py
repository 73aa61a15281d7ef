"""Channel selection, relabelling, tiling, dense-crop packing and the held-out split on small arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import BACT, DSB, cells, needs

from omnitrain.channels import plan_from_config
from omnitrain.config import check_config
from omnitrain.demo import make_image
from omnitrain.discovery import discover
from omnitrain.imageio import read_array
from omnitrain.labels import read_links, relabel, remap_links, write_links
from omnitrain.packing import assemble_bins, clusters, crop_region, make_crops, normalisation, pack_rectangles
from omnitrain.preprocess import prepare_source, select_channels, source_crops
from omnitrain.split import assign_split, assign_validation
from omnitrain.tiling import cut_tiles, tile_boxes, tile_edges


def plan(**kw):
    base = {"nchan": 1, "chan": 0, "chan2": 0, "all_channels": False, "channels": {"select": None}}
    return plan_from_config({**base, **kw})[0]


# ---------------------------------------------------------------- channels


@pytest.mark.parametrize(
    ("layout", "axis"),
    [("cyx", 0), ("yxc", 2)],
)
def test_channel_moves(layout, axis):
    lab = cells()
    chans = [np.full(lab.shape, v, np.uint16) for v in (10, 20, 30)]
    img = np.stack(chans, axis=0 if layout == "cyx" else -1)
    out, found = select_channels(img, lab, plan(channels={"select": [2, 0]}, nchan=2))
    assert found == axis and out.shape == (2, *lab.shape) and out.dtype == np.uint16
    assert out[:, 0, 0].tolist() == [30, 10]
    grey, _ = select_channels(img, lab, plan())
    assert grey.dtype == np.float32 and grey.shape == (1, *lab.shape) and grey[0, 0, 0] == 20


def test_rgb_png_layout_and_single_channel():
    lab = cells()
    rgb = np.zeros((*lab.shape, 3), np.uint8)
    rgb[..., 1] = 200
    out, axis = select_channels(rgb, lab, plan(chan=2))  # green
    assert axis == 2 and out.dtype == np.uint8 and np.all(out == 200)
    one, axis = select_channels(rgb[..., 0], lab, plan())
    assert axis is None and one.shape == (1, *lab.shape) and one.dtype == np.uint8


# ---------------------------------------------------------------- labels


def test_relabel_and_links(tmp_path):
    lab = np.zeros((6, 6), np.int32)
    lab[0, 0], lab[2, 2], lab[4, 4] = 7, 3, 90
    new, mapping = relabel(lab)
    assert mapping == {3: 1, 7: 2, 90: 3} and new.dtype == np.uint16
    assert new[0, 0] == 2 and new[4, 4] == 3
    assert remap_links([(3, 7), (7, 5)], mapping) == [(1, 2)]  # 5 is gone: its link is dropped
    write_links(tmp_path / "l.txt", [(2, 1), (1, 2), (2, 1)])
    assert read_links(tmp_path / "l.txt") == [(1, 2), (2, 1)]
    assert read_links(tmp_path / "absent.txt") == []


# ---------------------------------------------------------------- tiling


@pytest.mark.parametrize(
    ("length", "sizes"),
    [(2048, [512] * 4), (1300, [433, 433, 434]), (600, [600]), (640, [640]), (641, [320, 321]), (100, [100])],
)
def test_tile_edges_are_near_equal(length, sizes):
    edges = tile_edges(length, 512, 1.25)
    assert edges[0] == 0 and edges[-1] == length
    assert np.diff(edges).tolist() == sizes


def test_tiles_cover_every_pixel_once():
    for shape in [(1300, 2048), (603, 1272), (1024, 1024), (200, 700)]:
        cover = np.zeros(shape, np.int32)
        for box in tile_boxes(shape, 512):
            cover[box] += 1
        assert np.all(cover == 1), shape


def test_cut_tiles_relabels_drops_small_fragments_and_remaps_links():
    lab = np.zeros((40, 100), np.uint16)
    lab[5:15, 45:55] = 1  # cut by the border at x = 50: 5 + 5 columns
    lab[20:30, 47:52] = 2  # cut into 3 and 2 columns: fragments of 30 and 20 px
    lab[2:4, 2:4] = 3  # a whole object of 4 px, smaller than the limit: kept
    lab[30:35, 80:90] = 4
    img = np.arange(lab.size, dtype=np.float32).reshape(1, *lab.shape)
    tiles = cut_tiles(img, lab, [(1, 4), (2, 3)], tile_size=50, factor=1.0, min_fragment_area=25)
    assert [t.box for t in tiles] == [(slice(0, 40), slice(0, 50)), (slice(0, 40), slice(50, 100))]
    left, right = tiles
    assert left.label_map == {1: 1, 2: 2, 3: 3}  # 2's fragment has 30 px: kept
    assert right.label_map == {1: 1, 4: 2} and right.dropped == [2]  # 20 px fragment dropped
    assert sorted(np.unique(left.labels)) == [0, 1, 2, 3]
    assert right.links == [(1, 2)] and left.links == [(2, 3)]
    np.testing.assert_array_equal(right.image, img[:, :, 50:])


def test_empty_tiles_are_flagged():
    lab = np.zeros((40, 100), np.uint16)
    lab[5:10, 5:10] = 1
    tiles = cut_tiles(np.zeros((1, 40, 100)), lab, [], tile_size=50, factor=1.0)
    assert [t.empty for t in tiles] == [False, True]


# ---------------------------------------------------------------- packing


def test_clusters_follow_crop_bbox_dilation():
    lab = np.zeros((30, 60), np.uint16)
    lab[5:10, 5:10] = 1
    lab[5:10, 14:19] = 2  # 4 px apart: joined with gap 3 (dilation reaches 3 px each side)
    lab[5:10, 40:45] = 3  # far away
    assert clusters(lab, 3) == [[1, 2], [3]]
    assert clusters(lab, 1) == [[1], [2], [3]]


def test_pack_rectangles_never_overlap():
    rng = np.random.default_rng(0)
    shapes = [tuple(int(v) for v in rng.integers(10, 200, 2)) for _ in range(120)]
    placed = pack_rectangles(shapes, 256)
    assert sorted(p.crop for p in placed) == list(range(len(shapes)))
    cover: dict[int, np.ndarray] = {}
    for p in placed:
        h, w = shapes[p.crop][::-1] if p.rotated else shapes[p.crop]
        grid = cover.setdefault(p.bin, np.zeros((256, 256), np.int32))
        assert p.y + h <= 256 and p.x + w <= 256
        grid[p.y : p.y + h, p.x : p.x + w] += 1
    assert all(g.max() == 1 for g in cover.values())


def sources_from(folder, mask_filter="_masks", only=None, limit=None):
    cfg = check_config({"dir": str(folder), "mask_filter": mask_filter})
    p, _ = plan_from_config(cfg)
    out = []
    for pair in discover(folder, mask_filter=mask_filter).pairs[:limit]:
        if only and not pair.base.startswith(only):
            continue
        out.append(prepare_source(pair.base, read_array(pair.image), read_array(pair.label), [], p))
    return cfg, out


def demo_sources(names=("colony_dense_02", "sparse_01", "colony_large_02")):
    cfg = check_config({"dir": "."})
    out = []
    for name in names:
        img, lab = make_image(name)
        out.append(prepare_source(name, img, lab, [], plan()))
    return cfg, out


def check_packing(cfg, sources, bin_size=None):
    """Every cell of the tiles is in exactly one packed image with the same pixel count, crops do not
    overlap, and the provenance reproduces each crop from its source."""
    packing = dict(cfg["packing"], bin_size=bin_size or cfg["packing"]["bin_size"])
    by_name = {s.name: s for s in sources}
    tile_cells: dict[tuple[str, int], int] = {}
    crops = []
    for src in sources:
        tiles, cs = source_crops(src, cfg["tiling"], packing)
        for t in tiles:
            for old, new in t.label_map.items():
                # A cell cut by tiling is one entry per tile: (source, source label, tile)
                tile_cells[(src.name, old, t.index)] = int((t.labels == new).sum())
        crops += cs
    bins = assemble_bins(crops, packing["bin_size"], packing["rotation"])
    seen: dict[tuple[str, int, int], int] = {}
    for b in bins:
        occupied = np.zeros(b.labels.shape, np.int32)
        for r in b.rows:
            region = (slice(r["bin_y"], r["bin_y"] + r["height"]), slice(r["bin_x"], r["bin_x"] + r["width"]))
            occupied[region] += 1
            src = by_name[r["source"]]
            box = (slice(r["src_y0"], r["src_y1"]), slice(r["src_x0"], r["src_x1"]))
            src_lab = src.labels[box]
            got_lab = b.labels[region]
            got_img = b.image[(slice(None), *region)]
            if r["rotated"]:
                got_lab, got_img = np.rot90(got_lab, -1), np.rot90(got_img, -1, axes=(1, 2))
            cells_ = {int(k): v for k, v in r["label_map"].items()}
            expected = np.zeros(src_lab.shape, np.int64)
            for new, old in cells_.items():
                expected[src_lab == old] = new
            if not r["split_cell"]:
                np.testing.assert_array_equal(got_lab, expected)
                keep = crop_region(
                    src.labels,
                    (r["src_y0"], r["src_x0"], r["src_y1"], r["src_x1"]),
                    list(cells_.values()),
                    packing["pad"],
                    packing["rim"],
                )
                want = np.where(
                    keep[None],
                    src.norm.apply(src.image)[(slice(None), *box)],
                    np.asarray(src.norm.background, np.float32).reshape(-1, 1, 1),
                )
                np.testing.assert_array_equal(got_img, want.astype(np.float32))
            for new, old in cells_.items():
                key = (r["source"], old, r["tile"])
                seen[key] = seen.get(key, 0) + int((got_lab == new).sum())
        assert occupied.max() == 1, "crops overlap"
        ids = np.unique(b.labels[b.labels > 0])
        assert len(ids) == sum(r["cells"] for r in b.rows), "labels are unique per packed image"
    assert seen == tile_cells, "a cell was lost, duplicated or changed size"
    return bins


def test_packing_keeps_every_cell_once_and_provenance_reproduces_crops():
    cfg, sources = demo_sources()
    bins = check_packing(cfg, sources)
    assert len(bins) >= 1


def test_packing_splits_clusters_larger_than_a_bin_without_cutting_cells():
    cfg, sources = demo_sources(("colony_dense_01",))
    bins = check_packing(cfg, sources, bin_size=128)
    assert len(bins) > 1
    assert not any(r["split_cell"] for b in bins for r in b.rows)


def test_a_cell_larger_than_a_bin_is_cut_into_pieces():
    lab = np.zeros((300, 300), np.uint16)
    lab[20:280, 140:160] = 1  # a 260 px filament
    lab[50:60, 20:40] = 2
    img = np.where(lab > 0, 50, 200).astype(np.float32)[None]
    norm = normalisation(img, lab)
    crops = make_crops("f", 0, (0, 0), img, lab, [], {1: 1, 2: 2}, norm, bin_size=128)
    pieces = [c for c in crops if c.split_cell]
    assert len(pieces) == 3 and all(max(c.shape) <= 128 for c in crops)
    assert sum(int((c.labels > 0).sum()) for c in pieces) == int((lab == 1).sum())


def test_links_are_remapped_into_the_packed_image():
    lab = cells(n=4)
    img = lab.astype(np.float32)[None] + 1
    norm = normalisation(img, lab)
    crops = make_crops("s", 0, (0, 0), img, lab, [(1, 2)], {1: 11, 2: 12, 3: 13, 4: 14}, norm, gap=3)
    (b,) = assemble_bins(crops, 128)
    (link,) = b.links
    owners = {}
    for r in b.rows:
        owners.update({int(k): v for k, v in r["label_map"].items()})
    assert sorted(owners[v] for v in link) == [11, 12]


def test_packing_is_deterministic():
    cfg, sources = demo_sources(("colony_dense_03", "sparse_02"))
    runs = []
    for _ in range(2):
        crops = [c for s in sources for c in source_crops(s, cfg["tiling"], cfg["packing"])[1]]
        runs.append(assemble_bins(crops, 512))
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert json.dumps(a.rows, default=str) == json.dumps(b.rows, default=str)


@needs(DSB)
def test_packing_on_real_nuclei():
    cfg, sources = sources_from(DSB, only="dsb_fluo", limit=8)
    check_packing(cfg, sources)


@needs(BACT)
def test_packing_on_real_colonies():
    cfg, sources = sources_from(BACT, mask_filter="_cp_masks")
    bins = check_packing(cfg, sources)
    assert all(max(b.labels.shape) <= cfg["packing"]["bin_size"] for b in bins)


# ---------------------------------------------------------------- split


def test_split_is_stable_when_the_dataset_grows():
    names = [f"img{i:03d}" for i in range(50)]
    first = assign_split(names, 0.2, seed=0, min_test=0)
    grown = assign_split(names + [f"new{i:03d}" for i in range(200)], 0.2, seed=0, min_test=0)
    assert all(grown[n] == first[n] for n in names)
    share = sum(v == "test" for v in grown.values()) / len(grown)
    assert 0.1 < share < 0.3
    assert assign_split(names, 0.2, seed=1, min_test=0) != first


def test_split_keeps_groups_together_and_holds_out_at_least_min_test():
    names = [f"movie{m}_t{t:03d}" for m in range(6) for t in range(5)]
    roles = assign_split(names, 0.3, group_regex=r"^(movie\d+)_t\d+$", min_test=2)
    for m in range(6):
        assert len({roles[f"movie{m}_t{t:03d}"] for t in range(5)}) == 1
    assert sum(roles[f"movie{m}_t000"] == "test" for m in range(6)) >= 2
    assert assign_split(["a", "b"], 0.0, min_test=1) in (
        {"a": "test", "b": "train"},
        {"a": "train", "b": "test"},
    )
    assert set(assign_split(["a", "b", "c"], 0.9).values()) == {"train", "test"}  # one always trains


def test_validation_images_are_set_aside_from_training_images_only_when_enough_remain():
    ten = [f"img{i}" for i in range(10)]
    roles = assign_split(ten, 0.2, seed=0)
    train = sorted(n for n, r in roles.items() if r == "train")
    # The default (0.1, min_train 8) leaves a 10-image user >= 8 images to train on: no validation.
    assert len(train) == 8 and assign_validation(train, 0.1, min_train=8) == set()
    assert len(assign_validation(train, 0.1, min_train=7)) == 1  # at least one when enough remain
    names = [f"img{i:03d}" for i in range(300)]
    first = assign_validation(names, 0.1, seed=0)
    assert 15 < len(first) < 45 and len(names) - len(first) >= 8
    grown = assign_validation(names + [f"new{i:03d}" for i in range(100)], 0.1, seed=0)
    assert {n for n in grown if n in names} == first, "adding images never moves existing ones"
    # Different from the test split's hash: not the images that just missed the test threshold.
    test_roles = assign_split(names, 0.2, seed=0, min_test=0)
    assert {n for n in first if test_roles[n] == "test"} != set()
    movies = [f"movie{m}_t{t}" for m in range(20) for t in range(3)]
    chosen = assign_validation(movies, 0.2, group_regex=r"^(movie\d+)_t\d$")
    assert chosen and all({f"{n.split('_')[0]}_t{t}" for t in range(3)} <= chosen for n in chosen)
    assert assign_validation(names, 0.0) == set()


def test_sources_from_subfolders_and_test_dir(tmp_path):
    from helpers import write_pair

    from omnitrain.sources import build_sources

    write_pair(tmp_path / "train" / "day1", "a")
    write_pair(tmp_path / "train" / "day2", "a")
    write_pair(tmp_path / "train", "b")
    write_pair(tmp_path / "held", "a")
    cfg = check_config(
        {"dir": str(tmp_path / "train"), "test_dir": str(tmp_path / "held"), "look_one_level_down": True}
    )
    found = discover(tmp_path / "train", look_one_level_down=True)
    sources = build_sources(found, discover(tmp_path / "held"), cfg)
    assert {k: (v["name"], v["role"]) for k, v in sources.items()} == {
        "day1__a": ("day1/a", "train"),
        "day2__a": ("day2/a", "train"),
        "b": ("b", "train"),
        "test__a": ("a", "test"),
    }
    no_test = build_sources(
        found, None, check_config({"dir": str(tmp_path / "train"), "look_one_level_down": True})
    )
    assert sorted(v["role"] for v in no_test.values()) == ["test", "train", "train"]
    # Validation images come from the training images, never from test_dir; monitor.every 0: none.
    split = {"min_train": 2, "validation_fraction": 0.1}
    cfg = check_config({**cfg, "split": split})
    roles = {k: v["role"] for k, v in build_sources(found, discover(tmp_path / "held"), cfg).items()}
    assert roles["test__a"] == "test" and sorted(roles.values()) == ["test", "train", "train", "validation"]
    cfg = check_config({**cfg, "monitor": {"every": 0}})
    assert "validation" not in {v["role"] for v in build_sources(found, None, cfg).values()}
