"""Keyset pagination.

A page is "the next N rows after this one" in a fixed order that ends in the
primary key, asked as a row comparison, ``(published_at, id) < (%s, %s)``,
that PostgreSQL answers from the list's index: the thousandth page costs
what the first does, and no page counts the whole table.

The cursor in the URL is the sort key of the last row shown, encoded so it
is opaque and tamper-safe (a bad cursor shows the first page).
"""

import base64
import datetime
import json
from dataclasses import dataclass

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import F
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan


@dataclass
class Page:
    rows: list
    next_cursor: str | None
    is_first: bool


class _CursorEncoder(DjangoJSONEncoder):
    """Keeps a timestamp's microseconds: DjangoJSONEncoder cuts them to
    milliseconds, and rows of the same millisecond would be skipped or shown
    again."""

    def default(self, o):
        if isinstance(o, datetime.datetime):
            return o.isoformat()
        return super().default(o)


def _encode(values: list) -> str:
    raw = json.dumps(values, cls=_CursorEncoder, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, fields: list) -> list | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(fields):
            return None
        return [field.to_python(value) for field, value in zip(fields, values, strict=False)]
    except (ValueError, TypeError, json.JSONDecodeError, Exception):  # noqa: BLE001 - any bad cursor
        return None


def _after(queryset, order: tuple[str, ...], descending: bool, cursor: str | None):
    """``queryset`` in ``order``, from the row after ``cursor``; and whether
    the cursor was valid."""
    fields = [queryset.model._meta.get_field(name) for name in order]
    qs = queryset.order_by(*[f"-{name}" if descending else name for name in order])
    after = _decode(cursor, fields) if cursor else None
    if after is not None:
        lookup = TupleLessThan if descending else TupleGreaterThan
        qs = qs.filter(lookup(Tuple(*[F(name) for name in order]), after))
    return qs, after is not None


def keyset_window(queryset, *, order: tuple[str, ...], descending: bool, cursor: str | None, size: int):
    """The primary keys of the next ``size`` rows of ``queryset`` after
    ``cursor``, as a subquery: a bounded stretch of the list's index, for a
    filter that PostgreSQL cannot estimate (see donations.views._search_page)."""
    qs, _valid = _after(queryset, order, descending, cursor)
    return qs.values("pk")[:size]


def keyset_page(queryset, *, order: tuple[str, ...], descending: bool, cursor: str | None, size: int) -> Page:
    """Rows of ``queryset`` after ``cursor`` in ``order`` (field names ending
    in the primary key, all ascending or all descending)."""
    fields = [queryset.model._meta.get_field(name) for name in order]
    qs, valid = _after(queryset, order, descending, cursor)
    rows = list(qs[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = _encode([getattr(last, field.attname) for field in fields])
    return Page(rows=rows, next_cursor=next_cursor, is_first=not valid)


def rows_in_order(queryset, ids: list) -> list:
    """The objects of ``queryset`` with these primary keys, in the order of
    ``ids`` (a page read as plain values, loaded whole to be rendered); one
    gone since is left out."""
    loaded = queryset.in_bulk(ids)
    return [loaded[pk] for pk in ids if pk in loaded]
