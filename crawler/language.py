"""The language of a text that does not say its own: by script, then by stopwords.

For pages without ``<html lang>`` or a declared language. A script used by one language
decides alone (kana: Japanese, hangul: Korean); otherwise the text's commonest words are
looked up in jusText's stoplists (about 80 languages, shipped with trafilatura), and the
language whose stoplist holds the largest share of them wins, where that share is clear.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["guess_language"]

# scripts of one language (or nearly): the share of letters in them that decides
_SCRIPTS = (
    ("ja", re.compile(r"[\u3040-\u30ff]")),  # hiragana, katakana
    ("ko", re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),  # Han without kana: Chinese
    ("el", re.compile(r"[\u0370-\u03ff]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
)
_ARABIC = re.compile(r"[\u0600-\u06ff]")
_WORD = re.compile(r"\w+")
#: a winner must hold at least this share of the words, and that much more than the next
MIN_SHARE = 0.2
MIN_LEAD = 1.15


def guess_language(text: str, sample: int = 400) -> str | None:
    """An ISO 639-1 code for ``text``, or None where it is not clear."""
    head = text[:4000]
    letters = sum(c.isalpha() for c in head)
    if not letters:
        return None
    for code, script in _SCRIPTS:
        if len(script.findall(head)) >= 0.2 * letters:
            if code == "zh" and len(_SCRIPTS[0][1].findall(head)) >= 0.05 * letters:
                return "ja"
            return code
    words = [w.casefold() for w in _WORD.findall(head)][:sample]
    if len(words) < 5:
        return None
    arabic = len(_ARABIC.findall(head)) >= 0.2 * letters
    shares = sorted(
        ((sum(w in stoplist for w in words) / len(words), code)
         for code, stoplist in _stoplists().items() if (code in _ARABIC_SCRIPT) == arabic),
        reverse=True,
    )
    if not shares:
        return None
    (best, code), runner_up = shares[0], (shares[1][0] if len(shares) > 1 else 0.0)
    return code if best >= MIN_SHARE and best >= MIN_LEAD * runner_up else None


_ARABIC_SCRIPT = frozenset({"ar", "fa", "ur"})


# Bokmål and Nynorsk are Norwegian ("no") to a reader of the archive, and their lists tie
_SAME_AS = {"nb": "no", "nn": "no"}


@lru_cache(maxsize=1)
def _stoplists() -> dict[str, frozenset[str]]:
    """code -> stopwords, each list without the words of another script (some lists of
    non-Latin languages hold English words, which would vote for them on English text)."""
    import justext
    from trafilatura.settings import JUSTEXT_LANGUAGES

    lists = {}
    for code, name in JUSTEXT_LANGUAGES.items():
        if code in _SAME_AS:
            continue
        words = justext.get_stoplist(name)
        latin = {w for w in words if w.isascii() or all(c < "\u0250" for c in w)}
        lists[code] = frozenset(latin if len(latin) * 2 >= len(words) else set(words) - latin)
    return lists
