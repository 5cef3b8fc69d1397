"""The learned models: ONE batched network for the whole ensemble with one member-wise fit loop,
dynamics and reward members, their file, fitting from a config."""
