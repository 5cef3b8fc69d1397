"""D4RL's normalised score, 100 * (return - random) / (expert - random), with D4RL's reference
returns (the MOReL paper reports this) or a dataset's own (Minari records them)."""

from __future__ import annotations

from morel.core.numbers import finite_number

REFERENCE_RETURNS = {  # env family: (random, expert)
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
}


def normalized_score(env_name: str, episode_return: float,
                     reference: tuple[float, float] | None = None) -> float | None:
    """The normalised score with `reference` (random, expert) returns, e.g. a Minari dataset's
    ref_min_score / ref_max_score; without it D4RL's for Hopper/HalfCheetah/Walker2d ids (any
    version), else None."""
    family = env_name.split("-")[0].lower()
    if reference is None and family not in REFERENCE_RETURNS:
        return None
    low, high = reference if reference is not None else REFERENCE_RETURNS[family]
    return 100.0 * (episode_return - low) / (high - low)


def dataset_reference(meta: dict) -> tuple[float, float] | None:
    """A dataset's own (random, expert) reference returns from its metadata (ref_min_score,
    ref_max_score, as Minari records them), or None when it has none or they are unusable."""
    low, high = (finite_number(meta.get(key)) for key in ("ref_min_score", "ref_max_score"))
    return (low, high) if low is not None and high is not None and high > low else None
