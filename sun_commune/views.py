"""The health check."""

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache


@never_cache
def healthz(request):
    """PostgreSQL and Redis (cache and broker), each "ok" or the kind of
    error. 200 with status "ok" when all answer; 200 with status "degraded"
    when only Redis does not — the site still serves every page from
    PostgreSQL and keeps its tasks in the outbox, so a load balancer must
    keep sending traffic; 503 with status "error" when PostgreSQL does not
    answer, which no page can do without. "outbox" counts the tasks waiting
    to be run."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM sun_commune_outboxtask WHERE done_at IS NULL")
            waiting = cursor.fetchone()[0]
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report any failure
        checks["database"] = f"error: {exc.__class__.__name__}"
        waiting = None
    for name, url in (("redis", settings.REDIS_URL), ("broker", settings.CELERY_BROKER_URL)):
        try:
            client = redis.Redis.from_url(
                url,
                socket_connect_timeout=settings.REDIS_TIMEOUT_SECONDS,
                socket_timeout=settings.REDIS_TIMEOUT_SECONDS,
            )
            client.ping()
            client.close()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks[name] = f"error: {exc.__class__.__name__}"
    if checks["database"] != "ok":
        status, code = "error", 503
    elif all(value == "ok" for value in checks.values()):
        status, code = "ok", 200
    else:
        status, code = "degraded", 200
    return JsonResponse({"status": status, **checks, "outbox": waiting}, status=code)
