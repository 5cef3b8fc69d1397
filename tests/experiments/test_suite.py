"""The dataset suite: suite-file checks, parts collected at the right size and mask, medium-replay
built from a train_policy.py run's samples."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REWARDS, ROOT, run_script

from morel.config.fields import ConfigError
from morel.data.datasets import Dataset, load_dataset, save_dataset
from morel.envs.reward_files import load_reward_file
from morel.experiments.suite import load_suite

SUITE = """{{'size': {size}, 'seed': 7, 'output_dir': '{out}',
'reward_files': {{'Hopper-v5': '{reward}'}},
'datasets': {{
  'hopper-random': {{'env_name': 'Hopper-v5', 'parts': [('random', 'pure')]}},
  'hopper-mixed': {{'env_name': 'Hopper-v5', 'parts': [('random', 'pure'),
                    ('{policy}', 'eps-0.3')]}},
  'hopper-medium-replay': {{'env_name': 'Hopper-v5', 'replay': '{replay}',
                            'replay_config': 'configs/npg_hopper_v5.txt', 'last_iteration': 1}},
}}}}"""


def _write_suite(tmp_path, size=400):
    path = tmp_path / "suite.txt"
    path.write_text(SUITE.format(size=size, out=tmp_path / "out", reward=REWARDS / "gym_hopper.py",
                                 policy=ROOT / "logging_policy" / "hopper_v5_medium.pt",
                                 replay=tmp_path / "npg"))
    return path


def _fake_replay_run(tmp_path, rng):
    """samples/iter_0..2.npz as train_policy.py --save_samples writes them (raw observations)."""
    for it in range(3):
        paths = [{"observations": rng.normal(size=(n, 11)).astype(np.float32),
                  "actions": rng.uniform(-1, 1, size=(n, 3)).astype(np.float32),
                  "rewards": np.full(n, float(it), np.float32), "terminated": True}
                 for n in rng.integers(20, 60, size=12)]
        save_dataset(Dataset(paths, {"obs_mask": [1.0] * 11, "iteration": it}),
                     tmp_path / "npg" / "samples" / f"iter_{it}.npz")


def test_suite_builds_parts_and_replay(tmp_path):
    rng = np.random.default_rng(0)
    _fake_replay_run(tmp_path, rng)
    suite_file = _write_suite(tmp_path)
    made = run_script("experiments/make_datasets.py", "--suite", suite_file)
    assert made.returncode == 0, made.stderr
    out = tmp_path / "out"
    mask = load_reward_file(REWARDS / "gym_hopper.py").obs_mask
    mixed = load_dataset(out / "hopper-mixed.npz")
    assert mixed.meta["obs_mask"] == pytest.approx(mask.tolist())
    assert mixed.meta["mode"] == "pure + eps-0.3"
    # two parts of at least 200 steps each (whole episodes)
    assert mixed.num_samples >= 400
    replay = load_dataset(out / "hopper-medium-replay.npz")
    assert replay.num_samples >= 400
    # only iterations 0 and 1 (rewards 0 and 1), never iteration 2; masked observations
    rewards = np.concatenate([p["rewards"] for p in replay.paths])
    assert set(np.unique(rewards)) <= {0.0, 1.0}
    raw = [load_dataset(tmp_path / "npg" / "samples" / f"iter_{i}.npz").paths for i in (0, 1)]
    raw_obs = {p["observations"].tobytes(): p["observations"] for p in raw[0] + raw[1]}
    for path in replay.paths:
        matches = [o for o in raw_obs.values() if o.shape == path["observations"].shape
                   and np.allclose(o * mask, path["observations"], rtol=1e-6)]
        assert matches, "a replay episode that is not a masked training episode"
    # a strict subset of the two iterations' episodes
    assert len(replay.paths) < len(raw[0]) + len(raw[1])
    assert replay.meta["replay_samples"] == sum(len(p["rewards"]) for p in raw[0] + raw[1])
    table = (out / "summary.md").read_text()
    assert "| hopper-mixed | Hopper-v5 |" in table and "hopper-medium-replay" in table
    readme = tmp_path / "README.md"
    readme.write_text("<!-- dataset-suite -->\n<!-- /dataset-suite -->\n")
    again = run_script("experiments/make_datasets.py", "--suite", suite_file, "--only",
                       "hopper-random",
                       "--readme", readme)
    assert again.returncode == 0 and "exists, skipped" in again.stdout
    assert readme.read_text() == f"<!-- dataset-suite -->\n{table}<!-- /dataset-suite -->\n"


@pytest.mark.parametrize("edit, message", [
    (("'parts': [('random', 'pure')]", "'parts': [('random',)]"), "string pairs"),
    (("'last_iteration': 1", "'last_iteration': 'x'"), "last_iteration"),
    (("'env_name': 'Hopper-v5', 'parts'", "'env_name': 'Ant-v5', 'parts'"), "no entry"),
    (("'size'", "'sizes'"), "unknown keys"),
])
def test_bad_suite_files_name_the_problem(tmp_path, edit, message):
    path = _write_suite(tmp_path)
    path.write_text(path.read_text().replace(*edit, 1))
    with pytest.raises(ConfigError, match=message):
        load_suite(path)


def test_unknown_only_name_is_a_one_line_error(tmp_path):
    made = run_script("experiments/make_datasets.py", "--suite", _write_suite(tmp_path), "--only",
                      "nope")
    assert made.returncode == 2 and made.stderr.startswith("error: --only: ['nope']")
    assert not (tmp_path / "out").exists()


def test_a_readme_without_the_block_is_refused_before_any_build(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no table here\n")
    made = run_script("experiments/make_datasets.py", "--suite", _write_suite(tmp_path),
                      "--readme", readme)
    assert made.returncode == 2
    assert "README.md: needs exactly one '<!-- dataset-suite -->'" in made.stderr
    assert not (tmp_path / "out").exists() and readme.read_text() == "# no table here\n"
