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
_ERROR_HEADING = re.compile(
    r"\b(?:error|oops|whoops|sorry|not found|page not|cannot be found|can[’']?t be found"
    r"|could not be found|no longer (?:available|exists)|does(?: not|n[’']?t) exist"
    r"|(?:temporarily )?unavailable|not available|under maintenance|something went wrong"
    r"|access denied|forbidden"
    r"|erreur|introuvable|fehler|nicht gefunden|no encontrad[ao]|no disponible"
    r"|non trovat[ao]|niet gevonden|não encontrad[ao])\b"
    r"|ошибка|не найден|недоступн|خطأ|غير موجود|خطا|یافت نشد|找不到|页面不存在",
    re.IGNORECASE,
)
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
