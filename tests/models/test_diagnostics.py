"""The model check: one-step errors and disagreement against a float64 brute-force recomputation,
Spearman's rank correlation against its closed form, and utils/check_model.py on a tiny run."""

from __future__ import annotations

import itertools
import json
import re
import shutil

import numpy as np
import pytest
import torch
from conftest import ROOT, run, run_script, write_config

from morel.data.datasets import Dataset, load_dataset, save_dataset
from morel.models.diagnostics import (
    data_distance,
    nearest_distances,
    one_step_check,
    rank_correlation,
    reach_steps,
    survival_curve,
    survival_row,
)
from morel.models.dynamics import DynamicsEnsemble
from morel.models.files import save_ensemble


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


def test_nearest_distances_against_brute_force():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(300, 4))
    points[7] = points[11]  # a duplicate: its nearest other pair is at distance 0
    queries = rng.normal(size=(70, 4))
    brute = np.sqrt(((queries[:, None] - points[None]) ** 2).sum(-1))  # [70, 300] float64
    got = nearest_distances(torch.as_tensor(queries, dtype=torch.float32),
                            torch.as_tensor(points, dtype=torch.float32), chunk=32)
    np.testing.assert_allclose(got, brute.min(1), rtol=1e-5)
    own = nearest_distances(torch.as_tensor(points, dtype=torch.float32),
                            torch.as_tensor(points, dtype=torch.float32), skip_nearest=True)
    apart = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    np.fill_diagonal(apart, np.inf)
    np.testing.assert_allclose(own, apart.min(1), rtol=1e-5, atol=1e-6)
    assert own[7] == own[11] == 0.0


def test_data_distance_scales_by_the_data_std():
    rng = np.random.default_rng(4)
    pairs = rng.normal(size=(200, 3)) * np.array([1.0, 10.0, 0.01]) + 5.0
    dist = data_distance(pairs, sample=50, seed=0)
    scaled = (pairs - pairs.mean(0)) / pairs.std(0)
    apart = np.sqrt(((scaled[:, None] - scaled[None]) ** 2).sum(-1))  # [200, 200] float64
    np.fill_diagonal(apart, np.inf)
    assert len(dist.own) == 50
    assert all(np.isclose(apart.min(1), d, rtol=1e-4).any() for d in dist.own)
    query = pairs[:2] + np.array([0.0, 0.0, 0.03])  # three data stds along the third axis
    moved = (query - pairs.mean(0)) / pairs.std(0)
    expected = np.sqrt(((moved[:, None] - scaled[None]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(dist.of(query), expected, rtol=1e-4)
    assert (dist.of(query) > 1.0).all() and np.allclose(dist.of(pairs[:5]), 0.0, atol=1e-4)


def test_rank_correlation_closed_form():
    # Spearman without ties: 1 - 6 sum d^2 / (n (n^2 - 1)); d = (0, 1, -1, 0) -> 0.8
    assert rank_correlation(np.array([1.0, 2, 3, 4]), np.array([10.0, 30, 20, 40])) == \
        pytest.approx(0.8)
    assert rank_correlation(np.array([1.0, 2, 3]), np.array([3.0, 2, 1])) == pytest.approx(-1.0)
    assert np.isnan(rank_correlation(np.ones(5), np.arange(5.0)))
    assert np.isnan(rank_correlation(np.arange(2.0), np.arange(2.0)))


def test_check_model_script_on_a_tiny_run(tiny_morel_job, tmp_path):
    job = tiny_morel_job
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
    far = run_script("utils/check_model.py", "--job", job, "--episodes", "2", "--model_paths",
                     "--data_distance")
    assert far.returncode == 0, far.stderr
    assert far.stdout.startswith(res.stdout.split("plot:")[0].rstrip())  # the same episodes
    own = re.search(r"nearest other: p50 ([\d.]+), p99 ([\d.]+), p99.9 ([\d.]+), p100 ([\d.]+)",
                    far.stdout)
    assert own and 0 < float(own[1]) <= float(own[2]) <= float(own[3]) <= float(own[4])
    table = far.stdout.split("steps over the data's p99.9")[1].splitlines()
    for k, line in enumerate(table[2:4]):
        episode, steps, mean, _, top, last, over = line.split()[:7]
        assert (int(episode), int(steps)) == (k, int(rows[k][1]))
        assert 0 <= float(mean) <= float(top) and float(last) <= float(top)
        assert (int(over) > 0) == (float(top) > float(own[3]))
    cells = [re.findall(r"(\d+)T? / (?:\d+|-) / (\d+|-)", line) for line in
             far.stdout.split("first step over the data's p99.9")[1].splitlines()[3:5]]
    assert [len(c) for c in cells] == [2, 2]
    assert all(step == "-" or int(step) < int(length) for length, step in itertools.chain(*cells))
    for flags, message in ((["--end_dims", "0"], "--end_dims needs --model_paths"),
                           (["--model_paths", "--end_dims", "11"], "--end_dims 11: an observation "
                            "dimension of 'Hopper-v5' is in [0, 10]")):
        res = run_script("utils/check_model.py", "--job", job, "--episodes", "1", *flags)
        assert res.returncode == 2 and message in res.stderr
    job = shutil.copytree(job, tmp_path / "moved")  # the shared job stays as it is
    job_data = json.loads((job / "job_data.json").read_text())
    job_data["data_file"] = str(tmp_path / "gone.pickle")
    (job / "job_data.json").write_text(json.dumps(job_data))
    res = run_script("utils/check_model.py", "--job", job, "--episodes", "1", "--data_distance")
    assert res.returncode == 2
    assert (f"--data_distance: the run's data_file {tmp_path / 'gone.pickle'} is not found; run "
            "from the directory the run was started in") in res.stderr


@pytest.mark.parametrize("script", ["utils/check_model.py", "utils/check_gradient.py"])
def test_the_checks_refuse_what_is_not_a_morel_job(script, tmp_path, monkeypatch, capsys):
    (tmp_path / "notes.png").write_text("my notes")
    err = run(script, ["--job", tmp_path], monkeypatch, capsys)
    assert "no job_data.json; --job takes a run_morel.py job directory" in err
    (tmp_path / "job_data.json").write_text('{"seed": 1}')
    err = run(script, ["--job", tmp_path], monkeypatch, capsys)
    assert "not a run_morel.py job (no truncate_lim)" in err
    if script == "utils/check_model.py":
        err = run(script, ["--job", tmp_path, "--plot", tmp_path / "notes.png"], monkeypatch,
                  capsys)
        assert "exists and is not a PNG image" in err
    assert (tmp_path / "notes.png").read_text() == "my notes"


def test_survival_statistics_closed_form():
    """Paths of lengths 1, 3, 3, 10 (two ended): count, mean, median, the share reaching
    1, 2, 5, 10 steps (a tenth, a quarter rounded, half and all of 10) and the share ended;
    the curve is the share with length >= t."""
    lengths, ended = np.array([1, 3, 3, 10]), np.array([True, True, False, False])
    steps = reach_steps(10)
    assert steps == [1, 2, 5, 10] and reach_steps(1) == [1] and reach_steps(4) == [1, 2, 4]
    assert survival_row(lengths, ended, steps) == pytest.approx(
        [4, 4.25, 3.0, 1.0, 0.75, 0.25, 0.25, 0.5])
    np.testing.assert_allclose(survival_curve(lengths, 10),
                               [1, 1, 0.75, 0.75] + [0.25] * 7)


def survival_table(stdout: str) -> dict[str, list[str]]:
    """check_survival.py's rows by their label (the first cells up to the numbers)."""
    rows = {}
    for line in stdout.splitlines():
        label = re.match(r"(dataset|member \d+|all members)\s", line)
        if label:
            rows[label.group(1)] = line[label.end():].split()
    return rows


def test_check_survival_script_on_a_tiny_ensemble(hopper_data, tmp_path):
    """The dataset's row is its own episodes; each member rolls every episode's first state;
    'all members' pools them; the same seed repeats the table; the plot is a PNG."""
    model = tmp_path / "m.pt"
    fit = run_script("learn_model.py", "-c", write_config(tmp_path, hopper_data), "-o", model)
    assert fit.returncode == 0, fit.stderr
    plot = tmp_path / "survival.png"
    args = ["--model", model, "--data", hopper_data, "--include",
            ROOT / "utils" / "reward_functions" / "gym_hopper.py"]
    res = run_script("utils/check_survival.py", *args, "--end_dims", "0", "1", "--plot", plot)
    assert res.returncode == 0, res.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = survival_table(res.stdout)
    assert list(rows) == ["dataset", "member 0", "member 1", "all members"]
    paths = load_dataset(hopper_data).paths
    lengths = np.array([len(p["rewards"]) for p in paths])
    ended = np.array([bool(p["terminated"]) for p in paths])
    steps = reach_steps(lengths.max())
    k = 4 + len(steps)  # paths, mean, median, the reach shares, ended; then the end dims
    expected = survival_row(lengths, ended, steps)  # printed to 0.1 steps and 0.001 shares
    assert [float(x) for x in rows["dataset"][:3]] == pytest.approx(expected[:3], abs=0.06)
    assert [float(x) for x in rows["dataset"][3:k]] == pytest.approx(expected[3:], abs=6e-4)
    heights = [float(p["observations"][-1][0]) for p in paths if p["terminated"]]
    if heights:  # the last stored state of each ended episode, raw units (height unmasked)
        assert float(rows["dataset"][k].rstrip(",")) == pytest.approx(np.mean(heights),
                                                                      abs=0.006)
    members = [[float(x) for x in rows[f"member {e}"][:k]] for e in (0, 1)]
    pooled = [float(x) for x in rows["all members"][:k]]
    assert [m[0] for m in members] == [len(paths)] * 2 and pooled[0] == 2 * len(paths)
    assert pooled[1] == pytest.approx((members[0][1] + members[1][1]) / 2, abs=0.06)
    assert all(1 <= m[1] <= lengths.max() for m in members)
    again = run_script("utils/check_survival.py", *args, "--end_dims", "0", "1")
    assert again.returncode == 0 and again.stdout == res.stdout.split("plot:")[0]


def test_check_survival_refuses_what_it_cannot_reproduce(hopper_data, tmp_path):
    """A dataset of another noise mode, one without a policy, an out-of-range dimension and a
    reward file without a termination function each get a one-line error, exit 2."""
    model = tmp_path / "m.pt"
    save_ensemble(DynamicsEnsemble(2, 11, 3, (8,), seed=0), str(model))
    data = load_dataset(hopper_data)
    hopper = ROOT / "utils" / "reward_functions" / "gym_hopper.py"
    gauss = save_dataset(Dataset(data.paths, {**data.meta, "mode": "gauss-0.1"}),
                         tmp_path / "gauss.npz")
    bare = save_dataset(Dataset(data.paths, {k: v for k, v in data.meta.items()
                                             if k != "policy"}), tmp_path / "bare.npz")
    no_end = tmp_path / "no_end.py"
    no_end.write_text(hopper.read_text().replace("def termination_function", "def _unused"))
    for data_file, include, flags, message in (
            (gauss, hopper, [], "collected with --mode gauss-0.1"),
            (bare, hopper, [], "its metadata names no policy file; give --policy"),
            (hopper_data, hopper, ["--end_dims", "11"],
             "--end_dims 11: an observation dimension of 'Hopper-v5' is in [0, 10]"),
            (hopper_data, no_end, [], "defines no termination_function")):
        res = run_script("utils/check_survival.py", "--model", model, "--data", data_file,
                         "--include", include, *flags)
        assert res.returncode == 2 and message in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
