#!/usr/bin/env bash
# Set up .venv (if absent or out of date) and run one task:
#   bash quickstart.sh demo   the quick MOReL pipeline on Hopper-v5: collect a 100k-sample dataset
#                             with the shipped medium logging policy, run MOReL, plot the run
#   bash quickstart.sh test   run the test suite (the tests of the optional extras skip)
#   bash quickstart.sh test-extras   also install the optional extras (minari, tensorboard)
#                             and run the whole suite with them
# TORCH_SPEC picks the torch build (default: the CPU wheel torch==2.13.0; set TORCH_SPEC=torch
# for your platform's default build, e.g. with CUDA).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

setup() {
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  local stamp=".venv/.morel-installed-$(cat pyproject.toml setup.py | sha1sum | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    echo "installing into .venv (torch: $TORCH_SPEC) ..."
    .venv/bin/python -m pip install -q "$TORCH_SPEC"
    .venv/bin/python -m pip install -q -e ".[test,ray]"
    rm -f .venv/.morel-installed-* && touch "$stamp"
  fi
}

case "${1:-}" in
  demo)
    setup
    data=datasets/hopper_v5_medium_100k.pickle
    [ -f "$data" ] || .venv/bin/python collect_dataset.py --env_name Hopper-v5 \
      --policy logging_policy/hopper_v5_medium.pt --output "$data" --size 100000 \
      --include utils/reward_functions/gym_hopper.py
    .venv/bin/python run_morel.py --config configs/hopper_v5_quick.txt \
      --output runs/hopper_v5_quick --force
    .venv/bin/python utils/explore_results.py --data runs/hopper_v5_quick \
      --keys eval_score train_score halt_frac mean_path_length
    ;;
  test)
    setup
    shift
    .venv/bin/python -m pytest -q "$@"
    ;;
  test-extras)
    setup
    shift
    .venv/bin/python -m pip install -q -e ".[test-extras]"
    .venv/bin/python -m pytest -q "$@"
    ;;
  *)
    echo "usage: bash quickstart.sh demo | test [pytest args] | test-extras [pytest args]" >&2
    exit 2
    ;;
esac
