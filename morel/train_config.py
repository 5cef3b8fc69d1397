"""Config schema of train_policy.py: NPG in the real environment (how logging policies are made).

Shares the policy and NPG keys with MOReL configs (`CommonKeys`); adds the sampling and value
baseline keys, with defaults suited to learning from real-env episodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from morel.config import CommonKeys, _count, _doc, _non_negative, _positive, _sizes


@dataclass(frozen=True, kw_only=True)
class PolicyTrainConfig(CommonKeys):
    """Every key a train_policy.py config may hold."""

    num_iter: int = field(default=300, metadata=_count("NPG iterations", 10**7, 0))
    eval_rollouts: int = field(
        default=5, metadata=_count("deterministic real-env episodes per iteration", 10_000, 0)
    )
    step_size: float = field(default=0.05, metadata=_positive("NPG normalised step size"))
    init_log_std: float = field(default=-0.5, metadata=_doc("initial policy log std"))
    num_samples: int = field(
        default=20_000, metadata=_count("env steps per iteration (whole episodes)", 10**9)
    )
    num_envs: int = field(default=8, metadata=_count("envs stepped together", 1024))
    vf_hidden_size: tuple[int, ...] = field(default=(128, 128),
                                            metadata=_sizes("value baseline hidden sizes"))
    vf_lr: float = field(default=1e-3, metadata=_positive("baseline Adam learning rate"))
    vf_wd: float = field(default=1e-3, metadata=_non_negative("baseline Adam weight decay"))
    vf_batch_size: int = field(default=64, metadata=_count("baseline minibatch size", 10**7))
    vf_epochs: int = field(default=2, metadata=_count("baseline epochs per iteration", 10_000))
