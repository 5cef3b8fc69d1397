"""morel: MOReL (Kidambi et al., NeurIPS 2020) on gymnasium + mujoco + torch."""

__version__ = "0.1.0"
