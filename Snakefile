"""Reproducible Omnipose training: from a folder of images and label matrices to a model.

Run `make demo` for the built-in demo, or `snakemake --cores 8` with config/config.yaml edited.
"""

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/register.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/export.smk"


report: REPORT_INTRO


rule all:
    default_target: True
    input:
        final_targets(),


# `snakemake segment --config segment_dir=FOLDER [segment_model=latest]`: segment new images with a
# registered version, and draft labels to correct (docs/annotation-loop.md).
rule segment:
    input:
        segment_targets,


# `snakemake export [--config export='{model: latest}']`: a BioImage Model Zoo package of a registered version,
# tested with bioimageio.core (docs/export.md).
rule export:
    input:
        export_targets,
