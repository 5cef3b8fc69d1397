"""Results table of a sweep: behaviour return, BC, naive MBRL and MOReL per env x dataset.

    python experiments/results_table.py --sweep runs/sweep_suite --plot assets/results_curves.png \
        --readme docs/results.md
    python experiments/results_table.py --sweep runs/sweep_heldout --readme docs/results.md \
        --block heldout

A run's score is the mean eval_score over its last 10% of iterations (BC: its one score over
its evaluation episodes); a cell is mean ± std over seeds, with the D4RL-normalised mean in
brackets; under the table, per algo, the datasets where its mean beats both the behaviour
return and BC's mean. Writes SWEEP/results.csv (one row per dataset x algo, raw and
normalised) and SWEEP/results.md (the Markdown table), prints the table, and draws the
learning curves; with --readme, the table also replaces the `<!-- results -->` block (or the
--block NAME one) of that Markdown file.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from morel.core.atomic import write_text_atomic
from morel.core.errors import run_cli
from morel.core.marked_block import check_marked_block, replace_marked_block
from morel.experiments.results import collect_results, markdown_table, summary_rows
from morel.runs.plots import plot_learning_curves


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sweep", default="runs/sweep_suite", help="sweep output folder")
    p.add_argument("--plot", default=None, help="learning-curve PNG (default SWEEP/curves.png)")
    p.add_argument("--readme", default=None,
                   help="Markdown file whose <!-- results --> block gets the table")
    p.add_argument("--block", default=None,
                   help="name of the --readme block: <!-- NAME --> ... <!-- /NAME --> "
                        "(default: results)")
    args = p.parse_args()
    if args.block and not args.readme:
        p.error("--block names a block of the --readme file; add --readme FILE")
    block = args.block or "results"
    if args.readme:
        check_marked_block(args.readme, block)
    sweep = Path(args.sweep)
    results = collect_results(sweep)
    rows = summary_rows(results)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(sweep / "results.csv", buffer.getvalue())
    table = markdown_table(rows)
    write_text_atomic(sweep / "results.md", table)
    curves: dict = {}
    levels: dict = {}
    for r in results:
        levels.setdefault(r.dataset, {"behaviour": r.behaviour_return})
        if len(r.curve) > 1:
            curves.setdefault(r.dataset, {}).setdefault(r.algo, []).append(r.curve)
    for row in rows:
        if row["algo"] == "bc":
            levels[row["dataset"]]["BC"] = row["score_mean"]
    plot = Path(args.plot) if args.plot else sweep / "curves.png"
    plot_learning_curves(curves, levels, plot)
    if args.readme:
        replace_marked_block(args.readme, block, table)
    print(table)
    print(f"{len(results)} runs; wrote {sweep / 'results.csv'}, {sweep / 'results.md'}, {plot}")


if __name__ == "__main__":
    run_cli(main)
