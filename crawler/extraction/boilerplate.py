"""An outlet's boilerplate rules over extracted text (its ``boilerplate:``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol


class BoilerplateRules(Protocol):
    """An outlet's text rules (``crawler.core.outlets.Boilerplate``, or
    :class:`PlainBoilerplate`)."""

    @property
    def cut_from(self) -> Sequence[str]: ...
    @property
    def drop_lines(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class PlainBoilerplate:
    """The rules as plain data: what a worker is sent, so that it never imports the models."""

    cut_from: tuple[str, ...] = ()
    drop_lines: tuple[str, ...] = ()

    @classmethod
    def of(cls, rules: BoilerplateRules | None) -> PlainBoilerplate | None:
        return None if rules is None else cls(tuple(rules.cut_from), tuple(rules.drop_lines))


@dataclass(frozen=True)
class _CompiledRules:
    cut_from: re.Pattern[str] | None
    drop_lines: re.Pattern[str] | None


@lru_cache(maxsize=256)
def _compile(cut_from: tuple[str, ...], drop_lines: tuple[str, ...]) -> _CompiledRules:
    def alternation(markers: tuple[str, ...]) -> re.Pattern[str] | None:
        markers = tuple(m for m in markers if m)
        return re.compile("|".join(map(re.escape, markers))) if markers else None

    return _CompiledRules(alternation(cut_from), alternation(drop_lines))


def apply_boilerplate(text: str, rules: BoilerplateRules) -> str:
    """``text`` (one paragraph per line) without the outlet's boilerplate.

    The first line holding a ``cut_from`` marker ends the article: it and all after it go.
    Lines holding a ``drop_lines`` marker go wherever they stand.
    """
    compiled = _compile(tuple(rules.cut_from), tuple(rules.drop_lines))
    if compiled.cut_from is not None:
        match = compiled.cut_from.search(text)
        if match is not None:
            text = text[: text.rfind("\n", 0, match.start()) + 1].rstrip("\n")
    if compiled.drop_lines is not None and compiled.drop_lines.search(text):
        drop = compiled.drop_lines.search
        text = "\n".join(line for line in text.split("\n") if not drop(line))
    return text
