"""Runs: identity, the local run store, W&B glue, and one job from config to run directory."""
