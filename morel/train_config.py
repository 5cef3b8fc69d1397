"""Config schema of train_policy.py: NPG in the real environment (how logging policies are made).

Shares the policy and NPG keys with MOReL configs (`CommonKeys`); adds the sampling and value
baseline keys, with defaults suited to learning from real-env episodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from morel.config import CommonKeys, _doc, _non_negative, _positive


@dataclass(frozen=True, kw_only=True)
class PolicyTrainConfig(CommonKeys):
    """Every key a train_policy.py config may hold."""

    num_iter: int = field(default=300, metadata=_non_negative("NPG iterations"))
    eval_rollouts: int = field(
        default=5, metadata=_non_negative("deterministic real-env episodes per iteration")
    )
    step_size: float = field(default=0.05, metadata=_positive("NPG normalised step size"))
    init_log_std: float = field(default=-0.5, metadata=_doc("initial policy log std"))
    num_samples: int = field(
        default=20_000, metadata=_positive("env steps per iteration (whole episodes)")
    )
    num_envs: int = field(default=8, metadata=_positive("envs stepped together"))
    vf_hidden_size: tuple[int, ...] = field(
        default=(128, 128),
        metadata=_doc("value baseline hidden sizes", lambda v: all(h > 0 for h in v),
                      "sizes must be > 0"),
    )
    vf_lr: float = field(default=1e-3, metadata=_positive("baseline Adam learning rate"))
    vf_wd: float = field(default=1e-3, metadata=_non_negative("baseline Adam weight decay"))
    vf_batch_size: int = field(default=64, metadata=_positive("baseline minibatch size"))
    vf_epochs: int = field(default=2, metadata=_positive("baseline epochs per iteration"))
