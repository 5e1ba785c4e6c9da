"""Benchmarks against a real local control plane; run as modules, not collected by pytest."""
