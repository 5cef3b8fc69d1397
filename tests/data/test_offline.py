"""A MOReL run's offline data: the models' actions are clipped to the env's box with
clip_actions, behaviour cloning keeps the recorded ones."""

from __future__ import annotations

import numpy as np
import torch

from morel.config.files import config_from_dict
from morel.data.datasets import Dataset, save_dataset
from morel.data.offline import load_offline_data, load_reward


def test_clip_actions_clips_the_models_actions_and_keeps_the_recorded_ones(tmp_path):
    rng = np.random.default_rng(0)
    paths = [{"observations": rng.normal(size=(6, 3)).astype(np.float32),
              "actions": rng.uniform(-3, 3, (6, 2)).astype(np.float32),
              "rewards": rng.normal(size=6).astype(np.float32), "terminated": False}
             for _ in range(4)]
    data_file = save_dataset(Dataset(paths, {"obs_mask": [1.0] * 3}), tmp_path / "d.npz")
    box = (np.array([-1.0, -0.5]), np.array([1.0, 2.0]))
    for clip in (True, False):
        cfg = config_from_dict({"env_name": "Hopper-v5", "data_file": str(data_file),
                                "learn_reward": True, "clip_actions": clip})
        data = load_offline_data(cfg, 3, 2, load_reward(cfg, None, 3, 2), torch.device("cpu"),
                                 box)
        recorded = np.concatenate([p["actions"][:-1] for p in paths])  # transitions: T - 1
        np.testing.assert_array_equal(data.raw_actions.numpy(), recorded)
        expected = np.clip(recorded, *box) if clip else recorded
        np.testing.assert_array_equal(data.tensors["a"].numpy(), expected.astype(np.float32))
    assert (np.abs(recorded) > 1).mean() > 0.3  # the clip was really exercised
