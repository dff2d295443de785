"""A Scrapy extension for test runs: every request's final outcome, one JSON line each.

The crawler's stats count outcomes (``requests/ended/<outcome>``) but not which request had
which; a fault schedule needs to know which documents never ended. This listens to the
ledger's own ``request_finished`` signal, as the metrics do, and appends
``{"url", "outcome", "pid"}`` to ``OUTCOME_LOG_DIR/<pid>.jsonl``, flushed per line so that a
killed worker leaves what it recorded.

A run adds it with :func:`extension_setting` (``-s EXTENSIONS=...``), with ``tests/`` on the
crawler processes' ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from crawler import settings as project_settings
from crawler.core import signals

PATH = "outcome_log.OutcomeLog"


class OutcomeLog:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._file = (folder / f"{os.getpid()}.jsonl").open("a", encoding="utf-8")

    @classmethod
    def from_crawler(cls, crawler: Any) -> OutcomeLog:
        log = cls(Path(crawler.settings.get("OUTCOME_LOG_DIR")))
        crawler.signals.connect(log.request_finished, signal=signals.request_finished)
        return log

    def request_finished(self, request: Any, outcome: str, **_: Any) -> None:
        line = {"url": getattr(request, "url", None), "outcome": outcome, "pid": os.getpid()}
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()


def extension_setting(folder: Path) -> list[str]:
    """``-s`` options that add the log to the project's extensions (a ``-s EXTENSIONS``
    replaces the whole dict, so the project's own are named again)."""
    extensions = {**project_settings.EXTENSIONS, PATH: 900}
    return ["-s", f"EXTENSIONS={json.dumps(extensions)}", "-s", f"OUTCOME_LOG_DIR={folder}"]


def read_outcomes(folder: Path) -> list[dict[str, Any]]:
    """Every line of every process's log (a killed process's last line may be cut)."""
    lines = []
    for path in sorted(folder.glob("*.jsonl")):
        for text in path.read_text(encoding="utf-8").splitlines():
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError:
                continue
    return lines
