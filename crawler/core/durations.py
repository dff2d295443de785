"""Durations as people write them in commands and outlet files: "15m", "1h30m", "3d"."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> float:
    """"15m", "1h30m", "45s", "2d" -> seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != text.strip().lower():
        raise ValueError(f"not an interval: {text!r} (use e.g. 30s, 15m, 1h30m, 1d)")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"interval must be positive: {text!r}")
    return seconds
