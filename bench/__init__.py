"""Benchmarks: one Codec interface, quality sweeps, BD-rates and plots."""
