"""Prepared statements for the hottest queries of logged-in pages.

PostgreSQL plans a query each time it is sent: for the short indexed
queries of a list page, planning costs more than running (a county's
household list takes several times longer to plan than to run). psycopg2
sends every query as text, so Django cannot reuse a plan. Inside ``with prepared():`` each SELECT
is sent once per connection as ``PREPARE`` (under a name made from its
text) and from then on as ``EXECUTE name(params)``; PostgreSQL plans it for
the first executions and then keeps a generic plan if that is as good.
Everything else — Django's conversions, model rows, select_related — stays
as it was: only the text on the wire changes.

``DB_PREPARE=0`` turns it off (a pooler in transaction mode cannot keep
prepared statements). A query PostgreSQL cannot prepare (a parameter whose
type it cannot infer) is sent as it is, from then on.
"""

import hashlib
import re
import weakref
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connections

MAX_PER_CONNECTION = 200
_PLACEHOLDER = re.compile(r"(?<!%)%s")
_state: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # raw connection -> {name: prepared?}


@contextmanager
def prepared(using: str = "default"):
    connection = connections[using]
    if not settings.DB_PREPARE or connection.in_atomic_block:
        # In a transaction a failed PREPARE would abort it: plain queries.
        yield
        return
    with connection.execute_wrapper(_wrapper):
        yield


def _wrapper(execute, sql, params, many, context):
    if many or not sql.lstrip().upper().startswith("SELECT"):
        return execute(sql, params, many, context)
    connection = context["connection"]
    if connection.in_atomic_block:
        return execute(sql, params, many, context)
    names = _state.setdefault(connection.connection, {})
    name = "sun_" + hashlib.blake2b(sql.encode(), digest_size=10).hexdigest()
    ready = names.get(name)
    if ready is None:
        if len(names) >= MAX_PER_CONNECTION:
            return execute(sql, params, many, context)
        count = 0

        def number(_match):
            nonlocal count
            count += 1
            return f"${count}"

        text = _PLACEHOLDER.sub(number, sql).replace("%%", "%")
        try:
            execute(f"PREPARE {name} AS {text}", None, False, context)
            ready = True
        except DatabaseError:
            ready = False
        names[name] = ready
    if not ready:
        return execute(sql, params, many, context)
    arguments = ", ".join(["%s"] * len(params or ()))
    return execute(f"EXECUTE {name}" + (f" ({arguments})" if arguments else ""), params, many, context)
