"""The public home page, statistics, the health check, and the benchmark's reference page."""

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

from donations.cards import for_cards
from donations.models import Need, Pairing, Pledge
from households.models import Area, Household

from .pagecache import public_page

STATS_KEY = "stats:home:v2"
STATS_FRESH_KEY = STATS_KEY + ":fresh"  # present while the figures are less than a minute old
STATS_SECONDS = 60


def site_statistics() -> dict:
    """Totals for the public; computed at most once a minute (cached in Redis),
    never per request. When the minute is up, the first request to claim the
    refresh computes them again (a second at a province's size) while every
    other request still shows the figures of the minute before, instead of
    all of them computing at once."""
    found = cache.get_many([STATS_KEY, STATS_FRESH_KEY])
    stats = found.get(STATS_KEY)
    if stats is not None and (STATS_FRESH_KEY in found or not cache.add(STATS_FRESH_KEY, 1, STATS_SECONDS)):
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
        "paired_households": Pairing.objects.active().aggregate(n=Count("household", distinct=True))["n"],
    }
    cache.set(STATS_KEY, stats, STATS_SECONDS * 10)
    cache.set(STATS_FRESH_KEY, 1, STATS_SECONDS)
    return stats


@public_page
def home(request):
    latest = for_cards(Need.objects.filter(status=Need.Status.PUBLISHED)).order_by("-published_at", "-id")[:6]
    fulfilled = (
        Need.objects.filter(status=Need.Status.FULFILLED)
        .select_related("village", "household")
        .order_by("-fulfilled_at", "-id")[:3]
    )
    return render(request, "home.html", {"stats": site_statistics(), "latest": latest, "fulfilled": fulfilled})


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


def bench_reference(request):
    """The floor of `make bench`: what Django, PostgreSQL and gunicorn cost
    here for the simplest real page (the same middleware as every page, one
    indexed query, a 20-row table from a minimal template). Every page's
    throughput is reported as a ratio to this one. Public and harmless: it
    shows the 20 newest open needs, which the supermarket shows too."""
    rows = (
        Need.objects.filter(status=Need.Status.PUBLISHED)
        .order_by("-published_at", "-id")
        .values_list("pk", "title", "deadline")[:20]
    )
    return render(request, "bench_reference.html", {"rows": rows})
