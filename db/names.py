"""Name normalisation for matching places and actors case- and spelling-insensitively.

PostgreSQL core has no unaccent (it is a contrib extension), so names are normalised
here, once, when they are written (`*_names.name_norm`) and when they are queried.
"""

import re
import unicodedata
from functools import lru_cache

_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_NON_WORD = re.compile(r"[\W_]+")
# Words that administrative names carry or drop freely: "Al Hasakah Governorate",
# "Hasakah province" and "Al-Hasakah" all name one place.
_ARTICLES = ("al ", "el ", "ar ", "as ", "ad ", "an ", "at ", "az ", "the ")
_ADMIN_SUFFIXES = (" governorate", " province", " district", " region", " village", " town", " city",
                   " subdistrict", " sub district", " nahiya", " muhafazah")


# (an import normalises each row's names, and rows repeat the same few thousand: 860,000
# calls for 50,000 ACLED rows, a tenth of the import's time)
@lru_cache(maxsize=65536)
def normalize_name(name: str) -> str:
    """Case-folded, accent-free, punctuation-free form: "Al-Ḥasakah " -> "al hasakah".
    A name in another script ("حلب") keeps its letters; one with no letter or digit at
    all ("?") normalises to ""."""
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    latin = _NON_ALNUM.sub(" ", stripped).strip()
    return latin or _NON_WORD.sub(" ", stripped).strip()


def name_variants(name: str) -> set[str]:
    """The normalised name plus its forms without a leading article or an admin suffix."""
    base = normalize_name(name)
    if not base:
        return set()
    variants = {base}
    for form in list(variants):
        for suffix in _ADMIN_SUFFIXES:
            if form.endswith(suffix) and len(form) > len(suffix):
                variants.add(form[: -len(suffix)])
    for form in list(variants):
        for article in _ARTICLES:
            if form.startswith(article) and len(form) > len(article):
                variants.add(form[len(article):])
    return variants


def with_article(noun: str) -> str:
    """"an event", "a claim": for messages and descriptions."""
    return ("an " if noun[:1] in "aeiou" else "a ") + noun
