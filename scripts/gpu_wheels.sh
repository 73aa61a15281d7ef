#!/usr/bin/env bash
# Wheels of what the pipeline needs beyond a GPU machine's own PyTorch stack (torch, numpy, scipy, scikit-image,
# tifffile, pandas, numba, opencv, matplotlib, pyyaml, jinja2, requests, psutil, ... are there), for a machine
# with no internet: omnipose (and cellpose_omni), ncolor, snakemake and its plugins' interfaces, rectpack, and
# their pure dependencies, at the versions of requirements/lock.txt.
#
#   scripts/gpu_wheels.sh PYTHON_VERSION DIR     e.g. scripts/gpu_wheels.sh 3.12 .whl
#
# Install them there on top of the existing torch, without an index and without resolving anything:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site DIR/*.whl && export PYTHONPATH=/tmp/site
# (docs/experiments.md: the one command that runs gpu_check.py and bench_quality.py --gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 2 ]; then
    echo "usage: scripts/gpu_wheels.sh PYTHON_VERSION DIR (e.g. 3.12 .whl)" >&2
    exit 2
fi
version=$1
dir=$2
# Not on the GPU machine (its package list: the device README of this project's tool library).
# Each is imported when the pipeline's rules import cellpose_omni, omnipose or snakemake (found by importing them
# on top of only the GPU machine's packages). Left out on purpose: PuLP (16 MB; snakemake imports it only for its
# ILP scheduler, and the profiles use the greedy one), lxml and narwhals (the GPU machine has them).
names=(
    omnipose ncolor rectpack edt fastremap mahotas mgen dbscan torchvf torch-optimizer pytorch-ranger cmap natsort
    aicsimageio dask importlib_metadata lazy-importer ome-types pydantic pydantic_core typing-inspection
    annotated-types pydantic-extra-types xsdata pbr pyinstrument colour-science imagecodecs
    snakemake snakemake-interface-common snakemake-interface-executor-plugins snakemake-interface-logger-plugins
    snakemake-interface-report-plugins snakemake-interface-scheduler-plugins snakemake-interface-storage-plugins
    yte dpath conda-inject ConfigArgParse connection_pool docutils GitPython gitdb smmap humanfriendly immutables
    nbformat fastjsonschema jupyter_core traitlets smart_open throttler argparse-dataclass tenacity SQLAlchemy sqlmodel
    jsonschema jsonschema-specifications referencing rpds-py
)
pins=()
for name in "${names[@]}"; do
    pin=$(grep -i -E "^${name//-/[-_]}==" requirements/lock.txt || true)
    if [ -z "$pin" ]; then
        echo "gpu_wheels.sh: $name is not pinned in requirements/lock.txt" >&2
        exit 1
    fi
    pins+=("$pin")
done
mkdir -p "$dir"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
    manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
for pin in "${pins[@]}"; do
    if ! python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$version" \
        --implementation cp "${platforms[@]}" -d "$dir" "$pin" 2>/dev/null; then
        # Published as source only (rectpack, ncolor, ...): pure Python, so a wheel built here fits any Python 3.
        python3 -m pip wheel -q --no-deps -w "$dir" "$pin"
        built=$(ls "$dir" | grep -i "^${pin%%==*}-" | grep -v -- "-none-any.whl$" || true)
        built=${built//_/-}
        if [ -n "$built" ]; then
            echo "gpu_wheels.sh: $pin has no wheel for Python $version and is not pure Python ($built)" >&2
            exit 1
        fi
    fi
done
echo "$(ls "$dir"/*.whl | wc -l) wheels in $dir: $(du -sh "$dir" | cut -f1)"
