"""The config schemas: typed, frozen dataclasses with a one-line doc and a range per key, and the
original's defaults (MOReL configs; `morel.config.train` adds the real-env NPG keys)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from morel.config.fields import (
    ConfigError,
    count,
    doc,
    non_negative,
    positive,
    sizes,
    unit,
)
from morel.core.seeding import MAX_SEED

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class FIMInvertArgs:
    """Conjugate-gradient settings for solving F x = g (the original's `FIM_invert_args`)."""

    iters: int = field(default=10, metadata=count("conjugate-gradient iterations", 10_000))
    damping: float = field(default=1e-4, metadata=non_negative("Tikhonov damping added to F"))


@dataclass(frozen=True)
class NPGHyper:
    """Extra NPG arguments (the original's `npg_hp` dict)."""

    FIM_invert_args: FIMInvertArgs = field(
        default_factory=FIMInvertArgs, metadata=doc("CG settings: dict(iters=..., damping=...)")
    )
    hvp_sample_frac: float = field(
        default=1.0,
        metadata=doc("share of samples used in each Fisher-vector product",
                     lambda v: 0 < v <= 1, "must be in (0, 1]"),
    )


class ConfigMethods:
    """Methods shared by the config schemas (each a frozen dataclass with a `source` field)."""

    source: str | None

    def resolve_path(self, key: str) -> Path:
        """Resolve a path-valued key: as given, then against the config's folder, then the
        project root. Raises a ConfigError naming every place tried."""
        value = getattr(self, key)
        if value is None:
            raise ConfigError(f"{self.source or 'config'}: key '{key}' is not set")
        path = Path(value).expanduser()
        tried = [path]
        if not path.is_absolute():
            if self.source:
                tried.append(Path(self.source).resolve().parent / path)
            tried.append(PROJECT_ROOT / path)
        for candidate in tried:
            if candidate.exists():
                return candidate
        places = ", ".join(str(p) for p in tried)
        raise ConfigError(f"{self.source or 'config'}: '{key}' file not found (tried {places})")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every key (tuples as lists), as written to job_data.json."""
        out = dataclasses.asdict(self)  # type: ignore[call-overload]
        out.pop("source")
        return json.loads(json.dumps(out))

    @classmethod
    def default_dict(cls) -> dict[str, Any]:
        """The keys that have a default, with it, in to_dict's form."""
        out = {f.name: f.default for f in dataclasses.fields(cls)  # type: ignore[arg-type]
               if f.default is not dataclasses.MISSING and f.name != "source"}
        return json.loads(json.dumps(out))


@dataclass(frozen=True, kw_only=True)
class CommonKeys(ConfigMethods):
    """Keys shared by MOReL configs and real-env NPG configs (train_policy.py)."""

    env_name: str = field(metadata=doc("gymnasium env id, e.g. 'Hopper-v5'"))
    act_repeat: int = field(default=1, metadata=count("env steps per agent step", 10_000))
    seed: int = field(
        default=123,
        metadata=doc("seed of every random stream in the run (morel.core.seeding)",
                     lambda v: 0 <= v <= MAX_SEED, "must be in [0, 2**63 - 1]"),
    )
    num_iter: int = field(default=500, metadata=count("NPG iterations", 10**7, 0))
    eval_rollouts: int = field(default=0,
                               metadata=count("real-env episodes per iter", 10_000, 0))
    eval_noisy: bool = field(
        default=False,
        metadata=doc("also log eval_score_noisy: the evaluated policy's mean return with its own "
                     "Gaussian noise on the same evaluation episodes, and with run_morel.py's "
                     "bc_init bc_eval_score_noisy: the cloned policy's (ours; False: the "
                     "original, which scores the mean action only)"),
    )
    save_freq: int = field(default=10, metadata=positive("iterations between checkpoints"))
    print_freq: int = field(
        default=10,
        metadata=count("iterations between full log tables (a progress line at the others; "
                       "1: the original's table at every iteration)", 10**7),
    )
    device: str = field(default="cpu", metadata=doc("'cpu', 'cuda', 'cuda:N' or 'auto'"))
    init_policy: str | None = field(default=None, metadata=doc("policy file to start from"))
    exp_notes: str = field(default="", metadata=doc("free text kept in job_data.json"))
    tensorboard: bool = field(
        default=False,
        metadata=doc("also write every log key per iteration as TensorBoard events in "
                     "JOB/tensorboard (needs the extra: pip install -e '.[tensorboard]')"))
    policy_size: tuple[int, ...] = field(default=(64, 64),
                                         metadata=sizes("policy MLP hidden sizes"))
    step_size: float = field(default=0.02, metadata=positive("NPG normalised step size"))
    max_kl: float | None = field(
        default=None,
        metadata=doc("an NPG step whose KL on the batch exceeds this is halved until it does "
                     "(ours); None: the original's unguarded step",
                     lambda v: v is None or v > 0, "must be > 0 or None"),
    )
    policy_average: float = field(
        default=0.0,
        metadata=doc("the evaluated and saved policy is an exponential moving average of the NPG "
                     "iterates' weights, this weight on the old average at each step (ours; "
                     "0: the iterate itself, the original)",
                     lambda v: 0 <= v < 1, "must be in [0, 1)"),
    )
    anchor_kl_coef: float = field(
        default=0.0,
        metadata=non_negative("weight of the mean KL(start policy || policy) on each batch's "
                              "states subtracted from the NPG surrogate: a pull back towards "
                              "the policy the run started from, the BC policy with bc_init "
                              "(ours; 0: the original)"),
    )
    init_log_std: float = field(default=-0.25, metadata=doc("initial policy log std"))
    min_log_std: float = field(
        default=-2.0, metadata=doc("lower clamp of policy log std", lambda v: v <= 1.0,
                                   "must be <= 1.0 (max_log_std)")
    )
    vf_hidden_size: tuple[int, ...] = field(default=(128, 128),
                                            metadata=sizes("value baseline hidden sizes"))
    vf_lr: float = field(default=1e-3, metadata=positive("value baseline Adam learning rate"))
    vf_wd: float = field(default=1e-3,
                         metadata=non_negative("value baseline Adam weight decay (reg_coef)"))
    vf_batch_size: int = field(default=256,
                               metadata=count("value baseline minibatch size", 10**7))
    vf_epochs: int = field(default=1,
                           metadata=count("value baseline epochs per iteration", 10_000))
    gamma: float = field(default=0.995, metadata=unit("discount"))
    gae_lambda: float = field(default=0.97, metadata=unit("GAE lambda"))
    value_targets: Literal["returns", "lambda"] = field(
        default="returns",
        metadata=doc("what the value baseline regresses: 'returns', each path's discounted "
                     "reward-to-go (the original; a path that ends early carries no value past "
                     "its end), or 'lambda', the GAE lambda-returns A_t + V(s_t), which bootstrap "
                     "from the baseline at a path's non-terminal end (ours)"),
    )
    npg_hp: NPGHyper = field(default_factory=NPGHyper, metadata=doc("NPG extra arguments"))
    source: str | None = field(default=None, compare=False,
                               metadata=doc("config file this came from (not a key)"))


@dataclass(frozen=True, kw_only=True)
class MorelConfig(CommonKeys):
    """Every key a MOReL config file may hold, with the original's defaults.

    Where the original has no default (it raises KeyError), the default is the value of the
    original's shipped hopper configs. Every key is listed in docs/config.md.
    """

    data_file: str = field(metadata=doc("dataset file: .pickle (original format), .npz or .h5"))
    num_models: int = field(default=4, metadata=count("dynamics ensemble members", 1024))
    learn_reward: bool = field(
        default=True,
        metadata=doc("learn a reward model; a reward_function from reward_file wins over it"),
    )
    reward_file: str | None = field(
        default=None, metadata=doc("python file with obs_mask, reward_function, termination")
    )
    reward_timing: Literal["next", "current"] = field(
        default="next",
        metadata=doc("reward/termination of step t from s_t+1 ('next') or s_t ('current', "
                     "the original)"),
    )
    model_file: str | None = field(default=None, metadata=doc("fitted ensemble to load"))
    bc_init: bool = field(default=False, metadata=doc("behaviour-cloning init of the policy"))
    bc_init_std: bool = field(
        default=False,
        metadata=doc("with bc_init: start the policy std at the dataset's per-dimension action "
                     "spread around the cloned mean (ours; False: init_log_std)"),
    )
    bc_epochs: int = field(
        default=5, metadata=count("behaviour-cloning epochs (with bc_holdout > 0: the cap)", 10**6)
    )
    bc_normalize: bool = field(
        default=False,
        metadata=doc("with bc_init: normalise the policy's inputs by the dataset's mean and std "
                     "(ours; False: the original's raw inputs)"),
    )
    bc_holdout: float = field(
        default=0.0,
        metadata=doc("with bc_init: share of the data held out to stop BC once its loss stops "
                     "improving (5 epochs' patience; the best epoch is kept); 0: the original's "
                     "fixed bc_epochs", lambda v: 0 <= v <= 0.5, "must be in [0, 0.5]"),
    )
    clip_actions: bool = field(
        default=False,
        metadata=doc("clip actions to the env's action box where the env would: in the models' "
                     "training data and in model rollouts (ours; False: the original, where the "
                     "models see unclipped actions)"),
    )
    pessimism_coef: float | None = field(
        default=None,
        metadata=doc("threshold = max dataset disagreement / this; None or 0: no halting",
                     lambda v: v is None or v >= 0, "must be >= 0 or None"),
    )
    halt_quantile: float | None = field(
        default=None,
        metadata=doc("threshold = this quantile of the dataset disagreement / pessimism_coef "
                     "(ours; None: the max, the original)",
                     lambda v: v is None or 0 < v <= 1, "must be in (0, 1] or None"),
    )
    truncate_reward: float = field(default=0.0, metadata=doc("reward added at a halt"))
    halt_terminates: bool = field(
        default=False,
        metadata=doc("halted paths are terminal (the paper's absorbing HALT); False: the "
                     "original code, where no model path is terminal once halting runs"),
    )
    falls_terminate: bool | None = field(
        default=None,
        metadata=doc("model paths that the reward file's termination function ends (falls) "
                     "are terminal, bootstrap 0 (True) or bootstrap from the value baseline "
                     "(False; ours); None: the original's rule, as halt_terminates while halting "
                     "runs and terminal without halting"),
    )
    halt_penalty: float = field(
        default=0.0,
        metadata=doc("extra reward at a halt when halt_terminates is True (the paper's -kappa)"),
    )
    halt_patience: int = field(
        default=1,
        metadata=count("a model path halts once its disagreement has exceeded the threshold on "
                       "this many consecutive steps (ours; 1: the original, one crossing "
                       "halts)", 10**6),
    )
    hidden_size: tuple[int, ...] = field(default=(64, 64),
                                         metadata=sizes("dynamics MLP hidden sizes"))
    activation: Literal["relu", "tanh"] = field(default="relu",
                                                metadata=doc("dynamics activation"))
    fit_lr: float = field(default=1e-3, metadata=positive("dynamics Adam learning rate"))
    fit_wd: float = field(default=0.0, metadata=non_negative("dynamics Adam weight decay"))
    fit_mb_size: int = field(default=256, metadata=count("dynamics minibatch size", 10**7))
    fit_epochs: int = field(default=25, metadata=count("dynamics training epochs", 10**6))
    fit_horizon: int = field(
        default=1,
        metadata=count("dynamics loss over this many consecutive steps of each sampled "
                       "dataset path, each member stepping on its own predictions (ours; 1: "
                       "the original one-step loss)", 1000),
    )
    fit_holdout: float = field(
        default=0.0,
        metadata=doc("share of the data held out of the dynamics fit; its loss per member is "
                     "logged as dyn_loss_heldout_i (ours; 0: the original, every sample trains)",
                     lambda v: 0 <= v <= 0.5, "must be in [0, 0.5]"),
    )
    fit_patience: int | None = field(
        default=None,
        metadata=doc("with fit_holdout: each member keeps its best held-out epoch and the fit "
                     "stops once no member improved for this many epochs (None: all "
                     "fit_epochs)", lambda v: v is None or 1 <= v <= 10**6,
                     "must be in [1, 1000000] or None"),
    )
    num_elites: int | None = field(
        default=None,
        metadata=doc("with fit_holdout: fit num_models members and keep the num_elites with the "
                     "lowest held-out loss (ours; None: keep every member, the original)",
                     lambda v: v is None or 1 <= v <= 1024, "must be in [1, 1024] or None"),
    )
    refresh_fit: bool = field(default=False, metadata=doc("unused, kept for compatibility"))
    max_steps: int = field(default=10_000, metadata=positive("cap on dynamics gradient steps"))
    update_paths: int = field(default=50,
                              metadata=count("start states per iteration", 10**6))
    start_state: Literal["init", "buffer"] = field(
        default="init", metadata=doc("'init': dataset path starts; 'buffer': mix with any state")
    )
    buffer_frac: float | None = field(
        default=None,
        metadata=doc("share of buffer states for start_state='buffer'",
                     lambda v: v is None or 0 <= v <= 1, "must be in [0, 1] or None"),
    )
    rollout_member: Literal["path", "step"] = field(
        default="path",
        metadata=doc("'path': each model path follows one member (the original); 'step': each "
                     "step takes a member drawn at random (ours, as MBPO and MOPO roll)"),
    )
    disagreement_penalty: float = field(
        default=0.0,
        metadata=non_negative(
            "model rewards lose this times disagreement / the dataset's max disagreement at "
            "every step (ours, a MOPO-style soft penalty beside the halt; 0: none, the "
            "original)"),
    )
    member_min_reward: bool = field(
        default=False,
        metadata=doc("each model step earns the least reward any member's predicted next state "
                     "gives, a lower confidence bound on the reward (ours; False: the path's "
                     "own member, the original)"),
    )
    model_noise: float = field(
        default=0.0,
        metadata=non_negative(
            "model paths add Gaussian noise of this many times the members' one-step error "
            "std per state dimension (on the dataset, raw units) to each predicted next state "
            "(ours; 0: the original's deterministic members)"),
    )
    horizon: int = field(default=1_000_000,
                         metadata=count("model rollout length (clipped to env horizon)",
                                         10**7))
