"""Benchmarks: ./dev bench, ./dev bench-conda, ./dev bench-reliability."""
