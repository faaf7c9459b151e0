"""What the site keeps in the cache, and the one rule that keeps it right.

Two things are kept: a public page whole, for visitors who are not logged
in (:func:`public_page`), and a part of a page — the layout's navigation, a
list with its pager, a need's pledges — for everyone (:func:`keep`, and
``{% kept %}`` in templates). Both are kept under one key:

    the page version · the templates' digest · the language · the part's
    name · what the request asks (who is asking, the host, the query string)

and live at most ``PAGE_CACHE_SECONDS`` from when they were rendered.

The page version is ``sun_commune_page_version``, a PostgreSQL sequence that
a statement trigger on every table a kept page reads (``PAGE_TABLES``)
advances on every INSERT, UPDATE, DELETE or TRUNCATE, whoever makes it.
Nothing in a key lists the fields a template shows: any change of the data
or of a template makes new keys, and nothing needs flushing.

The trigger runs inside the writer's transaction, before it commits: a
reader who takes the new version in that instant still sees the old rows and
could keep them under it. So the version is advanced once more after the
writer commits: :func:`changed_after_commit`, called by a signal on every
``save()`` and ``delete()`` of a page table's model (``apps.py``) and
explicitly where a service writes such a table without the ORM's save
(a conditional UPDATE, ``bulk_create``, COPY). ``PAGE_CACHE_SECONDS`` bounds
whatever else could go wrong.

A kept copy carries no one's CSRF token (a slot that each request fills with
its own) and no session: pages for a logged-in person, or with flash
messages, are never kept whole.
"""

import hashlib
import re
import threading
import time
from collections import OrderedDict
from functools import lru_cache, wraps
from pathlib import Path

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language

from .crypto import fernet

SEQUENCE = "sun_commune_page_version"

# Every table a kept page or part reads; each has the trigger (migrations
# sun_commune/0003_page_version and the apps' own). tests/test_pagecache.py
# checks both that the triggers are there and that a kept page reads no other.
PAGE_TABLES = frozenset(
    {
        "sun_commune_user",
        "sun_commune_rolegrant",
        "households_area",
        "households_household",
        "households_householdmember",
        "households_villageprofile",
        "households_consentrecord",
        "donations_donor",
        "donations_need",
        "donations_pledge",
        "donations_ledgertransaction",
        "donations_publishedentry",
        "donations_ledgerbatch",
        "donations_arealedgertotal",
        "donations_pairing",
        "cooperatives_cooperativemanager",
    }
)

# Where a kept part's CSRF token goes: each request puts its own back in
# (with_token). A NUL cannot occur in HTML Django rendered.
CSRF_SLOT = "\x00csrf\x00"
_TOKEN = re.compile(r'(name="csrfmiddlewaretoken" value=")[^"]*(")')


# --- The page version --------------------------------------------------------


def version() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT last_value FROM {SEQUENCE}")
        return cursor.fetchone()[0]


def version_for(request) -> int:
    """The page version, read once per request: every kept part of a page
    is under the same one."""
    if request is None:
        return version()
    found = getattr(request, "sun_page_version", None)
    if found is None:
        found = request.sun_page_version = version()
    return found


def changed() -> None:
    """Make everything kept old: the next request renders afresh."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT nextval('{SEQUENCE}')")


# Advances asked for in this thread since the last one ran: however many
# rows a transaction writes, its commit advances the version once.
_pending = threading.local()


def _changed_once() -> None:
    # Only this callback clears the count: a direct changed() inside the
    # transaction must not cancel the advance its commit still owes.
    if getattr(_pending, "count", 0):
        _pending.count = 0
        changed()


def changed_after_commit() -> None:
    """Advance the version when the current transaction commits (at once
    outside a transaction)."""
    if not connection.in_atomic_block:
        changed()
        return
    _pending.count = getattr(_pending, "count", 0) + 1
    transaction.on_commit(_changed_once)


def row_changed(sender, **kwargs) -> None:
    """Signal receiver for ``post_save`` and ``post_delete``, connected to
    the page tables' models only (apps.py)."""
    changed_after_commit()


# --- Kept parts ----------------------------------------------------------------


class _Local:
    """The parts this process used last, newest last, up to ``max_bytes``
    of HTML. An entry keeps the moment it expires in the shared cache, so it
    expires at that moment here too."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] < time.time():
                self._drop(key)
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: str, html: str, expires: float) -> None:
        size = len(html)
        if size > self.max_bytes // 8:
            return  # one part never pushes out most of the others
        with self._lock:
            if key in self._items:
                self._drop(key)
            self._items[key] = (expires, html)
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._items)))

    def _drop(self, key: str) -> None:
        self._bytes -= len(self._items.pop(key)[1])

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


LOCAL = _Local(settings.FRAGMENT_LOCAL_BYTES)


@lru_cache(maxsize=1)
def template_digest() -> str:
    """A digest of every template of the project: a deployment that changes
    any of them (an included one, the form layout) makes new keys."""
    digest = hashlib.blake2b(digest_size=8)
    for directory in settings.TEMPLATES[0]["DIRS"]:
        for path in sorted(Path(directory).rglob("*.html")):
            digest.update(str(path.relative_to(directory)).encode() + b"\x00" + path.read_bytes() + b"\x00")
    return digest.hexdigest()


def key(name: str, asks, request=None) -> str:
    """The key of part ``name`` for what the request ``asks`` (values with a
    stable ``repr``)."""
    where = hashlib.blake2b(repr(asks).encode(), digest_size=16).hexdigest()
    return f"kept:{version_for(request)}:{template_digest()}:{get_language() or ''}:{name}:{where}"


def with_token(html: str, request) -> str:
    """``html`` with ``request``'s own CSRF token in each slot."""
    return html.replace(CSRF_SLOT, get_token(request)) if CSRF_SLOT in html else html


def _seal(html: str) -> bytes:
    return fernet().encrypt(html.encode())


def _unseal(token) -> str | None:
    try:
        return fernet().decrypt(token).decode()
    except (InvalidToken, TypeError):
        return None  # kept under a retired key, or in clear before: a miss


def keep(name: str, asks, render, *, request=None, private=False) -> SafeString:
    """Part ``name`` of a page for what the request ``asks``; ``render()``
    returns its HTML (with ``CSRF_SLOT`` where a token goes) and is called
    only when the part is not kept. With ``request``, the request's own CSRF
    token is put in. A ``private`` part (a household's name or ID number, a
    donor's pledges) is encrypted with the field-encryption key in the
    shared cache, so Redis and its dumps never hold it in clear; the
    process's own copy is kept as rendered."""
    seconds = settings.PAGE_CACHE_SECONDS
    if seconds <= 0:
        html = render()
    else:
        k = key(name, asks, request)
        html = LOCAL.get(k)
        if html is None:
            found = cache.get(k)
            if found is not None:
                expires, html = found
                if private:
                    html = _unseal(html)
            if html is None:
                html = render()
                expires = time.time() + seconds
                cache.set(k, (expires, _seal(html) if private else html), seconds)
            LOCAL.put(k, html, expires)
    return mark_safe(with_token(html, request) if request is not None else html)


# --- Public pages kept whole -----------------------------------------------------


def _cacheable(request) -> bool:
    return (
        settings.PAGE_CACHE_SECONDS > 0
        and request.method in ("GET", "HEAD")
        and settings.SESSION_COOKIE_NAME not in request.COOKIES
        and "messages" not in request.COOKIES
    )


def public_page(view):
    """Keep the view's page whole for visitors who are not logged in."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not _cacheable(request):
            return view(request, *args, **kwargs)
        k = key("page", (request.get_host(), request.get_full_path()), request)
        kept = cache.get(k)
        if kept is not None:
            content_type, body = kept
            return HttpResponse(with_token(body, request), content_type=content_type)
        response = view(request, *args, **kwargs)
        if response.status_code == 200 and not response.streaming and not response.cookies:
            body = _TOKEN.sub(rf"\g<1>{CSRF_SLOT}\g<2>", response.content.decode(response.charset))
            cache.set(k, (response["Content-Type"], body), settings.PAGE_CACHE_SECONDS)
        return response

    wrapper.kept_page = True
    return wrapper
