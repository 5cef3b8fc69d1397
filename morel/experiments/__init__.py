"""Studies over many runs: the dataset suite, sweep grids and their results tables."""
