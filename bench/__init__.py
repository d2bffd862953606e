"""Benchmarks, run as modules (e.g. `python -m bench.acquisition`); they print, not assert."""
