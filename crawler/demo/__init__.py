"""A simulated news outlet served on loopback, for the demo and the test suite.

Names are imported on first use so that ``python -m crawler.demo.server`` runs the module
fresh instead of finding it already imported by the package.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "BEHAVIOURS": "crawler.demo.behaviours",
    "DemoOutlet": "crawler.demo.server",
    "LoggedRequest": "crawler.demo.mirror",
    "MirrorServer": "crawler.demo.mirror",
    "DemoArticle": "crawler.demo.articles",
    "DemoSite": "crawler.demo.site",
    "Truth": "crawler.demo.articles",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
