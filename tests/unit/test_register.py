"""The register step's library (omnitrain/register.py): the report's first page of a version."""

from __future__ import annotations

import copy

import pytest

from omnitrain.register import report_intro, selected_model

docutils_core = pytest.importorskip("docutils.core")

RECORD = {
    "version": "0123456789ab",
    "versions": {"model": "ba9876543210"},
    "params": {
        "steps": {
            "model": {"nchan": 1, "nclasses": 2, "dim": 2, "n_epochs": 400},
            "validation": {"dir": "resources/demo", "test_dir": None},
        }
    },
    "data": {"train_images": 5, "test_images": 3, "training_images": 2},
    "model": {
        "selected": {"select": "best", "file": "results/models/ba98/models/" + "x_" * 45 + "trainset_best"}
    },
    "scores": {
        "summary": {"images": 3, "ap50": 0.957, "mean_ap": 0.92, "ap50_low": 0.94, "ap50_high": 0.98}
        | {"mean_ap_low": 0.9, "mean_ap_high": 0.96}
    },
}


def html_of(rst: str) -> str:
    parts = docutils_core.publish_parts(rst, writer="html", settings_overrides={"report_level": 2})
    return parts["html_body"]


def test_the_first_page_says_what_was_trained_and_its_scores_and_wraps_the_model_path():
    text = report_intro(RECORD)
    html = html_of(text + "\n.. _loss_curve.png: x\n.. _overlays.png: x\n.. _ap_curve.png: x\n"
                   ".. _preview.png: x\n.. _changes.md: x\n")  # fmt: skip
    assert "Omnipose model, version 0123456789ab" in html
    assert "<strong>AP&#64;0.5 0.957</strong>" in html and "AP&#64;0.5 0.94 to 0.98" in html
    assert "mean AP 0.90 to 0.96" in html
    assert 'style="font-family: monospace; overflow-wrap: anywhere">results/models/ba98/models/x_' in html
    assert "System Message" not in html and "mailto" not in html  # AP@0.5 is no e-mail address


def test_without_an_interval_or_held_out_images_the_page_says_what_to_set():
    one = copy.deepcopy(RECORD)
    one["scores"]["summary"] |= {"images": 1, "ap50_low": None}
    assert "No interval: it needs two or more held-out images" in report_intro(one)
    none = copy.deepcopy(RECORD)
    none["scores"]["summary"] = {"images": 0, "ap50": None}
    assert "No held-out image: evaluate on unseen images" in report_intro(none)


def test_the_selected_model_names_the_best_epoch_only_when_monitored_and_chosen():
    card = {"epochs": 40, "monitoring": {"on": True, "metric": "ap50", "best_score": 0.8, "best_epoch": 12}}
    assert selected_model(card, "m_best", "best") | {} == {
        "select": "best", "file": "m_best", "epoch": 12, "metric": "ap50", "score": 0.8, "best_epoch": 12,
    }  # fmt: skip
    assert selected_model(card, "m", "last")["epoch"] == 40
    assert selected_model({"epochs": 40, "monitoring": {"on": False}}, "m", "best") == {
        "select": "last", "file": "m", "epoch": 40,
    }  # fmt: skip
