"""Text search that works for Chinese.

PostgreSQL's text search splits words on spaces, which Chinese does not
have, and trigram indexes need three characters while most Chinese words
have two (电视, 种苗). So each need stores the distinct characters and
character pairs of its text in an array with a GIN index; a query asks for
the rows whose array contains every pair of the query (one GIN lookup), and
then checks the exact substring on those rows only.
"""

import unicodedata

from django.db.models import Q


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").lower()


def _chunks(text: str) -> list[str]:
    return [chunk for chunk in normalise(text).split() if chunk]


def index_terms(*texts: str) -> list[str]:
    """Every character and every pair of neighbouring characters, deduplicated."""
    terms: set[str] = set()
    for text in texts:
        for chunk in _chunks(text):
            terms.update(chunk)
            terms.update(chunk[i : i + 2] for i in range(len(chunk) - 1))
    return sorted(terms)


def query_terms(query: str) -> list[str]:
    """The terms a matching row must hold: the pairs of each word, or the
    character itself for a one-character word."""
    terms: set[str] = set()
    for chunk in _chunks(query):
        if len(chunk) == 1:
            terms.add(chunk)
        else:
            terms.update(chunk[i : i + 2] for i in range(len(chunk) - 1))
    return sorted(terms)


def search_filter(query: str, fields: tuple[str, ...] = ("title", "item", "description")) -> Q | None:
    """A filter for needs matching every word of ``query``, or None when the
    query holds no word."""
    chunks = _chunks(query)[:8]
    if not chunks:
        return None
    condition = Q(search_terms__contains=query_terms(" ".join(chunks)))
    for chunk in chunks:
        any_field = Q()
        for field in fields:
            any_field |= Q(**{f"{field}__icontains": chunk})
        condition &= any_field
    return condition
