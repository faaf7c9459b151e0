"""Pairing pages: the donor's pairings and their timeline, the village's
pairings (answer, invite, post updates), and the public statistics.

Thin like the other views: look the pairing up through an access helper
(404 outside the user's own pairings or villages), validate a form, call
one service naming the side that acts, say what happened, redirect.
"""

import base64
import datetime
import json

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db.models import Count, Q
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from households.models import Area, Household
from sun_commune import pagecache
from sun_commune.access import donor_required, secretary_required
from sun_commune.forms import act_on_button, act_on_form
from sun_commune.limits import accepts_files
from sun_commune.pagination import Page, keyset_page

from . import access
from .forms import PairingInviteForm, PairingReasonForm, PairingTermsForm, PairingUpdateForm
from .models import Pairing, PairingUpdate
from .services import pairings as pairing_services

PAGE_SIZE = 20
TIMELINE_SIZE = 30


# --- The timeline -----------------------------------------------------------------
#
# Updates and installments (each with its pledge) merged newest first, paged
# by the key (created_at, rank, id): each source is asked only for rows after
# the cursor, from its (pairing, -created_at, -id) index, so a pairing of
# twenty years costs what a new one does.

UPDATE, INSTALLMENT = 1, 0


def _encode_cursor(key) -> str:
    at, rank, pk = key
    raw = json.dumps([at.isoformat(), rank, pk]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None):
    if not cursor:
        return None
    try:
        at, rank, pk = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.datetime.fromisoformat(at), int(rank), int(pk)
    except (ValueError, TypeError):
        return None


def _after(queryset, key, rank: int):
    """Rows of ``queryset`` that come after ``key`` in the newest-first order."""
    if key is None:
        return queryset
    at, key_rank, pk = key
    condition = Q(created_at__lt=at)
    if rank < key_rank:
        condition |= Q(created_at=at)
    elif rank == key_rank:
        condition |= Q(created_at=at, pk__lt=pk)
    return queryset.filter(condition)


def timeline(pairing: Pairing, cursor: str | None) -> Page:
    key = _decode_cursor(cursor)
    updates = _after(pairing.updates.select_related("created_by"), key, UPDATE).order_by("-created_at", "-id")
    installments = (
        _after(pairing.installments.filter(pledge__isnull=False), key, INSTALLMENT)
        .select_related("need", "pledge")
        .order_by("-created_at", "-id")
    )
    events = [
        {"key": (u.created_at, UPDATE, u.pk), "kind": "update", "update": u} for u in updates[: TIMELINE_SIZE + 1]
    ] + [
        {
            "key": (i.created_at, INSTALLMENT, i.pk),
            "kind": "pledge",
            "installment": i,
            "pledge": i.pledge,
            "need": i.need,
        }
        for i in installments[: TIMELINE_SIZE + 1]
    ]
    events.sort(key=lambda event: event["key"], reverse=True)
    more = len(events) > TIMELINE_SIZE
    events = events[:TIMELINE_SIZE]
    return Page(
        rows=events,
        next_cursor=_encode_cursor(events[-1]["key"]) if more and events else None,
        is_first=key is None,
    )


def _detail_context(request, pairing: Pairing, *, side: str) -> dict:
    return {
        "pairing": pairing,
        "page": timeline(pairing, request.GET.get("after")),
        "side": side,
        "show_photos": side == pairing_services.VILLAGE_SIDE or pairing.photos_visible_to_donor(),
        "reason_form": PairingReasonForm(),
    }


# --- Donors -----------------------------------------------------------------------


@donor_required
def my_pairings(request):
    pairings = Pairing.objects.filter(donor__user=request.user).select_related("village", "household")
    page = keyset_page(
        pairings, order=("created_at", "id"), descending=True, cursor=request.GET.get("after"), size=PAGE_SIZE
    )
    return render(request, "donations/pairing_list.html", {"page": page})


def _request_target(request) -> tuple[Area, Household | None]:
    """The household (by its public id) or the village the donor asks for."""
    public_id = request.GET.get("household", "")
    if public_id:
        household = get_object_or_404(Household.objects.select_related("village"), public_id=public_id)
        return household.village, household
    village_id = request.GET.get("village", "")
    if village_id.isdigit():
        return get_object_or_404(Area, pk=village_id, level=Area.Level.VILLAGE), None
    raise Http404


@donor_required
def pairing_request(request):
    village, household = _request_target(request)
    form = PairingTermsForm(request.POST or None)
    done = act_on_form(
        request,
        form,
        lambda data: pairing_services.request_pairing(
            donor=request.user.donor_profile, village=village, household=household, **form.terms()
        ),
        success=_("Your request is sent to the village's first secretary."),
        next_url=lambda pairing: reverse("donations:pairing-detail", args=[pairing.pk]),
    )
    return done or render(
        request,
        "donations/pairing_form.html",
        {"form": form, "village": village, "household": household, "inviting": False},
    )


@donor_required
def pairing_detail(request, pk):
    pairing = access.get_pairing_for_donor(request.user, pk)
    return render(
        request, "donations/pairing_detail.html", _detail_context(request, pairing, side=pairing_services.DONOR_SIDE)
    )


def _reason(request) -> str:
    form = PairingReasonForm(request.POST)
    return form.cleaned_data["reason"] if form.is_valid() else ""


# Each side reaches its pairings through its own role, access helper and page.
_SIDES = {
    pairing_services.DONOR_SIDE: (donor_required, access.get_pairing_for_donor, "donations:pairing-detail"),
    pairing_services.VILLAGE_SIDE: (
        secretary_required,
        access.get_pairing_for_secretary,
        "donations:village-pairing-detail",
    ),
}


def _answer_view(action, *, side: str, success, with_reason: bool = True):
    """A POST-only view by which ``side`` accepts, declines or ends a pairing:
    404 outside the user's own pairings or villages, a refusal shown as an
    error message, then back to the pairing's page. ``success`` is lazy,
    translated when the message is shown."""
    role_required, get_pairing, detail = _SIDES[side]

    @role_required
    @require_POST
    def view(request, pk):
        pairing = get_pairing(request.user, pk)
        extra = {"reason": _reason(request)} if with_reason else {}
        act_on_button(
            request, lambda: action(pairing_id=pairing.pk, by=request.user, side=side, **extra), success=success
        )
        return redirect(detail, pairing.pk)

    return view


pairing_accept = _answer_view(
    pairing_services.accept_pairing,
    side=pairing_services.DONOR_SIDE,
    success=gettext_lazy("You accepted the invitation. Thank you!"),
    with_reason=False,
)
pairing_decline = _answer_view(
    pairing_services.decline_pairing,
    side=pairing_services.DONOR_SIDE,
    success=gettext_lazy("You declined the invitation."),
)
pairing_end = _answer_view(
    pairing_services.end_pairing, side=pairing_services.DONOR_SIDE, success=gettext_lazy("The pairing is ended.")
)


# --- The village's first secretary -----------------------------------------------


@secretary_required
def village_pairings(request):
    pairings = access.pairings_for_secretary(request.user).select_related("village", "household", "donor")
    waiting = pairings.filter(status=Pairing.Status.REQUESTED).order_by("created_at", "id")[:50]
    page = keyset_page(
        pairings, order=("created_at", "id"), descending=True, cursor=request.GET.get("after"), size=PAGE_SIZE
    )
    return render(request, "donations/pairing_village.html", {"waiting": waiting, "page": page})


def _village_for(request) -> Area:
    villages = request.user.secretary_villages
    chosen = request.GET.get("village", "")
    for village in villages:
        if str(village.pk) == chosen:
            return village
    if chosen:
        raise Http404
    return villages[0]


@secretary_required
def pairing_invite(request):
    village = _village_for(request)
    form = PairingInviteForm(request.POST or None, village=village)
    done = act_on_form(
        request,
        form,
        lambda data: pairing_services.invite_donor(
            by=request.user, donor_login=data["donor"], village=village, household=data["household"], **form.terms()
        ),
        # The same words and the same page whether or not such a donor exists.
        success=_("If a donor is registered with this username or e-mail, the invitation is on its way to them."),
        next_url="donations:village-pairings",
    )
    return done or render(
        request, "donations/pairing_form.html", {"form": form, "village": village, "household": None, "inviting": True}
    )


@secretary_required
def village_pairing_detail(request, pk):
    pairing = access.get_pairing_for_secretary(request.user, pk)
    return render(
        request, "donations/pairing_detail.html", _detail_context(request, pairing, side=pairing_services.VILLAGE_SIDE)
    )


village_pairing_accept = _answer_view(
    pairing_services.accept_pairing,
    side=pairing_services.VILLAGE_SIDE,
    success=gettext_lazy("The pairing is active. Its pledges are made at the start of each period."),
    with_reason=False,
)
village_pairing_decline = _answer_view(
    pairing_services.decline_pairing,
    side=pairing_services.VILLAGE_SIDE,
    success=gettext_lazy("The request is declined; the donor is told."),
)
village_pairing_end = _answer_view(
    pairing_services.end_pairing, side=pairing_services.VILLAGE_SIDE, success=gettext_lazy("The pairing is ended.")
)


@accepts_files()
@secretary_required
def pairing_update_create(request, pk):
    pairing = access.get_pairing_for_secretary(request.user, pk)
    form = PairingUpdateForm(request.POST or None, request.FILES or None)
    done = act_on_form(
        request,
        form,
        lambda data: pairing_services.post_pairing_update(
            pairing_id=pairing.pk, by=request.user, text=data["text"], photo=data["photo"]
        ),
        success=_("The update is posted; the donor sees it on their timeline."),
        next_url=reverse("donations:village-pairing-detail", args=[pairing.pk]),
    )
    return done or render(request, "donations/pairing_update_form.html", {"form": form, "pairing": pairing})


# --- Shared ------------------------------------------------------------------------


@login_required
def pairing_update_photo(request, pk):
    """An update's photo: for the village's secretary and staff over the
    village always; for the donor only while the household consents to
    photos (read now, so a withdrawal hides it at once); never public."""
    user = request.user
    update = get_object_or_404(
        PairingUpdate.objects.select_related("pairing__household", "pairing__village", "pairing__donor"), pk=pk
    )
    pairing = update.pairing
    keeper = pairing.village_id in {v.pk for v in user.secretary_villages} or any(
        area.contains(pairing.village) for area in user.staff_areas
    )
    donor = pairing.donor.user_id == user.pk and pairing.photos_visible_to_donor()
    if not update.photo or not (keeper or donor):
        raise Http404
    response = FileResponse(update.photo.open("rb"), content_type="image/jpeg")
    response["Cache-Control"] = "private, no-store"
    return response


# --- Public statistics --------------------------------------------------------------


def pairing_statistics(request=None) -> list[dict]:
    """Active pairings per township (households, whole villages, pairings),
    one GROUP BY on the denormalised county and township columns, kept by
    the one rule (pagecache.py): under the page version, so the figures and
    the areas they name always come from the same data."""
    key = pagecache.key("pairing-statistics", (), request)
    rows = cache.get(key)
    if rows is None:
        rows = list(
            Pairing.objects.active()
            .values("county_id", "township_id")
            .annotate(
                households=Count("household", distinct=True),
                villages=Count("village", distinct=True, filter=Q(household__isnull=True)),
                pairings=Count("pk"),
            )
            .order_by("county_id", "township_id")
        )
        cache.set(key, rows, settings.PAGE_CACHE_SECONDS)
    return rows


@pagecache.public_page
def pairing_stats(request):
    rows = pairing_statistics(request)
    names = Area.objects.in_bulk({r["county_id"] for r in rows} | {r["township_id"] for r in rows})
    counties: dict[int, dict] = {}
    for row in rows:
        county = counties.setdefault(
            row["county_id"],
            {"area": names[row["county_id"]], "households": 0, "villages": 0, "pairings": 0, "townships": []},
        )
        # A household or village lies in one township: the county's figures are sums.
        for figure in ("households", "villages", "pairings"):
            county[figure] += row[figure]
        county["townships"].append({**row, "area": names[row["township_id"]]})
    counties_list = sorted(counties.values(), key=lambda c: c["area"].code)
    totals = {figure: sum(c[figure] for c in counties_list) for figure in ("households", "villages", "pairings")}
    return render(request, "donations/pairing_stats.html", {"counties": counties_list, "totals": totals})
