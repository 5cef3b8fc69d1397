"""The config-key tables of docs/config.md, made from the schemas themselves (doc, type, default
and range of every key), grouped like the sections of the original's config files.

    python -m morel.config.keys docs/config.md   # rewrite both marked tables in place

`tests/config/test_config.py` checks that the page holds exactly these tables.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from pathlib import Path
from typing import Any

from morel.config.files import type_name
from morel.config.schema import MorelConfig
from morel.config.train import PolicyTrainConfig
from morel.core.errors import run_cli
from morel.core.marked_block import check_marked_block, replace_marked_block

RUN = ("env_name", "act_repeat", "seed", "num_iter", "eval_rollouts", "eval_noisy", "save_freq",
       "print_freq", "device", "exp_notes", "tensorboard")
POLICY = ("init_policy", "policy_size", "init_log_std", "min_log_std", "step_size", "max_kl",
          "policy_average", "anchor_kl_coef", "gamma", "gae_lambda", "npg_hp.FIM_invert_args.iters",
          "npg_hp.FIM_invert_args.damping", "npg_hp.hvp_sample_frac")
BASELINE = ("vf_hidden_size", "vf_lr", "vf_wd", "vf_batch_size", "vf_epochs", "value_targets")
GROUPS = {
    MorelConfig: {
        "run": RUN,
        "data and rewards": ("data_file", "reward_file", "reward_timing", "learn_reward"),
        "dynamics ensemble": ("num_models", "model_file", "hidden_size", "activation", "fit_lr",
                              "fit_wd", "fit_mb_size", "fit_epochs", "max_steps", "fit_horizon",
                              "fit_holdout", "fit_patience", "num_elites", "refresh_fit",
                              "clip_actions"),
        "pessimistic MDP": ("pessimism_coef", "halt_quantile", "truncate_reward", "halt_terminates",
                            "falls_terminate", "halt_penalty", "halt_patience", "update_paths",
                            "horizon", "start_state", "buffer_frac", "rollout_member",
                            "model_noise", "disagreement_penalty", "member_min_reward"),
        "policy and NPG": ("bc_init", "bc_init_std", "bc_epochs", "bc_normalize", "bc_holdout",
                           *POLICY),
        "value baseline": BASELINE,
    },
    PolicyTrainConfig: {
        "run": RUN,
        "sampling": ("num_samples", "num_envs", "episode_horizon", "cut_terminates"),
        "policy and NPG": POLICY,
        "value baseline": BASELINE,
    },
}
BLOCKS = {"config-keys": MorelConfig, "train-config-keys": PolicyTrainConfig}


def key_fields(schema: type, prefix: str = "") -> dict[str, tuple[Any, dataclasses.Field]]:
    """Every key of `schema` (nested dicts as `a.b.c`) -> (type, field)."""
    hints = typing.get_type_hints(schema)
    out: dict[str, tuple[Any, dataclasses.Field]] = {}
    for f in dataclasses.fields(schema):
        if f.name == "source":
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(key_fields(hints[f.name], f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = (hints[f.name], f)
    return out


def default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return f"`{f.default!r}`"
    if f.default_factory is not dataclasses.MISSING:
        return f"`{f.default_factory()!r}`"
    return "required"


def key_table(schema: type) -> str:
    """The Markdown table of `schema`'s keys, a header row per group."""
    keys = key_fields(schema)
    grouped = [k for group in GROUPS[schema].values() for k in group]
    if sorted(grouped) != sorted(keys):
        raise ValueError(f"keys without a group: {sorted(set(keys) - set(grouped))}; "
                         f"unknown: {sorted(set(grouped) - set(keys))}")
    rows = ["| key | type | default | range | meaning |", "|---|---|---|---|---|"]
    for group, names in GROUPS[schema].items():
        rows.append(f"| **{group}** | | | | |")
        for name in names:
            tp, f = keys[name]
            rule = f.metadata.get("rule", "").removeprefix("must be ")
            rows.append(f"| `{name}` | {type_name(tp)} | {default_text(f)} | {rule} | "
                        f"{f.metadata.get('doc', '')} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m morel.config.keys docs/config.md")
    path = Path(sys.argv[1])
    for name in BLOCKS:
        check_marked_block(path, name)
    for name, schema in BLOCKS.items():
        replace_marked_block(path, name, key_table(schema))
    print(f"wrote the key tables of {path}")


if __name__ == "__main__":
    run_cli(main)
