"""The public home page, statistics, and the health check."""

from decimal import Decimal

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from donations.models import Need, Pledge
from households.models import Area, Household

STATS_KEY = "stats:home:v1"
STATS_SECONDS = 60


def site_statistics() -> dict:
    """Totals for the public; computed at most once a minute (cached in Redis),
    never per request."""
    stats = cache.get(STATS_KEY)
    if stats is not None:
        return stats
    needs = Need.objects.aggregate(
        published=Count("pk", filter=Q(status__in=Need.PUBLIC_STATUSES)),
        fulfilled=Count("pk", filter=Q(status__in=(Need.Status.FULFILLED, Need.Status.CLOSED))),
        villages=Count("village", distinct=True, filter=Q(status__in=Need.PUBLIC_STATUSES)),
    )
    arrived = Pledge.objects.filter(
        status__in=(Pledge.Status.RECEIVED, Pledge.Status.DONE, Pledge.Status.THANKED)
    ).aggregate(
        count=Count("pk"),
        money=Coalesce(Sum("received_amount"), Decimal("0")),
        goods=Coalesce(Sum("declared_value", filter=Q(amount__isnull=True)), Decimal("0")),
    )
    stats = {
        "households": Household.objects.count(),
        "villages": Area.objects.filter(level=Area.Level.VILLAGE, is_poor_village=True).count(),
        "needs_published": needs["published"],
        "needs_fulfilled": needs["fulfilled"],
        "villages_with_needs": needs["villages"],
        "gifts_arrived": arrived["count"],
        "money_received": arrived["money"],
        "goods_value": arrived["goods"],
        "total_value": arrived["money"] + arrived["goods"],
    }
    cache.set(STATS_KEY, stats, STATS_SECONDS)
    return stats


def home(request):
    latest = (
        Need.objects.filter(status=Need.Status.PUBLISHED)
        .select_related("village", "township", "county", "household")
        .order_by("-published_at", "-id")[:6]
    )
    fulfilled = (
        Need.objects.filter(status=Need.Status.FULFILLED)
        .select_related("village", "household")
        .order_by("-fulfilled_at", "-id")[:3]
    )
    return render(
        request, "home.html", {"stats": site_statistics(), "latest": latest, "fulfilled": fulfilled}
    )


@never_cache
def healthz(request):
    """200 only when PostgreSQL and Redis both answer; 503 naming what failed."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report any failure
        checks["database"] = f"error: {exc.__class__.__name__}"
    for name, url in (("redis", settings.REDIS_URL), ("broker", settings.CELERY_BROKER_URL)):
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
            client.ping()
            client.close()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks[name] = f"error: {exc.__class__.__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", **checks}, status=200 if healthy else 503)
