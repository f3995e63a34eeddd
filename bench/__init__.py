"""Benchmarks (run as scripts, see bench/README.md); never imported by the app."""
