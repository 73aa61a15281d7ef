"""envs/*.yaml (for --use-conda) pin exactly what requirements/lock.txt pins; every rule uses one."""

from __future__ import annotations

import re

import yaml
from helpers import ROOT


def lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements/lock.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_conda_env_pins_equal_the_lock():
    pins = lock()
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert len(envs) >= 2
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
        assert pip, env
        for req in pip:
            name, version = req.split("==")
            assert pins[name.lower().replace("_", "-")] == version, (env.name, req)
        assert "python=3.11" in spec["dependencies"]


def test_top_level_pins_are_in_the_lock():
    pins = lock()
    for line in (ROOT / "requirements/top.txt").read_text().splitlines():
        if "==" in line:
            name, version = line.split("==")
            assert pins[name.lower()] == version
    for name in (
        "omnipose",
        "ncolor",
        "torch",
        "torchvision",
        "snakemake",
        "rectpack",
        "tifffile",
        "pygments",
    ):
        assert name in pins
    assert pins["omnipose"] == "1.1.4" and pins["ncolor"] == "1.5.3" and pins["torch"] == "2.14.1"


def test_every_rule_has_a_conda_env_and_a_log():
    sources = [ROOT / "Snakefile", *sorted((ROOT / "workflow/rules").glob("*.smk"))]
    for path in sources:
        text = path.read_text()
        for block in re.split(r"\n(?=(?:rule|checkpoint) )", text)[1:]:
            name = block.split()[1].rstrip(":")
            if name in ("all", "segment", "export"):  # targets: they gather other rules' outputs, run nothing
                assert "\n    output:" not in block and "\n    script:" not in block
                continue
            assert "\n    conda:" in block, f"rule {name} in {path.name} has no conda env"
            assert "\n    log:" in block, f"rule {name} in {path.name} has no log"
            env = re.search(r'conda:\s*\n\s*"([^"]+)"', block).group(1)
            assert (path.parent / env).resolve().is_file(), env
