"""D4RL normalised score: 0 at the random reference, 100 at the expert reference."""

from __future__ import annotations

import pytest

from morel.envs.scores import REFERENCE_RETURNS, normalized_score


@pytest.mark.parametrize("env, family", [("Hopper-v5", "hopper"),
                                         ("HalfCheetah-v5", "halfcheetah"),
                                         ("Walker2d-v4", "walker2d")])
def test_reference_points(env, family):
    low, high = REFERENCE_RETURNS[family]
    assert normalized_score(env, low) == pytest.approx(0.0)
    assert normalized_score(env, high) == pytest.approx(100.0)
    assert normalized_score(env, (low + high) / 2) == pytest.approx(50.0)


def test_unknown_envs_have_no_score():
    assert normalized_score("Ant-v5", 1000.0) is None
