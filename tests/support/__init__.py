"""Helpers every test room shares: real processes (ports, Redis, process trees, the
trainer as a subprocess), the tiny job configs, the synthetic DATA_ROOT."""
