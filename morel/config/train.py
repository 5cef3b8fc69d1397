"""Config schema of train_policy.py: NPG in the real environment (how logging policies are made).

Shares the policy, NPG and value-baseline keys with MOReL configs (`CommonKeys`); adds the
sampling keys, and defaults suited to learning from real-env episodes (the baseline's minibatch
64 and 2 epochs are mjrl's example settings).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from morel.config.fields import count, doc, positive
from morel.config.schema import CommonKeys


@dataclass(frozen=True, kw_only=True)
class PolicyTrainConfig(CommonKeys):
    """Every key a train_policy.py config may hold."""

    num_iter: int = field(default=300, metadata=count("NPG iterations", 10**7, 0))
    eval_rollouts: int = field(
        default=5, metadata=count("deterministic real-env episodes per iteration", 10_000, 0)
    )
    step_size: float = field(default=0.05, metadata=positive("NPG normalised step size"))
    init_log_std: float = field(default=-0.5, metadata=doc("initial policy log std"))
    num_samples: int = field(
        default=20_000, metadata=count("env steps per iteration (whole episodes)", 10**9)
    )
    num_envs: int = field(default=8, metadata=count("envs stepped together", 1024))
    episode_horizon: int | None = field(
        default=None,
        metadata=doc("sampled episodes end after this many steps in a terminal state, a "
                     "finite-horizon problem as in a P-MDP whose paths all end early (ours; "
                     "None: the env's time limit, where a cut episode bootstraps); evaluation "
                     "episodes keep the env's time limit",
                     lambda v: v is None or v >= 1, "must be a step count >= 1 or None"),
    )
    cut_terminates: bool = field(
        default=True,
        metadata=doc("with episode_horizon: an episode cut at the horizon is terminal (True, "
                     "its value past the cut is 0) or bootstraps from the value baseline at "
                     "its last state like a time-limit cut (False; ours)"),
    )
    vf_batch_size: int = field(default=64,
                               metadata=count("value baseline minibatch size", 10**7))
    vf_epochs: int = field(default=2,
                           metadata=count("value baseline epochs per iteration", 10_000))
