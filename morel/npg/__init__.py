"""Policy optimisation: padded path batches, the Gaussian policy, the value baseline, GAE, the
natural policy gradient step, the agent that combines them, behaviour cloning."""
