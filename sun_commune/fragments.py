"""Rendered fragments of list pages, cached by everything they show.

Rendering twenty need cards or fifty ledger rows through Django's templates
costs several times what the page's queries do. A list page gives each row's
fragment a key made of every value the fragment displays (and the
language), fetches all of them from the cache in one round trip, and renders
only the ones missing. A changed figure, status or consent makes a new key,
so a cached fragment is never stale: it is the exact HTML the template would
render now. Rows that never change (published ledger entries) are keyed by
their identity alone.

Because a key names exactly one piece of HTML, each process also keeps the
fragments it used last in its own memory (``LOCAL``, bounded by
``FRAGMENT_LOCAL_BYTES``) in front of the shared cache: the layout's
navigation of a logged-in person, the same on every page they open, then
costs no cache round trip at all.
"""

import hashlib
import threading
import time
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.middleware.csrf import get_token
from django.template.loader import get_template, render_to_string
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language

FRAGMENT_SECONDS = 6 * 3600
# Where a kept part's CSRF token goes: each request puts its own back in
# (with_token). A NUL cannot occur in HTML Django rendered.
CSRF_SLOT = "\x00csrf\x00"


class _Local:
    """The fragments this process used last, newest last, up to
    ``max_bytes`` of HTML; each expires as its cache entry does."""

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
            if item[0] < time.monotonic():
                self._drop(key)
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: str, html: str, seconds: int) -> None:
        size = len(html)
        if size > self.max_bytes // 8:
            return  # one fragment never pushes out most of the others
        with self._lock:
            if key in self._items:
                self._drop(key)
            self._items[key] = (time.monotonic() + seconds, html)
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


def kept_get(key: str, seconds: int = FRAGMENT_SECONDS, *, exact_life: bool = False) -> str | None:
    """The fragment under ``key``: from this process, else from the cache.
    With ``exact_life`` a fragment found in the cache is not held here (its
    copy would outlive the cache's by up to ``seconds``): what must not live
    longer than ``seconds`` after it was rendered."""
    html = LOCAL.get(key)
    if html is None:
        html = cache.get(key)
        if html is not None and not exact_life:
            LOCAL.put(key, html, seconds)
    return html


def kept_set(key: str, html: str, seconds: int = FRAGMENT_SECONDS) -> None:
    cache.set(key, html, seconds)
    LOCAL.put(key, html, seconds)


def with_token(html: str, request) -> str:
    """``html`` with ``request``'s own CSRF token in each slot."""
    return html.replace(CSRF_SLOT, get_token(request)) if CSRF_SLOT in html else html


@lru_cache(maxsize=1)
def _templates_version() -> str:
    """A digest of every template of the project: a deployment that changes
    any of them (an included one, the form layout) makes new keys for all
    fragments, not only for those whose own template changed."""
    digest = hashlib.blake2b(digest_size=6)
    for directory in settings.TEMPLATES[0]["DIRS"]:
        for path in sorted(Path(directory).rglob("*.html")):
            digest.update(path.read_bytes())
    return digest.hexdigest()


@lru_cache(maxsize=64)
def _template_version(template: str) -> str:
    """A new deployment of a changed template makes new keys."""
    source = getattr(get_template(template).template, "source", "")
    return hashlib.blake2b(source.encode(), digest_size=6).hexdigest() + _templates_version()


def render_many(
    items, template: str, *, name: str, shows, context: str, seconds: int = FRAGMENT_SECONDS, request=None
) -> list[SafeString]:
    """The HTML of ``template`` for each of ``items`` (rendered with the item
    as ``context``), cached under ``name`` and the values ``shows(item)``
    returns: every value the fragment displays, so that a key is never stale.
    One cache round trip for the whole list.

    A fragment with forms (``{% csrf_token %}``) is kept with a slot where
    the token goes, and ``request``'s own token is put in on the way out:
    a kept fragment never carries anyone's token."""
    items = list(items)
    extra = {"csrf_token": CSRF_SLOT} if request is not None else {}
    prefix = f"fragment:{name}:{_template_version(template)}:{get_language() or ''}:"
    keys = [prefix + hashlib.blake2b(repr(shows(item)).encode(), digest_size=16).hexdigest() for item in items]
    found = {key: html for key in keys if (html := LOCAL.get(key)) is not None}
    shared = cache.get_many([key for key in keys if key not in found]) if len(found) < len(keys) else {}
    for key, fragment in shared.items():
        LOCAL.put(key, fragment, seconds)
    found.update(shared)
    missing = {}
    html = []
    for key, item in zip(keys, items, strict=True):
        fragment = found.get(key)
        if fragment is None:
            fragment = missing[key] = render_to_string(template, {context: item, **extra})
        html.append(mark_safe(with_token(fragment, request) if request is not None else fragment))
    if missing:
        cache.set_many(missing, seconds)
        for key, fragment in missing.items():
            LOCAL.put(key, fragment, seconds)
    return html


def render_block(
    template: str, *, name: str, shows, context, request=None, seconds: int = FRAGMENT_SECONDS
) -> SafeString:
    """One part of a page (a list with its filters and pager) kept under
    ``name`` and ``shows``: every value the part displays, so that a key is
    never stale. ``context`` is a callable that returns the template's
    context; it is called only when the part is not kept, so a list can
    read just the values it shows on the way in and load its full rows only
    to render. With ``request``, the part is rendered with it (the pager's
    links) and forms in it get ``request``'s own CSRF token."""
    digest = hashlib.blake2b(repr(shows).encode(), digest_size=16).hexdigest()
    key = f"fragment:{name}:{_template_version(template)}:{get_language() or ''}:{digest}"
    html = kept_get(key, seconds)
    if html is None:
        values = context()
        if request is not None:
            values["csrf_token"] = CSRF_SLOT
        html = render_to_string(template, values, request=request)
        kept_set(key, html, seconds)
    return mark_safe(with_token(html, request) if request is not None else html)
