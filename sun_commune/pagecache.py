"""Public pages kept whole for visitors who are not logged in.

The home page, the supermarket, a need, a village and the public ledger look
the same to every visitor who is not logged in (in one language). Rendering
one costs three to six times what Django's floor does here (the five-table
join of the need cards, building model objects, the layout), so the
rendered page is kept in the cache under

    the page version · the language · the host · the full path

and the next visitor gets it for one cheap query and one cache read.

Never stale: the page version is ``sun_commune_page_version``, a PostgreSQL
sequence that a statement trigger on every table these pages read advances
on every INSERT, UPDATE, DELETE or TRUNCATE, whoever makes it (migration
``sun_commune/0003_page_version``). A change therefore makes new keys. The
trigger runs inside the writer's transaction, before it commits: a visitor
who reads the new version in the instant before the commit could keep the
old page under it. Two things close that gap: every service change that
leaves an audit entry advances the version again once it has committed
(``audit.record`` calls ``changed_after_commit``), and every kept page
expires after ``PAGE_CACHE_SECONDS`` (20 s), well inside the ledger's
publication interval, whatever happens.

What is not kept: pages for a logged-in user (their layout is their own),
a request that carries a session or flash messages, anything but a 200. The
CSRF token of the forms on a page (the language switch) is cut out of the
kept copy and each visitor's own token is put back in.
"""

import hashlib
import re
from functools import wraps

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.http import HttpResponse
from django.utils.translation import get_language

from .fragments import CSRF_SLOT, with_token

SEQUENCE = "sun_commune_page_version"
_TOKEN = re.compile(r'(name="csrfmiddlewaretoken" value=")[^"]*(")')


def version() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT last_value FROM {SEQUENCE}")
        return cursor.fetchone()[0]


def changed() -> None:
    """Make every kept page old: the next request renders afresh."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT nextval('{SEQUENCE}')")


def changed_after_commit() -> None:
    """Advance the version once more when the current transaction commits
    (once per transaction, however many changes it makes)."""
    if not connection.in_atomic_block:
        changed()
        return
    if any(func is changed for _sids, func, _robust in connection.run_on_commit):
        return
    transaction.on_commit(changed)


def _cacheable(request) -> bool:
    return (
        settings.PAGE_CACHE_SECONDS > 0
        and request.method in ("GET", "HEAD")
        and settings.SESSION_COOKIE_NAME not in request.COOKIES
        and "messages" not in request.COOKIES
    )


def _key(request) -> str:
    where = f"{request.get_host()}\x00{request.get_full_path()}"
    digest = hashlib.blake2b(where.encode(), digest_size=16).hexdigest()
    return f"page:{version()}:{get_language() or ''}:{digest}"


def public_page(view):
    """Keep the view's page for visitors who are not logged in (see above)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not _cacheable(request):
            return view(request, *args, **kwargs)
        key = _key(request)
        kept = cache.get(key)
        if kept is not None:
            content_type, body = kept
            return HttpResponse(with_token(body, request), content_type=content_type)
        response = view(request, *args, **kwargs)
        if response.status_code == 200 and not response.streaming and not response.cookies:
            body = _TOKEN.sub(rf"\g<1>{CSRF_SLOT}\g<2>", response.content.decode(response.charset))
            cache.set(key, (response["Content-Type"], body), settings.PAGE_CACHE_SECONDS)
        return response

    wrapper.kept_page = True
    return wrapper
