"""Rule train: Omnipose's own CellposeModel.train on the pipeline's training set (omnitrain/trainer.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

from omnitrain.omni import omnipose_models
from omnitrain.runlog import get_logger, route_omnipose, run_step
from omnitrain.trainer import TrainingStopped, TrainJob, train


def main(sm) -> None:
    log = get_logger(sm.log[0])
    omnipose_models()  # imported before its log lines are routed to the rule's log
    route_omnipose(sm.log[0])
    train(TrainJob.from_snakemake(sm), log)


run_step(main, snakemake, said=(TrainingStopped,))  # noqa: F821 (defined by Snakemake)
