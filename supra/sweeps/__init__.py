"""Hyperparameter sweeps: DDP inside multirun jobs, the per-job result and the sweep report hook."""
