"""Random streams: runs with different seeds share none, and a run's streams are its seed's
SeedSequence children (morel.core.seeding)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import ROOT, run_script

from morel.config.fields import ConfigError
from morel.config.files import load_config, override
from morel.core.seeding import (
    Stream,
    check_seed,
    child,
    episode_seeds,
    int_seed,
    stream,
    torch_generator,
)
from morel.models.dynamics import DynamicsEnsemble
from morel.models.reward import RewardEnsemble
from morel.npg.agent import policy_from_config
from morel.npg.baselines import MLPBaseline

SEEDS = (1, 2, 3)


def test_a_stream_is_the_spawned_child_of_its_path():
    spawned = np.random.SeedSequence(5).spawn(Stream.ITERATION + 1)[Stream.ITERATION].spawn(4)[3]
    assert (stream(5, Stream.ITERATION, 3).generate_state(4)
            == spawned.generate_state(4)).all()
    assert (child(stream(5, Stream.EVALUATION), 0, 2).generate_state(2)
            == stream(5, Stream.EVALUATION, 0, 2).generate_state(2)).all()


def test_no_two_streams_of_nearby_seeds_coincide():
    """Every (seed, purpose, index) of 3 seeds x every purpose x 50 indices draws its own seed;
    with `seed + index` seeding, seed 1's index 1 would be seed 2's index 0."""
    drawn = [int_seed(stream(seed, purpose, k))
             for seed, purpose, k in itertools.product(SEEDS, Stream, range(50))]
    assert len(set(drawn)) == len(drawn)
    episodes = [s for seed, k in itertools.product(SEEDS, range(50))
                for s in episode_seeds(stream(seed, Stream.EVALUATION, k), 10)]
    assert len(set(episodes)) == len(episodes)


def first_layers(model) -> list[torch.Tensor]:
    return [model.weights[0][e] for e in range(model.num_models)]


@pytest.mark.parametrize("cls", [DynamicsEnsemble, RewardEnsemble])
def test_two_seeds_share_no_member_initialisation(cls):
    members = [w for seed in SEEDS for w in first_layers(cls(4, 11, 3, (32,), seed=seed))]
    for a, b in itertools.combinations(members, 2):
        assert not torch.equal(a, b)
    again = first_layers(cls(4, 11, 3, (32,), seed=SEEDS[0]))
    assert all(torch.equal(a, b) for a, b in zip(again, members))


def test_two_seeds_share_no_data_order():
    """Member e's minibatch order (DYNAMICS_ORDER, e) differs across members and seeds."""
    orders = [torch.randperm(1000, generator=torch_generator(stream(seed, Stream.DYNAMICS_ORDER,
                                                                    e)))
              for seed in SEEDS for e in range(4)]
    for a, b in itertools.combinations(orders, 2):
        assert not torch.equal(a, b)


def test_policy_and_baseline_start_differently_per_seed():
    base = load_config(ROOT / "configs" / "hopper_v5_quick.txt")
    policies = [policy_from_config(override(base, seed=s), 11, 3).flat_params() for s in SEEDS]
    baselines = [MLPBaseline(11, seed=int_seed(stream(s, Stream.BASELINE_INIT)))
                 .net[0].weight.detach().clone() for s in SEEDS]
    for group in (policies, baselines):
        for a, b in itertools.combinations(group, 2):
            assert not torch.equal(a, b)
    assert torch.equal(policies[0], policy_from_config(override(base, seed=1), 11, 3)
                       .flat_params())


@pytest.mark.parametrize("bad", [-1, 2**63, 1.5, True, "7"])
def test_out_of_range_seeds_are_refused(bad):
    with pytest.raises(ValueError, match="must be an integer in"):
        check_seed(bad)
    if not isinstance(bad, (bool, str, float)):
        with pytest.raises(ConfigError, match="seed"):
            override(load_config(ROOT / "configs" / "hopper_v5_quick.txt"), seed=bad)


def test_a_negative_seed_flag_is_a_usage_error():
    out = run_script("collect_dataset.py", "--env_name", "Hopper-v5", "--policy", "random",
                     "--output", "/nonexistent/x.npz", "--seed", "-3")
    assert out.returncode == 2 and "--seed: '-3' is not an integer in [0, 2**63 - 1]" in out.stderr
