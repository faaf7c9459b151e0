"""The pages that bring the apps together: the public home page and its
statistics, a village's public page, and the benchmark's reference page."""

from decimal import Decimal

from django.core.cache import cache
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from donations.cards import for_cards
from donations.models import AreaLedgerTotal, Need, Pairing, Pledge
from households import access
from households.models import Area, Household, VillageProfile
from sun_commune.models import RoleGrant
from sun_commune.pagecache import public_page

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


@require_GET
@public_page
def village_public(request, code):
    """A village's public page: its profile, its open and fulfilled needs, and
    the money raised and spent for it (from the published ledger). Nothing
    private: households appear only under their public labels."""
    village = get_object_or_404(Area.objects.villages().select_related("parent__parent"), code=code)
    profile = VillageProfile.objects.filter(village=village).first()
    needs = Need.objects.public().filter(village=village).select_related("village", "township", "county", "household")
    open_needs = list(needs.filter(status=Need.Status.PUBLISHED).order_by("-published_at", "-id")[:12])
    fulfilled = list(
        needs.filter(status__in=(Need.Status.FULFILLED, Need.Status.CLOSED)).order_by("-fulfilled_at", "-id")[:12]
    )
    secretaries = [
        g.user.get_full_name()
        for g in RoleGrant.objects.filter(area=village, role=RoleGrant.Role.SECRETARY, active=True).select_related(
            "user"
        )
        if g.user.get_full_name()
    ]
    township = village.parent
    county = township.parent if township else None
    return render(
        request,
        "households/village_public.html",
        {
            "village": village,
            "township": township,
            "county": county,
            "profile": profile,
            "open_needs": open_needs,
            "fulfilled": fulfilled,
            "ledger": AreaLedgerTotal.objects.filter(area=village).first(),
            "secretaries": secretaries,
            "households": village.households.count(),
            "can_edit": request.user.is_authenticated
            and any(area.contains(village) for area in access.keeper_areas(request.user)),
        },
    )


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
