"""Outlet files: one YAML file per outlet, validated into :class:`Outlet`.

A document's identity is (outlet, path). Mirrors are interchangeable hosts for the same
paths; the first one is canonical and names the document in storage, the dupefilter and the
stored-article filter (:meth:`Outlet.canonical_url`, see :mod:`crawler.core.identity`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import yaml
from cssselect import GenericTranslator, SelectorError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from crawler.core import meta
from crawler.core.durations import parse_interval
from crawler.core.identity import identity_url, without_tracking
from crawler.core.mirror_notices import DEFAULT_MIRROR_NOTICES
from crawler.core.redact import redact_url

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.http import Response

BUNDLED_OUTLETS = Path(__file__).parent.parent / "bundled_outlets"


class OutletError(Exception):
    """An outlet file that cannot be used; the message is one line naming file and field."""


class Boilerplate(BaseModel):
    """Text rules applied to the extracted body, after trafilatura."""

    model_config = ConfigDict(extra="forbid")

    #: a line containing one of these ends the article: it and everything after is dropped
    cut_from: list[str] = Field(default_factory=list)
    #: lines containing one of these are dropped wherever they stand
    drop_lines: list[str] = Field(default_factory=list)


class Selectors(BaseModel):
    """CSS selectors naming parts of an article page, tried before the generic extractor.

    A selector that finds nothing (the outlet changed its markup) leaves that field to
    trafilatura, so a stale selector costs precision, never the article.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the article text: every element it matches, in page order
    body: str | None = None
    title: str | None = None
    #: an element whose datetime/content attribute or text holds the publication date
    published: str | None = None
    author: str | None = None

    @field_validator("body", "title", "published", "author")
    @classmethod
    def _is_css(cls, selector: str | None) -> str | None:
        if selector is None:
            return None
        if not selector.strip():
            raise ValueError("an empty CSS selector")
        try:
            GenericTranslator().css_to_xpath(selector)
        except SelectorError as exc:
            detail = " ".join(str(exc).split())
            raise ValueError(f"not a valid CSS selector: {detail}") from None
        return selector


class Politeness(BaseModel):
    """Limits for the whole outlet, across every mirror and (in distributed mode) every worker."""

    model_config = ConfigDict(extra="forbid")

    requests_per_second: float | None = Field(default=None, gt=0)
    concurrency: int | None = Field(default=None, ge=1)


class Revisit(BaseModel):
    """Fetching stored articles again, to see edits and removals."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: articles published (or first seen) this recently are revisited
    window: str = "3d"
    #: each of them at most this often
    interval: str = "6h"
    #: and, as it ages, only once it has gone unchecked this many times its age at the last
    #: check (1: checks at about twice the age each time; 0: every ``interval``)
    backoff: float = Field(default=1.0, ge=0, le=100)
    #: revisits that must find an article gone before its removal is final
    removal_checks: int = Field(default=3, ge=1)

    @field_validator("window", "interval")
    @classmethod
    def _is_duration(cls, value: str) -> str:
        parse_interval(value)
        return value

    @property
    def window_seconds(self) -> float:
        return parse_interval(self.window)

    @property
    def interval_seconds(self) -> float:
        return parse_interval(self.interval)


def _check_path(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"{path!r}: a path must start with '/'")
    return path


class Section(BaseModel):
    """A section: its listing's path, its feeds, or both. An outlet file may give a section
    as its path alone (``economy: /Section/10102``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the first listing page; None: the section is read from its feeds only
    path: str | None = None
    #: RSS or Atom feeds of the section (paths on any mirror)
    feeds: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _a_path_alone(cls, value: object) -> object:
        return {"path": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _paths(self) -> Section:
        if self.path is None and not self.feeds:
            raise ValueError("a section needs a path, feeds or both")
        for path in ([self.path] if self.path else []) + self.feeds:
            _check_path(path)
        return self


class Outlet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    mirrors: list[str] = Field(min_length=1)
    #: name -> its listing path, or {path, feeds}
    sections: dict[str, Section] = Field(default_factory=dict)
    article_url: str
    #: RSS or Atom feeds of the whole outlet (paths on any mirror)
    feeds: list[str] = Field(default_factory=list)
    #: news sitemaps or sitemap indexes (paths on any mirror)
    sitemaps: list[str] = Field(default_factory=list)
    #: also read the sitemaps named by the outlet's robots.txt (``Sitemap:`` lines)
    robots_sitemaps: bool = False
    #: sitemap entries (and sitemaps of an index) dated older than this are not fetched
    sitemap_window_days: float = Field(default=2.0, gt=0)
    blocked_markers: list[str] = Field(default_factory=list)
    max_section_pages: int = Field(default=5, ge=1)
    #: path-style pagination: page N (N >= 2) of a section is at this path
    #: ({path} is the section path, {page} the page number), e.g. "{path}/{page}"
    page_path: str | None = None
    boilerplate: Boilerplate = Field(default_factory=Boilerplate)
    selectors: Selectors = Field(default_factory=Selectors)
    politeness: Politeness = Field(default_factory=Politeness)
    revisit: Revisit = Field(default_factory=Revisit)
    #: other host names of the outlet (e.g. ``presstv.ir`` beside ``www.presstv.ir``): links and
    #: redirects to them stay inside the outlet, and name the same documents as the mirrors
    aliases: list[str] = Field(default_factory=list)
    #: article text shorter than this (characters) is suspect: an error or notice page. It is
    #: tried on another mirror, and stored only when a second mirror serves the same text
    min_text_length: int = Field(default=200, ge=0)
    #: query parameters that are part of an article's identity (``[id]`` for
    #: ``/article.php?id=5``); by default none: an article is its path. Listing URLs keep
    #: their query (``?page=2``). Tracking parameters (utm_*, fbclid, ...) never count.
    identity_params: list[str] = Field(default_factory=list)
    #: phrases that open the outlet's mirror notices ("can also be accessed at"); None: the
    #: defaults (:data:`crawler.core.mirror_notices.DEFAULT_MIRROR_NOTICES`)
    mirror_notices: list[str] | None = None
    #: what to do with a mirror the outlet names that served its stored articles alike:
    #: list it for a person to adopt, adopt it (lowest preference, never canonical), or
    #: not look for candidates at all
    mirror_discovery: Literal["propose", "adopt", "off"] = "propose"
    description: str | None = None

    @field_validator("mirrors")
    @classmethod
    def _mirrors_are_base_urls(cls, mirrors: list[str]) -> list[str]:
        normalized = []
        for mirror in mirrors:
            shown = repr(redact_url(mirror))  # an error must not echo a password
            parts = urlsplit(mirror)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{shown} is not an http(s) base URL")
            if parts.username is not None or parts.password is not None:
                # mirror URLs end up in logs, status output and metric labels
                raise ValueError(f"{shown}: a mirror URL may not carry a user or password")
            try:
                port = parts.port
            except ValueError:  # not a number, or above 65535
                port = 0
            if port == 0 or parts.netloc.endswith(":"):
                raise ValueError(f"{shown}: the port must be a number from 1 to 65535")
            if parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ValueError(f"{shown} must be scheme://host[:port] without a path")
            normalized.append(f"{parts.scheme}://{parts.netloc.lower()}")
        if len(set(normalized)) != len(normalized):
            raise ValueError("a mirror is listed twice")
        return normalized

    @field_validator("aliases")
    @classmethod
    def _aliases_are_host_names(cls, aliases: list[str]) -> list[str]:
        hosts = []
        for alias in aliases:
            host = alias.strip().lower()
            if not re.fullmatch(r"[a-z0-9.-]+(:\d{1,5})?", host) or host.startswith("."):
                raise ValueError(f"{alias!r} is not a host name (no scheme, no path)")
            hosts.append(host)
        return hosts

    @field_validator("mirror_notices")
    @classmethod
    def _notices_are_phrases(cls, phrases: list[str] | None) -> list[str] | None:
        if phrases is not None and any(len(p.strip()) < 4 for p in phrases):
            raise ValueError("a notice phrase needs at least 4 characters")
        return phrases

    @field_validator("feeds", "sitemaps")
    @classmethod
    def _are_paths(cls, paths: list[str]) -> list[str]:
        return [_check_path(path) for path in paths]

    @field_validator("article_url")
    @classmethod
    def _article_url_compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return pattern

    @field_validator("page_path")
    @classmethod
    def _page_path_has_page(cls, template: str | None) -> str | None:
        if template is not None and "{page}" not in template:
            raise ValueError("must contain {page}")
        return template

    @model_validator(mode="after")
    def _something_to_read(self) -> Outlet:
        if not (self.sections or self.feeds or self.sitemaps or self.robots_sitemaps):
            raise ValueError("nothing to crawl: give sections, feeds or sitemaps")
        return self

    @model_validator(mode="after")
    def _page_path_renders(self) -> Outlet:
        if self.page_path is not None:
            try:
                self.page_path.format(path="/x", page=2)
            except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
                raise ValueError(
                    f"page_path: only {{path}} and {{page}} may be used ({exc})"
                ) from None
        return self

    # -- derived, cached on the frozen model --------------------------------------------------

    @property
    def canonical(self) -> str:
        return self.mirrors[0]

    @property
    def notice_phrases(self) -> tuple[str, ...]:
        return DEFAULT_MIRROR_NOTICES if self.mirror_notices is None else tuple(
            self.mirror_notices)

    def with_mirrors(self, extra: Iterable[str]) -> Outlet:
        """This outlet with ``extra`` mirrors after its own, at the lowest preference: the
        canonical mirror, and so every document's identity, stays as it is."""
        added = [m for m in extra if m not in self.mirrors]
        if not added:
            return self
        return Outlet.model_validate({**self.model_dump(), "mirrors": self.mirrors + added})

    @cached_property
    def article_pattern(self) -> re.Pattern[str]:
        return re.compile(self.article_url)

    @cached_property
    def mirror_netlocs(self) -> dict[str, str]:
        """(netloc -> mirror base URL) for recognising links to any mirror."""
        return {urlsplit(m).netloc: m for m in self.mirrors}

    @cached_property
    def netlocs(self) -> frozenset[str]:
        """Every host[:port] of the outlet: its mirrors and its aliases."""
        return frozenset(self.mirror_netlocs) | frozenset(self.aliases)

    def mirror_of(self, url: str) -> str | None:
        """The mirror base URL ``url`` is on (either scheme of its host), or None when it is
        on an alias or off the outlet."""
        return self.mirror_netlocs.get(urlsplit(url).netloc.lower())

    def mirror_asked(self, request: Request | Response) -> str | None:
        """The mirror a request (or the request of a response) went to: the one its
        routing named (``meta["mirror"]``), else the one its URL is on."""
        return request.meta.get(meta.MIRROR) or self.mirror_of(request.url)

    def owns(self, url: str) -> bool:
        """Whether ``url`` is an http(s) URL on one of the outlet's mirrors or aliases."""
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and parts.netloc.lower() in self.netlocs

    def on_mirror(self, url: str, mirror: str) -> str:
        """The same document as ``url`` (on any mirror) served from ``mirror``."""
        parts = urlsplit(url)
        rest = url[len(parts.scheme) + 3 + len(parts.netloc) :]
        return mirror + rest

    @cached_property
    def identity_param_set(self) -> frozenset[str]:
        return frozenset(self.identity_params)

    def is_article(self, url: str) -> bool:
        return self.article_pattern.search(urlsplit(url).path) is not None

    def is_landing_page(self, url: str) -> bool:
        """Whether ``url`` is the outlet's home page or a section's first page: where sites
        send readers of an article they took down."""
        path = urlsplit(url).path.rstrip("/")
        return path == "" or path in {
            section.path.rstrip("/") for section in self.sections.values() if section.path}

    def canonical_url(self, url: str) -> str:
        """The identity of the document at ``url`` (on any mirror or alias): the URL on the
        canonical mirror, canonicalized, without tracking parameters, and for an article
        with only its ``identity_params``. Dedup and storage key on it."""
        on_canonical = self.on_mirror(url, self.canonical)
        keep = self.identity_param_set.__contains__ if self.is_article(on_canonical) else None
        return identity_url(on_canonical, keep)

    def fetch_url(self, url: str) -> str:
        """The URL to request for the document at ``url``: on the canonical mirror, without
        tracking parameters or fragment, its other query as given (the server may need it)."""
        return without_tracking(self.on_mirror(url, self.canonical))

    def section_page_url(self, section: str, page: int) -> str:
        path = self.sections[section].path
        if path is None:
            raise ValueError(f"section {section!r} of {self.name} has no listing, only feeds")
        if page > 1 and self.page_path:
            path = self.page_path.format(path=path.rstrip("/"), page=page)
        return self.canonical + path


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    more = len(error.errors()) - 1
    return f"field '{where}': {message}" + (f" (and {more} more)" if more else "")


def load_outlet_file(path: Path) -> Outlet:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OutletError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise OutletError(f"{path}: not UTF-8 text (byte {exc.start} is invalid)") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise OutletError(f"{path}: not valid YAML (nested too deeply)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise OutletError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise OutletError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    try:
        outlet = Outlet.model_validate(data)
    except ValidationError as exc:
        raise OutletError(f"{path}: {_one_line(exc)}") from None
    if outlet.name != path.stem:
        raise OutletError(f"{path}: field 'name': {outlet.name!r} must match the file name")
    return outlet


@dataclass
class OutletCatalog:
    """The outlets of one directory, loaded lazily and validated file by file."""

    directory: Path
    _cache: dict[str, Outlet] = field(default_factory=dict, repr=False)
    #: outlet -> mirrors adopted beside the file's (crawler.extensions.mirror_discovery)
    _adopted: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    #: outlet -> as its file says, before any adopted mirror
    _files: dict[str, Outlet] = field(default_factory=dict, repr=False)

    @classmethod
    def from_setting(cls, directory: str | Path | None) -> OutletCatalog:
        if directory:
            path = Path(directory)
            if not path.is_dir():
                raise OutletError(f"{path}: outlets directory does not exist")
            return cls(path)
        return cls(BUNDLED_OUTLETS)

    def files(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.suffix in (".yaml", ".yml"))

    def names(self) -> list[str]:
        return [p.stem for p in self.files()]

    def get(self, name: str) -> Outlet:
        if name not in self._cache:
            if name in self._files:
                self._cache[name] = self._files[name].with_mirrors(self._adopted.get(name, ()))
                return self._cache[name]
            for path in self.files():
                if path.stem == name:
                    outlet = self._files[name] = load_outlet_file(path)
                    self._cache[name] = outlet.with_mirrors(self._adopted.get(name, ()))
                    break
            else:
                known = ", ".join(self.names()) or "none"
                raise OutletError(
                    f"unknown outlet {name!r} in {self.directory} (known: {known})"
                )
        return self._cache[name]

    def file_mirrors(self, name: str) -> list[str]:
        """The mirrors the outlet's file lists, without the adopted ones."""
        self.get(name)
        return list(self._files[name].mirrors)

    def set_adopted(self, name: str, mirrors: Iterable[str]) -> bool:
        """Serve ``name`` with ``mirrors`` after the file's own, at the lowest preference
        (the canonical mirror, and every identity, stay); whether that changed anything."""
        adopted = tuple(mirrors)
        if self._adopted.get(name, ()) == adopted:
            return False
        self._adopted[name] = adopted
        self._cache.pop(name, None)
        return True

    def validate_all(self) -> Iterable[tuple[Path, Outlet | OutletError]]:
        for path in self.files():
            try:
                yield path, load_outlet_file(path)
            except OutletError as exc:
                yield path, exc
