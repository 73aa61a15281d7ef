"""Rule validate_training_set: the produced training set passes the validator, and Omnipose is unlikely to
give up on a crop of it (no Omnipose import here: the train job checks that Omnipose's own loader finds and
loads the same pairs, omnitrain.training.omnipose_disagreements)."""

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

from omnitrain.channels import ChannelPlan
from omnitrain.discovery import discover
from omnitrain.imageio import read_array
from omnitrain.pretrained import rescaling_diam_mean
from omnitrain.problems import ERROR, Problem, format_report
from omnitrain.runlog import get_logger, run_step
from omnitrain.sparsity import source_names, sparse_image_problems
from omnitrain.training import DEFAULT_TYX, crops_per_epoch
from omnitrain.validation import Settings, summary_text, validate_pairs


def sparse_check(pairs, table, cfg, provenance, sources, log) -> list[Problem]:
    """Training images Omnipose would likely give up on ('Sparse or over-dense image detected')."""
    from omnitrain.sizemodel import diameters

    names = source_names(provenance, sources)
    images = {}
    for pair in pairs:
        labels = read_array(pair.label)
        diameter = float(diameters([labels])[0]) if cfg["diameter"] else 0.0
        images[str(pair.image)] = {
            "labels": labels,
            "diameter": diameter,
            "source": names.get(pair.base, "?"),
        }
    tyx = tuple(cfg["tyx"] or DEFAULT_TYX[cfg["dim"]])
    found, problems = sparse_image_problems(
        images,
        tyx,
        rescaling_diam_mean(cfg),
        cfg["n_epochs"],
        crops_per_epoch(cfg, len(sources)),
        cfg["min_train_masks"],
        cfg["validation"]["sparse_crop_risk"],
    )
    table["sparse_crop_chance"] = [round(found[i][0], 4) if i in found else None for i in table["image"]]
    table["sparse_failures"] = [float(f"{found[i][1]:.3g}") if i in found else None for i in table["image"]]
    worst = max(found.values(), default=(0.0, 0.0))
    log.info(f"sparse-image check: {len(found)} image(s), largest uniform-crop chance {worst[0]:.3f}")
    return problems


def main(sm) -> None:
    log = get_logger(sm.log[0])
    cfg = sm.params.settings
    folder = Path(sm.input.trainset)
    # The pipeline's own output: every channel as written (channel axis first when there are several).
    settings = replace(
        Settings.from_config(cfg),
        plan=ChannelPlan(cfg["nchan"], None, "the training set"),
        channel_axis=0 if cfg["nchan"] > 1 else None,
    )
    found = discover(folder)
    table, problems = validate_pairs(found, settings, min_pairs=1)  # one packed image can be enough
    if cfg["tiling"]["keep_empty"]:  # tiles without objects were kept on purpose as negative examples
        problems = [
            Problem("warning", p.file, p.code, p.what, "kept because tiling.keep_empty is true")
            if p.code == "empty-labels"
            else p
            for p in problems
        ]
    if cfg["tiling"]["keep_empty"]:
        log.info("sparse-image check skipped: tiling.keep_empty lets Omnipose train on blank crops")
    elif found.pairs:
        problems += sparse_check(found.pairs, table, cfg, sm.input.provenance, sm.params.sources, log)
    summary = summary_text(table, problems, f"Validation of the produced training set {folder}")
    with open(sm.log[0], "a") as fh:
        fh.write(summary + "\n")
    if [p for p in problems if p.severity == ERROR]:
        sys.stderr.write(
            "\n" + format_report(problems, f"The produced training set {folder} is not valid") + "\n"
        )
        sys.exit(1)
    table.to_csv(sm.output.table, sep="\t", index=False)
    Path(sm.output.summary).write_text(summary + "\n")
    log.info(summary)


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
