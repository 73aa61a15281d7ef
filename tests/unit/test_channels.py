"""Channel plans from the omnipose flags, and channel-axis inference."""

from __future__ import annotations

import numpy as np
import pytest

from omnitrain.channels import GREY, ZERO, find_channel_axis, plan_from_config


def config(**kw):
    base = {"nchan": 1, "chan": 0, "chan2": 0, "all_channels": False, "channels": {"select": None}}
    base.update(kw)
    return base


@pytest.mark.parametrize(
    ("kw", "sources"),
    [
        ({}, (GREY,)),
        ({"chan": 2}, (1,)),
        ({"chan": 2, "chan2": 3, "nchan": 2}, (1, 2)),
        ({"chan": 0, "chan2": 1, "nchan": 2}, (GREY, 0)),
        ({"nchan": 2}, (GREY, ZERO)),  # Cellpose's chan2 0 with two channels: an empty second one
        ({"chan": 2, "chan2": 1, "nchan": 2}, (1, 0)),  # the cyto models: green cytoplasm, red nuclei
        ({"channels": {"select": [2, 0]}, "nchan": 2}, (2, 0)),
        ({"all_channels": True, "nchan": 3}, None),
    ],
)
def test_plans(kw, sources):
    plan, problems = plan_from_config(config(**kw))
    assert problems == [] and plan.sources == sources


def test_plan_apply_grey_select_and_all():
    img = np.stack([np.full((4, 5), v, np.float32) for v in (1, 2, 6)], axis=-1)  # YXC
    grey, _ = plan_from_config(config())
    assert grey.apply(img, 2).shape == (1, 4, 5) and grey.apply(img, 2)[0, 0, 0] == 3
    pick, _ = plan_from_config(config(channels={"select": [2, 0]}, nchan=2))
    assert pick.apply(img, 2)[:, 0, 0].tolist() == [6, 1]
    everything, _ = plan_from_config(config(all_channels=True, nchan=3))
    assert everything.apply(img, 2).shape == (3, 4, 5)
    assert grey.apply(img[..., 0], None).shape == (1, 4, 5)
    zero, _ = plan_from_config(config(nchan=2))
    assert zero.apply(img, 2)[:, 0, 0].tolist() == [3, 0] and zero.incompatibility(1) is None
    assert "zeros" in zero.describe()


def test_incompatibility_messages():
    plan, _ = plan_from_config(config(chan=3))
    assert plan.incompatibility(3) is None
    assert "channel index 2" in plan.incompatibility(2)
    allc, _ = plan_from_config(config(all_channels=True, nchan=2))
    assert "exactly 2" in allc.incompatibility(3)


@pytest.mark.parametrize(
    ("img", "lab", "given", "axis"),
    [
        ((64, 80), (64, 80), None, None),  # YX
        ((3, 64, 80), (64, 80), None, 0),  # CYX
        ((64, 80, 3), (64, 80), None, 2),  # RGB, YXC
        ((64, 80, 2), None, None, 2),  # no label: the smaller end
        ((2, 64, 80), (64, 80), -3, 0),  # given, negative
        ((64, 80, 4), (64, 80), 2, 2),
    ],
)
def test_find_channel_axis(img, lab, given, axis):
    assert find_channel_axis(img, lab, 2, given) == (axis, None)


def test_find_channel_axis_errors():
    assert "axes" in find_channel_axis((2, 2, 64, 64), (64, 64), 2, None)[1]
    assert "set channel_axis" in find_channel_axis((5, 5, 5), (5, 5), 2, None)[1]
    assert "does not exist" in find_channel_axis((3, 8, 8), (8, 8), 2, 5)[1]
