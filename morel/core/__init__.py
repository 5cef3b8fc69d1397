"""Foundations every layer uses: error types and the CLI wrapper, CPU float settings, random
streams, atomic writes, safe torch-file loading, the device key."""
