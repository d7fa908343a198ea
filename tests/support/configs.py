"""Job configs for tests: a base config with a test's overrides applied."""
from __future__ import annotations


def with_overrides(base: dict, overrides: dict) -> dict:
    """A copy of `base` with `overrides` applied; a dict given for a key whose base value is
    a dict is merged into it one level deep ({"data": {"video": ...}} keeps data's others)."""
    cfg = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg
