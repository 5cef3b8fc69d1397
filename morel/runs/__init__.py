"""Runs in job directories: layout and locking, logs and plots, the iteration loop shared by every
run, and the MOReL, NPG and BC runs."""
