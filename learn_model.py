"""Fit the dynamics ensemble of a MOReL config on its dataset and save it (run_morel.py can then
load it with the config key `model_file`).

    python learn_model.py --config configs/hopper_v5_morel.txt --output models/hopper_medium.pt
    python learn_model.py -c configs/hopper_v5_quick.txt -o runs/held_out.pt \
        --set fit_holdout=0.1 --set fit_patience=5 --set fit_epochs=100

Prints each member's training loss (normalised units) and next-state MSE on the data (raw units),
the ensemble's disagreement on the data, and the halting threshold the config's pessimism_coef
would give.
"""

from __future__ import annotations

import argparse

from morel.config.cli import add_config_args, config_from_args
from morel.core.atomic import check_writable_path
from morel.core.device import resolve_device
from morel.core.errors import MorelError, run_cli
from morel.data.offline import load_offline_data, load_reward
from morel.envs.wrapper import check_env_id, make_env
from morel.models.files import save_ensemble
from morel.models.fit import ensemble_meta, fit_or_load_ensemble
from morel.pmdp import ensemble_statistics, model_table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_config_args(p, output_help="model file to write (.pt)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output")
    args = p.parse_args()
    cfg = config_from_args(args)
    if cfg.model_file:
        raise MorelError(f"{args.config}: model_file is set, so there is nothing to fit; "
                         "remove it to fit a new ensemble")
    output = check_writable_path(args.output)
    if output.exists() and not args.force:
        raise MorelError(f"{output}: file exists; choose another --output or pass --force")
    check_env_id(cfg.env_name)
    device = resolve_device(cfg.device)
    env = make_env(cfg.env_name, cfg.act_repeat)
    reward = load_reward(cfg, args.include, env.obs_dim, env.act_dim)
    data = load_offline_data(cfg, env.obs_dim, env.act_dim, reward, device, env.action_box)
    model, log = fit_or_load_ensemble(cfg, data.tensors, env.obs_dim, env.act_dim, device,
                                      learn_reward=reward.reward_function is None)
    save_ensemble(model, str(output), ensemble_meta(cfg))
    log.update(ensemble_statistics(model, data.tensors, cfg.pessimism_coef,
                                   cfg.halt_quantile))
    print(model_table(log, model.num_models))
    print(f"saved {output} ({log['model_learning_time']:.1f} s)")


if __name__ == "__main__":
    run_cli(main)
