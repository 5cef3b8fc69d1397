"""The model check: one-step errors and disagreement against a float64 brute-force recomputation,
Spearman's rank correlation against its closed form, and utils/check_model.py on a tiny run."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch
from conftest import run_script, write_config

from morel.models.diagnostics import one_step_check, rank_correlation
from morel.models.dynamics import DynamicsEnsemble


def test_one_step_check_against_brute_force():
    model = DynamicsEnsemble(3, 5, 2, (16,), seed=1)
    gen = torch.Generator().manual_seed(0)
    s, a, s_next = (torch.randn(7, d, generator=gen) for d in (5, 2, 5))
    check = one_step_check(model, s, a, s_next)
    with torch.no_grad():
        pred = model.predict_all(s, a).double().numpy()  # [3, 7, 5]
    real = s_next.double().numpy()
    for e, t in itertools.product(range(3), range(7)):
        assert check.error[e, t] == pytest.approx(np.sqrt(((pred[e, t] - real[t]) ** 2).sum()),
                                                  rel=1e-5)
    for t in range(7):
        widest = max(np.sqrt(((pred[i, t] - pred[j, t]) ** 2).sum())
                     for i, j in itertools.combinations(range(3), 2))
        assert check.disagreement[t] == pytest.approx(widest, rel=1e-5)


def test_rank_correlation_closed_form():
    # Spearman without ties: 1 - 6 sum d^2 / (n (n^2 - 1)); d = (0, 1, -1, 0) -> 0.8
    assert rank_correlation(np.array([1.0, 2, 3, 4]), np.array([10.0, 30, 20, 40])) == \
        pytest.approx(0.8)
    assert rank_correlation(np.array([1.0, 2, 3]), np.array([3.0, 2, 1])) == pytest.approx(-1.0)
    assert np.isnan(rank_correlation(np.ones(5), np.arange(5.0)))
    assert np.isnan(rank_correlation(np.arange(2.0), np.arange(2.0)))


def test_check_model_script_on_a_tiny_run(hopper_data, tmp_path):
    job = tmp_path / "job"
    made = run_script("run_morel.py", "--config", write_config(tmp_path, hopper_data),
                      "--output", job)
    assert made.returncode == 0, made.stderr
    plot = tmp_path / "check.png"
    res = run_script("utils/check_model.py", "--job", job, "--episodes", "2", "--plot", plot)
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines() if line.split()[:1] in (["0"], ["1"])]
    assert [r[0] for r in rows] == ["0", "1"]
    assert all(int(r[1]) >= 1 for r in rows)  # steps
    assert "truncate_lim" in res.stdout and "disagreement on the dataset: mean" in res.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = run_script("utils/check_model.py", "--job", job, "--episodes", "2", "--seed", "9")
    assert again.returncode == 0 and again.stdout != res.stdout.split("plot:")[0]
    paths = run_script("utils/check_model.py", "--job", job, "--episodes", "2", "--model_paths")
    assert paths.returncode == 0, paths.stderr
    assert paths.stdout.startswith(res.stdout.split("plot:")[0].rstrip())  # the same episodes
    table = paths.stdout.split("halt step under truncate_lim")[1].splitlines()
    assert "member 0" in table[1] and "member 1" in table[1] and "member 2" not in table[1]
    cells = [re.findall(r"(\d+)(T?) / (\d+|-)", line) for line in table[3:5]]
    assert [len(c) for c in cells] == [2, 2]  # 2 episodes x 2 members, horizon 20
    for length, ended, halt in itertools.chain(*cells):
        assert 1 <= int(length) <= 20 and (ended == "T" or int(length) == 20)
        assert halt == "-" or 4 <= int(halt) <= int(length) or ended == "T"
    ends = run_script("utils/check_model.py", "--job", job, "--episodes", "2", "--model_paths",
                      "--end_dims", "0", "1")
    assert ends.returncode == 0, ends.stderr
    table = ends.stdout.split("halt step under truncate_lim")[1].splitlines()
    value = r"\(([-+]\d+\.\d\d), ([-+]\d+\.\d\d)\)"
    for line in table[3:5]:
        found = re.findall(rf"(\d+)(T?) {value}", line)
        assert len(found) == 3  # the real episode and 2 members
        for _, ended, height, pitch in found:  # Hopper ends where z <= 0.7 or |angle| >= 0.2
            unhealthy = float(height) <= 0.705 or abs(float(pitch)) >= 0.195
            assert unhealthy or not ended
    assert [re.sub(r" \([^)]*\)", "", line).split() for line in table[3:5]] == [
        line.split() for line in paths.stdout.split("halt step under truncate_lim")[1]
        .splitlines()[3:5]]  # the same fates, values added
    for flags, message in ((["--end_dims", "0"], "--end_dims needs --model_paths"),
                           (["--model_paths", "--end_dims", "11"], "--end_dims 11: an observation "
                            "dimension of 'Hopper-v5' is in [0, 10]")):
        res = run_script("utils/check_model.py", "--job", job, "--episodes", "1", *flags)
        assert res.returncode == 2 and message in res.stderr


def test_check_model_refuses_what_is_not_a_morel_job(tmp_path):
    (tmp_path / "notes.png").write_text("my notes")
    res = run_script("utils/check_model.py", "--job", tmp_path)
    assert res.returncode == 2
    assert "no job_data.json; --job takes a run_morel.py job directory" in res.stderr
    (tmp_path / "job_data.json").write_text('{"seed": 1}')
    res = run_script("utils/check_model.py", "--job", tmp_path)
    assert res.returncode == 2 and "not a run_morel.py job (no truncate_lim)" in res.stderr
    res = run_script("utils/check_model.py", "--job", tmp_path, "--plot", tmp_path / "notes.png")
    assert res.returncode == 2 and "exists and is not a PNG image" in res.stderr
    assert (tmp_path / "notes.png").read_text() == "my notes"
