"""Error pages served as pages: a "soft" 404 or 503, answered with 200 in the site's template.

Pure, and light: the extraction processes import it (nothing of Scrapy).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# An error page served with 200 (a "soft" 404 or 503): a heading that says so, a few lines
# of apology, and none of what a page declares of an article. Its words are in these
# languages' commonest forms; a real headline with one of them ("Error in vote count") is
# told apart by its text (longer than an apology) or its metadata (a date, an author).
# What says the page or its content is not there (not found, unavailable, removed):
_UNAVAILABLE = (
    r"\b(?:not found|page not|cannot be found|can[’']?t be found|could not be found"
    r"|no longer (?:available|exists)|does(?: not|n[’']?t) exist"
    r"|(?:temporarily )?unavailable|not available"
    r"|(?:has|have) been (?:removed|deleted|taken down)|(?:was|were) (?:removed|deleted)"
    r"|introuvable|n[’']est plus disponible|indisponible|nicht gefunden"
    r"|nicht (?:mehr )?verfügbar|no encontrad[ao]|no (?:está )?disponible|non trovat[ao]"
    r"|non (?:è )?(?:più )?disponibile|niet gevonden|niet (?:meer )?beschikbaar"
    r"|não encontrad[ao]|não (?:está )?disponível)\b"
    r"|не найден|недоступн|غير موجود|یافت نشد|找不到|页面不存在"
)
_ERROR_HEADING = re.compile(
    r"\b(?:error|oops|whoops|sorry|under maintenance|something went wrong|access denied"
    r"|forbidden|erreur|fehler)\b|ошибка|خطأ|خطا|" + _UNAVAILABLE,
    re.IGNORECASE,
)
_UNAVAILABLE_TEXT = re.compile(_UNAVAILABLE, re.IGNORECASE)
#: an apology, a reason and where to go instead: a few hundred characters
ERROR_PAGE_MAX_TEXT = 600


def error_page_heading(text: str, headings: Iterable[str | None],
                       declares_article: bool) -> str | None:
    """The heading that makes a page with ``text`` an error page served as a page (its
    ``<title>`` or an ``<h1>``), or None. Only a page that declares nothing of an article
    (no headline, author or date in its metadata) and has a short text can be one."""
    if declares_article or len(text) > ERROR_PAGE_MAX_TEXT:
        return None
    return next((h for h in headings if h and _ERROR_HEADING.search(h)), None)


#: a page whose whole text is a line saying it is not there ("This content is not available
#: at the moment."). The shortest real article texts in the corpora are longer: 302
#: characters in their ground truth, 97 and 122 as extracted (two short blog posts, with a
#: date); the nearest that says one of these words has 1,470.
UNAVAILABLE_MAX_TEXT = 200


def unavailable_text(text: str, declares_article: bool) -> str | None:
    """``text`` when it is an error page's whole text: so short it can be nothing but a line
    saying the page or its content is not found, unavailable or removed, on a page that
    declares nothing of an article; None otherwise. Its heading may say nothing ("Notice")."""
    if declares_article or len(text) > UNAVAILABLE_MAX_TEXT:
        return None
    return text if _UNAVAILABLE_TEXT.search(text) else None
