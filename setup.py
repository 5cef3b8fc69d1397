"""Shim for `pip install -e .` with older pip/setuptools; metadata is in pyproject.toml."""

from setuptools import setup

setup()
