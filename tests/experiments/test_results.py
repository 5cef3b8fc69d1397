"""The results table's win counts: a win is a mean above both the behaviour return and BC."""

from __future__ import annotations

import numpy as np
from conftest import run_script

from morel.experiments.results import below_floor, markdown_table, run_score, win_counts


def _row(dataset: str, algo: str, mean: float, behaviour: float) -> dict:
    return {"env": "Hopper-v5", "dataset": dataset, "algo": algo, "behaviour_return": behaviour,
            "seeds": 2, "seed_list": "1 2", "score_mean": mean, "score_std": 1.0,
            "normalized_mean": float("nan"), "normalized_std": float("nan")}


ROWS = [
    _row("a", "bc", 100.0, 50.0), _row("a", "morel", 120.0, 50.0),   # beats both
    _row("a", "naive", 100.0, 50.0),                                  # ties BC: no win
    _row("b", "bc", 10.0, 200.0), _row("b", "morel", 150.0, 200.0),  # beats BC, not the data
    _row("b", "naive", 201.0, 200.0),                                 # beats both
    _row("c", "morel", 1e6, 0.0),                                     # no BC run: not counted
]


def test_win_counts_need_a_higher_mean_than_both_the_data_and_bc():
    assert win_counts(ROWS) == {"morel": (1, 2), "naive": (1, 2)}


def test_run_score_and_floor_breaks_of_a_curve():
    """The last 10% of the finite values (at least one), and the iterations after `after`
    below a floor: a strict comparison, NaN never below, iteration `after` itself not checked."""
    curve = np.array([5.0, 0.0, 9.0, 3.0, np.nan, 2.0, 4.0, 4.0, 8.0, 6.0, 1.0, 7.0])
    assert run_score(curve) == 7.0                      # 11 finite values: the last one
    assert run_score(curve, last_frac=0.3) == (6.0 + 1.0 + 7.0) / 3
    assert below_floor(curve, 4.0, after=1).tolist() == [3, 5, 10]
    assert below_floor(curve, 4.0, after=3).tolist() == [5, 10]
    assert below_floor(curve, 0.0, after=0).size == 0


def test_markdown_table_ends_with_the_win_counts():
    last = markdown_table(ROWS).splitlines()[-1]
    assert last == ("Datasets where the mean over seeds beats both the behaviour return and BC: "
                    "MOReL 1 of 2, naive MBRL 1 of 2.")


def test_block_without_readme_is_refused_before_any_work(tmp_path):
    made = run_script("experiments/results_table.py", "--sweep", tmp_path / "none", "--block",
                      "heldout")
    assert made.returncode == 2
    assert made.stderr.strip().splitlines()[-1].endswith(
        "error: --block names a block of the --readme file; add --readme FILE")
