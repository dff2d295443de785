"""The demo outlet's articles: who wrote what, when, in which sections, and the ground truth
a correct extraction of each yields. All of it follows from a seed, so a site is the same
every time it is made."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

from crawler.demo import text

OUTLET_NAME = "demonews"
SITE_NAME = "Demo News"
SECTIONS = text.SECTIONS

#: article kinds
NEWS = "news"
VIDEO = "video"  # no body text at all: extraction yields nothing
ARCHIVED = "archived"  # dated 2020, so under the robots.txt-disallowed prefix

#: when the newest article was published, unless a site says otherwise
NEWEST = datetime(2024, 6, 28, 17, 45, tzinfo=UTC)


@dataclass(frozen=True)
class DemoArticle:
    id: int
    kind: str
    published: datetime
    title: str
    author: str
    sections: tuple[str, ...]
    summary: str
    words: int

    @cached_property
    def path(self) -> str:
        return f"/news/{self.published:%Y/%m/%d}/{self.id}/{text.slugify(self.title)}"

    @property
    def published_iso(self) -> str:
        return self.published.isoformat()


@dataclass(frozen=True)
class Truth:
    """What a correct extraction of one article yields."""

    title: str
    author: str
    published: str
    text: str
    sections: tuple[str, ...]
    language: str = "en"


def make_articles(count: int, seed: int, newest: datetime) -> list[DemoArticle]:
    """``count`` articles, newest first, the first published at ``newest``."""
    rng = random.Random(f"{OUTLET_NAME}:{seed}")
    authors = [text.person(rng) for _ in range(12)]
    articles = []
    when = newest
    for age in range(count):  # newest first; ids grow with time
        section = SECTIONS[age % len(SECTIONS)]
        sections = (section,)
        if rng.random() < 0.18:
            sections += (rng.choice([s for s in SECTIONS if s != section]),)
        kind = {2: ARCHIVED, 4: VIDEO}.get(age, NEWS)
        published = when.replace(second=0, microsecond=0)
        if kind == ARCHIVED:
            published = published.replace(year=2020)
        articles.append(
            DemoArticle(
                id=1000 + count - age,
                kind=kind,
                published=published,
                title=text.headline(rng, section),
                author=rng.choice(authors),
                sections=sections,
                summary=text.summary(rng, section),
                words=0 if kind == VIDEO else rng.randrange(250, 900),
            )
        )
        when -= timedelta(minutes=rng.randrange(40, 900))
    return articles


def body_paragraphs(article: DemoArticle, seed: int) -> list[str]:
    """The article's body text, paragraph by paragraph (none for a video)."""
    rng = random.Random(f"{OUTLET_NAME}:{seed}:{article.id}")
    words = article.words
    return text.paragraphs(rng, article.sections[0], words) if words else []
