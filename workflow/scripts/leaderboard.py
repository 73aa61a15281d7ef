"""Rule leaderboard: every experiment's held-out scores (mean and sd over folds), as a table and a plot."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

from omnitrain.leaderboard import leaderboard, plot, run_table
from omnitrain.runlog import get_logger, run_step


def main(sm) -> None:
    log = get_logger(sm.log[0])
    metric = sm.params.metric
    runs = run_table(sm.input.records)
    board = leaderboard(runs, metric)
    runs.to_csv(sm.output.runs, sep="\t", index=False, float_format="%.4f")
    board.to_csv(sm.output.table, sep="\t", index=False, float_format="%.4f")
    plot(board, runs, metric, sm.output.plot)
    best = board.iloc[0]
    log.info(
        f"leaderboard of {len(board)} experiment(s), {len(runs)} run(s), by held-out {metric}: best"
        f" {best['experiment']} ({best[f'{metric}_mean']:.3f}); {sm.output.table}"
    )


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
