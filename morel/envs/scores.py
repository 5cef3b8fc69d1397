"""D4RL's normalised score, 100 * (return - random) / (expert - random), with D4RL's reference
returns (the MOReL paper reports this)."""

from __future__ import annotations

REFERENCE_RETURNS = {  # env family: (random, expert)
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
}


def normalized_score(env_name: str, episode_return: float) -> float | None:
    """The normalised score for Hopper/HalfCheetah/Walker2d ids (any version), else None."""
    family = env_name.split("-")[0].lower()
    if family not in REFERENCE_RETURNS:
        return None
    low, high = REFERENCE_RETURNS[family]
    return 100.0 * (episode_return - low) / (high - low)
