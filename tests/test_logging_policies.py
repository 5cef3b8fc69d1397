"""The shipped logging policies load and still score what logging_policy/README.md says."""

from __future__ import annotations

import math

from conftest import ROOT, run_script

from morel.npg.policies import load_policy

README = (ROOT / "logging_policy" / "README.md").read_text()
ROWS = [line for line in README.split("<!-- returns -->")[1].split("<!-- /returns -->")[0]
        .splitlines() if line.startswith("| ") and ".pt" in line]


def test_every_shipped_file_is_in_the_table():
    files = sorted(p.name for p in (ROOT / "logging_policy").glob("*.pt"))
    assert files and files == sorted(r.split("|")[1].strip() for r in ROWS)


def mean_std_cells(row: str) -> list[tuple[float, float]]:
    """The 'mean ± std' cells of a table row."""
    return [tuple(float(x) for x in cell.split("±")) for cell in row.split("|")[3:5]]


def test_returns_match_the_readme():
    """The same episodes (seed 0) on this CPU give returns within sampling error of the table's.

    Float rounding differs between CPUs (BLAS kernels), and the chaotic dynamics turn that into
    other episodes, so README's mean and ours are two independent 10-episode means: their
    difference has standard error sqrt((s_readme^2 + s_here^2) / 10), and we allow 4 of those
    (a false alarm has probability 6e-5 per number for normal returns) plus 1% of the mean, for
    policies whose std (the expert's 2) understates how far rounding moves their episodes. The
    std is not compared: with 10 episodes one fall triples it."""
    files = [ROOT / "logging_policy" / r.split("|")[1].strip() for r in ROWS]
    for path in files:
        _, meta = load_policy(path)
        assert path.name.startswith(meta["env_name"].lower().replace("-", "_"))
        assert meta["trained_by"] == "train_policy.py"
    out = run_script("utils/evaluate_policy.py", "--policy", *files, "--episodes", "10",
                     "--seed", "0")
    assert out.returncode == 0, out.stderr
    measured = [line for line in out.stdout.splitlines() if ".pt" in line]
    names = [[cell.strip() for cell in r.split("|")[1:3]] for r in measured]
    assert names == [[cell.strip() for cell in r.split("|")[1:3]] for r in ROWS]
    for here, readme in zip(measured, ROWS):
        for (mean, std), (ref_mean, ref_std) in zip(mean_std_cells(here), mean_std_cells(readme)):
            tolerance = 4 * math.sqrt((std**2 + ref_std**2) / 10) + 0.01 * abs(ref_mean)
            assert abs(mean - ref_mean) <= tolerance, (here, readme)
