"""Offline datasets: formats (.pickle through a restricted unpickler, .npz, .h5), D4RL/Minari
import, collection with a logging policy, a run's offline data."""
