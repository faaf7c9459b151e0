"""Text search that works for Chinese.

PostgreSQL's text search splits words on spaces, which Chinese does not
have, and trigram indexes need three characters while most Chinese words
have two (电视, 种苗). So each need stores the distinct characters and
character pairs of its text in an array with a GIN index; a query asks for
the rows whose array contains every pair of the query (one GIN lookup), and
then checks the exact substring on those rows only.
"""

import unicodedata

from django.contrib.postgres.fields import ArrayField
from django.db.models import BooleanField, CharField, F, Func, Q, Value


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
    query holds no word.

    A word of one or two characters is its own term, so holding the term is
    holding the word: no substring check. Only longer words, whose pairs
    could sit apart, are checked on the text. Besides saving the check, this
    keeps PostgreSQL's estimate right: it guesses a substring condition
    matches almost nothing, and for a common word like 电视 it would then
    fetch and sort every match (most of a province's open needs) instead
    of walking the newest-first index until it has a page."""
    chunks = _chunks(query)[:8]
    if not chunks:
        return None
    condition = Q(search_terms__contains=query_terms(" ".join(chunks)))
    for chunk in chunks:
        if len(chunk) <= 2:
            continue
        any_field = Q()
        for field in fields:
            any_field |= Q(**{f"{field}__icontains": chunk})
        condition &= any_field
    return condition


def is_one_term(query: str) -> bool:
    """Whether ``query`` is a single word of one or two characters: one GIN
    term, which PostgreSQL estimates well (see donations.views._search_page)."""
    chunks = _chunks(query)[:8]
    return len(chunks) == 1 and len(chunks[0]) <= 2


TERMS = ArrayField(CharField(max_length=8))


class _Contains(Func):
    """``left @> right`` on an expression of the column, which the GIN index
    does not serve."""

    arg_joiner = " @> "
    template = "(%(expressions)s)"
    output_field = BooleanField()


def unindexed(condition: Q) -> Q:
    """``condition`` with its terms checked on each row rather than through
    the GIN index: for a query that a bounded set of rows drives (see
    donations.views._search_page)."""
    children = []
    for child in condition.children:
        if isinstance(child, Q):
            children.append(unindexed(child))
        elif isinstance(child, tuple) and child[0] == "search_terms__contains":
            row_terms = Func(F("search_terms"), Value([], output_field=TERMS), function="array_cat", output_field=TERMS)
            children.append(_Contains(row_terms, Value(child[1], output_field=TERMS)))
        else:
            children.append(child)
    return Q(*children, _connector=condition.connector, _negated=condition.negated)
