"""Headline, authors, dates and language from what a page declares about itself."""

from __future__ import annotations

import json

import pytest
from lxml import html as lxml_html

from crawler.extraction import extract_article
from crawler.language import guess_language
from crawler.metadata import Declared, clean_authors, declared, headline

URL = "https://www.derstandard.at/story/3000000218734/kalifat-rufe-hamburg"

LD = {
    "@context": "https://schema.org",
    "@graph": [
        {"@type": "WebSite", "name": "DER STANDARD", "url": "https://www.derstandard.at"},
        {
            "@type": "NewsArticle",
            "headline": "Nach Kalifat-Rufen in Hamburg: Sind wir zu sanft zu Islamisten?",
            "datePublished": "2024-05-03T15:47:42.389Z",
            "dateModified": "2024-05-04T08:00:00+02:00",
            "inLanguage": "de-AT",
            "author": [
                {"@type": "Person", "name": "Birgit Baumann"},
                {"@type": "Person", "name": "Anna Giulia Fink"},
                {"@type": "Organization", "name": "DER STANDARD"},
            ],
            "publisher": {"@type": "NewsMediaOrganization", "name": "DER STANDARD"},
        },
    ],
}

PARAGRAPHS = [
    "Die Aufregung nach dem Aufmarsch von Islamisten in Hamburg bleibt groß, und die Politik "
    "streitet darüber, wie der Staat auf solche Kundgebungen antworten soll.",
    "In Berlin verlangen mehrere Abgeordnete ein Verbot der Gruppe, die zu der Demonstration "
    "aufgerufen hatte; andere warnen davor, dass ein Verbot die Szene nur stärker mache.",
    "Die Innenministerin kündigte an, die Vorgänge zu prüfen, und verwies auf die laufenden "
    "Ermittlungen der Hamburger Polizei gegen die Organisatoren der Kundgebung.",
]


def page(ld: dict | None = LD, lang: str | None = "de", h1: str | None = None,
         title: str = "Nach Kalifat-Rufen in Hamburg: Sind wir zu sanft zu Islamisten? - "
                      "Panorama - derStandard.at") -> str:
    script = (f'<script type="application/ld+json">{json.dumps(ld)}</script>'
              if ld is not None else "")
    lang_attr = f' lang="{lang}"' if lang else ""
    headline_tag = f"<h1>{h1}</h1>" if h1 else ""
    body = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    return (f"<!DOCTYPE html><html{lang_attr}><head><meta charset='utf-8'><title>{title}</title>"
            f'<meta property="og:site_name" content="derStandard.at">{script}</head><body>'
            f"<nav><a href='/'>Startseite</a></nav><article>{headline_tag}{body}</article>"
            "</body></html>")


def parsed(source: str) -> Declared:
    return declared(lxml_html.document_fromstring(source.encode()))


def test_json_ld_article_in_a_graph_gives_headline_people_and_both_dates():
    found = parsed(page())
    assert found.headline == LD["@graph"][1]["headline"]
    assert found.authors == ("Birgit Baumann", "Anna Giulia Fink")  # not the organisation
    assert found.published == "2024-05-03T15:47:42.389Z"
    assert found.modified == "2024-05-04T08:00:00+02:00"


def test_extracted_keeps_publication_and_update_apart():
    extracted = extract_article(page(), URL)
    assert extracted is not None
    assert extracted.title == "Nach Kalifat-Rufen in Hamburg: Sind wir zu sanft zu Islamisten?"
    assert extracted.authors == ("Birgit Baumann", "Anna Giulia Fink")
    assert extracted.author == "Birgit Baumann, Anna Giulia Fink"
    assert extracted.published == "2024-05-03T15:47:42+00:00"
    assert extracted.modified == "2024-05-04T08:00:00+02:00"
    assert extracted.language == "de"


def test_title_without_the_site_name_or_section_where_nothing_else_is_declared():
    extracted = extract_article(page(ld=None), URL)
    assert extracted is not None
    assert extracted.title == "Nach Kalifat-Rufen in Hamburg: Sind wir zu sanft zu Islamisten?"


def test_the_visible_headline_wins_and_a_kicker_before_it_goes():
    shown = parsed(page(ld=None, h1="Top 10 Health and Nutrition Trends to Watch",
                        title="Health And Nutrition Trends For 2026 - Tastewise"))
    assert headline(shown) == "Top 10 Health and Nutrition Trends to Watch"
    # the site named by its host where the page does not name it
    shown = Declared(page_title="Health And Nutrition Trends For 2026 - Tastewise",
                     h1=("Top 10 Health and Nutrition Trends to Watch",))
    assert headline(shown, shown_first=False, host="tastewise.io") == (
        "Health And Nutrition Trends For 2026")
    kicker = Declared(headline="Sind wir zu sanft zu Islamisten?",
                      h1=("Nach Kalifat-Rufen in Hamburg: Sind wir zu sanft zu Islamisten?",))
    assert headline(kicker) == "Sind wir zu sanft zu Islamisten?"


@pytest.mark.parametrize(("credit", "site", "names"), [
    (["By Emma Mackenzie", "Image: Getty Images"], None, ("Emma Mackenzie",)),
    (["Von Max Muster und Erika Beispiel | 12.03.2024"], None, ("Max Muster", "Erika Beispiel")),
    (["Elena Oberholzer (obe), Oliver Maksan (oma"], None, ("Elena Oberholzer", "Oliver Maksan")),
    (["Par Jeanne Dupont et Paul Martin"], None, ("Jeanne Dupont", "Paul Martin")),
    (["Le Monde"], "Le Monde", ()),
    (["jane@example.com", "https://example.com/authors/jane"], None, ()),
])
def test_authors_are_names_alone(credit, site, names):
    assert clean_authors(credit, site) == names


def test_meta_author_where_json_ld_names_none():
    source = page(ld=None).replace(
        "</head>", '<meta name="author" content="By Birgit Baumann and Jan Michael Marchart">'
        "</head>")
    assert parsed(source).authors == ("Birgit Baumann", "Jan Michael Marchart")


@pytest.mark.parametrize(("text", "language"), [
    (" ".join(PARAGRAPHS), "de"),
    ("The minister said on Wednesday that the country had found new customers despite the "
     "sanctions and that production would keep expanding over the year.", "en"),
    ("Le ministre a déclaré mercredi que le pays avait trouvé de nouveaux clients malgré les "
     "sanctions et que la production allait encore augmenter cette année.", "fr"),
    ("南海トラフ、一時調査　巨大地震、基準達せず。気象庁は発表した。", "ja"),
    ("장동혁, 한동훈 제명했지만 윤 어게인 절연 외연 확장 부담 커졌다", "ko"),
    ("12 34 56", None),
])
def test_language_from_the_text(text, language):
    assert guess_language(text) == language


def test_language_guessed_where_the_page_does_not_say():
    extracted = extract_article(page(ld=None, lang=None), URL)
    assert extracted is not None and extracted.language == "de"


def test_a_date_alone_takes_the_declared_time_of_the_same_day():
    from crawler.extraction import published_date

    page = Declared(published="2024-03-14T09:42:00+03:30")
    assert published_date(page, "2024-03-14T00:00:00") == "2024-03-14T09:42:00+03:30"
    # another day: the chosen source stands (htmldate's first, the declared one after)
    assert published_date(page, "2024-03-13T00:00:00") == "2024-03-13"
    assert published_date(page, None) == "2024-03-14T09:42:00+03:30"
    assert published_date(page, "2024-03-13T00:00:00", declared_first=True) == (
        "2024-03-14T09:42:00+03:30")
    assert published_date(Declared(published="0001-01-01"), None) is None  # a placeholder
    assert published_date(Declared(published="Thu, 14 Mar 2024 06:12:00 GMT"), None) == (
        "2024-03-14T06:12:00+00:00")
