"""A simulated news outlet served on loopback, for the demo and the test suite."""

from crawler.demo.server import BEHAVIOURS, DemoOutlet, LoggedRequest, MirrorServer
from crawler.demo.site import DemoArticle, DemoSite, Truth

__all__ = [
    "BEHAVIOURS",
    "DemoArticle",
    "DemoOutlet",
    "DemoSite",
    "LoggedRequest",
    "MirrorServer",
    "Truth",
]
