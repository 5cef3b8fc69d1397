"""The environments as MOReL sees them: the gymnasium wrapper, reward/termination files, metadata
checks, D4RL scores, real-env sampling."""
