"""Independent random streams of a run, all derived from its one `seed`.

Every stream is a child of `numpy.random.SeedSequence(seed)`: stream (purpose, i, j, ...) is
`SeedSequence(seed, spawn_key=(purpose, i, j, ...))`, the same sequence that
`SeedSequence(seed).spawn(...)` reaches along that path, but addressable directly, so that a
resumed run finds iteration k's streams without spawning k children first. SeedSequence hashes
the seed and the whole key together: two runs with different seeds share no stream, and within a
run no two purposes or indices share one (unlike `seed + i`, where seed 1's member 1 is seed 2's
member 0).

The purposes are fixed numbers: renumbering one changes every run's results.
"""

from __future__ import annotations

import argparse
import enum

import numpy as np
import torch

MAX_SEED = 2**63 - 1  # seeds are non-negative ints below 2**63 (config key, --seed)


class Stream(enum.IntEnum):
    """What a stream is for, and the indices it takes."""

    DYNAMICS_INIT = 0  # [member]: dynamics member weights
    DYNAMICS_ORDER = 1  # [member]: dynamics member minibatch order
    REWARD_INIT = 2  # [member]: learned-reward member weights
    REWARD_ORDER = 3  # [member]: learned-reward member minibatch order
    POLICY_INIT = 4  # policy weights
    BASELINE_INIT = 5  # value baseline weights
    BC = 6  # behaviour-cloning minibatches
    ITERATION = 7  # [iteration]: start states, sampling noise, Fisher subsample, baseline order
    EVALUATION = 8  # [iteration]: evaluation episodes (env resets, action noise)
    COLLECTION = 9  # collect_dataset.py: env resets and action noise
    SAMPLING = 10  # [iteration]: train_policy.py's real-env episodes
    DYNAMICS_HOLDOUT = 11  # the dynamics fit's held-out samples (fit_holdout)
    SURVIVAL_CHECK = 12  # utils/check_survival.py: the logging policy's action noise
    GRADIENT_CHECK = 13  # [source, batch]: utils/check_gradient.py's paths and baselines


def check_seed(seed: object) -> int:
    """`seed` as an int in [0, MAX_SEED]; ValueError otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed {seed!r} must be an integer in [0, 2**63 - 1]")
    return int(seed)


def seed_arg(text: str) -> int:
    """argparse type of a --seed flag: an int in [0, MAX_SEED]."""
    try:
        return check_seed(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer in [0, 2**63 - 1]") from None


def stream(seed: int, purpose: Stream, *index: int) -> np.random.SeedSequence:
    """The SeedSequence of stream (purpose, *index) of a run seeded `seed`."""
    return np.random.SeedSequence(check_seed(seed), spawn_key=(int(purpose), *map(int, index)))


def child(seq: np.random.SeedSequence, *index: int) -> np.random.SeedSequence:
    """The sub-stream `index` of `seq` (what seq.spawn would give along that path)."""
    return np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, *map(int, index)))


def int_seed(seq: np.random.SeedSequence) -> int:
    """A 63-bit integer seed drawn from `seq` (for torch.manual_seed or env.reset(seed=...))."""
    return int(seq.generate_state(1, np.uint64)[0] >> np.uint64(1))


def torch_generator(seq: np.random.SeedSequence) -> torch.Generator:
    """A CPU torch.Generator seeded from `seq` (draws are moved to the device by the caller)."""
    return torch.Generator().manual_seed(int_seed(seq))


def numpy_rng(seq: np.random.SeedSequence) -> np.random.Generator:
    """A numpy Generator (PCG64) on `seq`."""
    return np.random.default_rng(seq)


def episode_seeds(seq: np.random.SeedSequence, count: int) -> list[int]:
    """Reset seeds of `count` envs: env i gets int_seed(child(seq, 0, i)), so the first k of
    them do not depend on `count`."""
    return [int_seed(child(seq, 0, i)) for i in range(count)]


def noise_rng(seq: np.random.SeedSequence) -> np.random.Generator:
    """The action-noise generator that goes with `episode_seeds(seq, ...)`."""
    return numpy_rng(child(seq, 1))
