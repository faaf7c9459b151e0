"""The supermarket, pledges, and the village's and bureau's work on needs.

Every view is thin: look the object up through an access helper (404 for
anything outside the user's areas), validate a form, call one service,
say what happened, redirect.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.functional import SimpleLazyObject
from django.utils.http import urlsafe_base64_decode
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from sun_commune import audit, pagecache, search
from sun_commune.access import donor_required, secretary_required, staff_required
from sun_commune.errors import ActionRefused
from sun_commune.forms import act_on_button, act_on_form
from sun_commune.limits import accepts_files
from sun_commune.pagecache import public_page
from sun_commune.pagination import keyset_page, keyset_window

from . import access, ledger_views, publication
from .cards import for_cards, private_household_fields
from .forms import (
    ConfirmReceiptForm,
    DonorProfileForm,
    DonorRegistrationForm,
    MoneyReceivedForm,
    NeedForm,
    PledgeForm,
    RejectForm,
    SupermarketFilterForm,
    ThanksForm,
)
from .models import Need, Pledge, PublishedEntry
from .services import donors
from .services import needs as need_services
from .services import pledges as pledge_services

SORTS = {
    "newest": (("published_at", "id"), True),
    "deadline": (("deadline", "id"), False),
    "closest": (("progress", "id"), True),
}
SHOW = {
    "open": (Need.Status.PUBLISHED,),
    "fully_pledged": (Need.Status.FULLY_PLEDGED,),
    "fulfilled": (Need.Status.FULFILLED, Need.Status.CLOSED),
}
PAGE_SIZE = 20
SEARCH_WINDOW = 2000  # a bounded walk of the list's index (see _search_page)


# --- The public supermarket -------------------------------------------------


def _search_page(needs, condition, *, order, descending, cursor):
    """A page of the needs matching a search of several terms.

    PostgreSQL cannot estimate a search of several character pairs (it takes
    the pairs of 电视机 for independent, and a substring check for rare), so
    for a common word it would fetch and sort every match, most of a
    province's open needs. The page is looked for first among the
    next SEARCH_WINDOW needs of the list, a bounded walk of the list's index;
    only a word too rare to fill a page there is looked up in the whole search
    index, where it is rare. Either way the page is exactly the first matches
    in the list's order."""
    kwargs = {"order": order, "descending": descending, "cursor": cursor, "size": PAGE_SIZE}
    window = keyset_window(needs, order=order, descending=descending, cursor=cursor, size=SEARCH_WINDOW)
    # Within the window the terms are checked row by row (through an
    # expression no index serves), so that the window drives the query.
    page = keyset_page(needs.filter(search.unindexed(condition), pk__in=window), **kwargs)
    if page.next_cursor is None:  # fewer than a page of matches in the window
        page = keyset_page(needs.filter(condition), **kwargs)
    return page


@public_page
def supermarket(request):
    form = SupermarketFilterForm(request.GET or None)
    valid = form.is_bound and form.is_valid()

    def listing():
        """The page of needs, read only when the part that shows it is
        rendered: the same for everyone, it is kept ({% kept %}) for a
        logged-in donor too."""
        needs = for_cards(Need.objects.all())
        sort, show = "newest", "open"
        condition = words = None
        if valid:
            data = form.cleaned_data
            sort = data["sort"] or sort
            show = data["show"] or show
            area = data["village"] or data["township"] or data["county"]
            if area:
                needs = needs.within(area)
            if data["category"]:
                needs = needs.filter(category=data["category"])
            if data["kind"]:
                needs = needs.filter(kind=data["kind"])
            if data["q"]:
                words = data["q"]
                condition = search.search_filter(words)
        needs = needs.filter(status__in=SHOW[show])
        order, descending = SORTS[sort]
        cursor = request.GET.get("after")
        if condition is not None and not search.is_one_term(words):
            page = _search_page(needs, condition, order=order, descending=descending, cursor=cursor)
        else:
            needs = needs if condition is None else needs.filter(condition)
            page = keyset_page(needs, order=order, descending=descending, cursor=cursor, size=PAGE_SIZE)
        return page

    return render(
        request,
        "donations/supermarket.html",
        {"form": form, "filter_query": ledger_views.filter_query(request), "page": SimpleLazyObject(listing)},
    )


@public_page
def need_detail(request, pk):
    need = get_object_or_404(
        Need.objects.public()
        .select_related("village", "township", "county", "household")
        .defer("search_terms", *private_household_fields("household")),
        pk=pk,
    )
    form = None
    if need.is_open_for_pledges and request.user.is_authenticated and request.user.donor_profile:
        form = PledgeForm(need=need)
    return render(request, "donations/need_detail.html", _need_page(need, form))


def _need_page(need: Need, form) -> dict:
    """A need page's context. Its pledges and ledger entries are read only
    if the part that shows them is rendered: they are the same for everyone,
    so the page keeps that part ({% kept %}), for a logged-in donor too."""
    pledges = (
        need.pledges.exclude(status__in=(Pledge.Status.CANCELLED, Pledge.Status.EXPIRED))
        .select_related("donor")
        .order_by("-created_at")[:50]
    )
    return {
        "need": need,
        "pledges": pledges,
        "form": form,
        "ledger": SimpleLazyObject(lambda: ledger_views.need_ledger(need)),
    }


@donor_required
@require_POST
def pledge_create(request, pk):
    need = get_object_or_404(Need.objects.public().select_related("village"), pk=pk)
    form = PledgeForm(request.POST, need=need)
    done = act_on_form(
        request,
        form,
        lambda data: pledge_services.make_pledge(
            need_id=need.pk,
            need=need,  # read just now: not read again
            donor=request.user.donor_profile,
            quantity=data.get("quantity"),
            amount=data.get("amount"),
            message=data["message"],
        ),
        success=_("Thank you! Your pledge is recorded; follow it under “My pledges”."),
        next_url="donations:my-pledges",
    )
    if done:
        return done
    need.refresh_from_db()
    return render(request, "donations/need_detail.html", _need_page(need, form), status=400)


# --- Donors -----------------------------------------------------------------


def donor_register(request):
    """Register as a donor: a new account, or a donor profile for the account
    already logged in (one person may hold several roles)."""
    user = request.user
    if user.is_authenticated and user.donor_profile:
        return redirect("donations:my-pledges")
    if user.is_authenticated:
        form = DonorProfileForm(request.POST or None)
        done = act_on_form(
            request,
            form,
            lambda data: donors.register_donor(user=user, **data),
            success=_("Welcome! You can now pledge to any open need."),
            next_url="donations:supermarket",
        )
        return done or render(request, "donations/donor_register.html", {"form": form})
    form = DonorRegistrationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        donors.register_account(
            username=data["username"],
            email=data["email"],
            password=data["password1"],
            language=get_language() or settings.LANGUAGE_CODE,
            kind=data["kind"],
            name=data["name"],
            show_name=data["show_name"],
            phone=data["phone"],
            client_ip=audit.client_ip(request),
        )
        return render(request, "donations/donor_register_sent.html", {"email": data["email"]})
    return render(request, "donations/donor_register.html", {"form": form})


def donor_register_confirm(request, uidb64, token):
    """The link of a registration mail: a button that activates the account
    (a GET changes nothing: mail scanners follow links) and logs in."""
    try:
        user_id = int(urlsafe_base64_decode(uidb64).decode())
    except (ValueError, UnicodeDecodeError):
        user_id = None
    if user_id is not None and not 0 < user_id < 2**63:
        user_id = None  # no such id: PostgreSQL would refuse to compare it with a bigint
    if request.method == "POST":
        user = donors.activate_account(user_id=user_id, token=token) if user_id is not None else None
        if user is not None:
            # The last backend loads users; the first (axes) only refuses locked-out logins.
            login(request, user, backend=settings.AUTHENTICATION_BACKENDS[-1])
            messages.success(request, _("Welcome! You can now pledge to any open need."))
            return redirect("donations:supermarket")
        messages.error(request, _("This link is wrong, already used or too old. Register again."))
        return redirect("donations:donor-register")
    return render(request, "donations/donor_register_confirm.html")


@donor_required
def my_pledges(request):
    donor = request.user.donor_profile

    def render_list():
        # By the donor's id (loaded with the user), not through a join on the
        # user: the index (donor, -created_at, -id) gives the page in order,
        # whatever the number of the donor's pledges.
        page = keyset_page(
            Pledge.objects.filter(donor=donor)
            .select_related("need__village", "need__household")
            .defer("need__description", "need__search_terms", *private_household_fields("need__household")),
            order=("created_at", "id"),
            descending=True,
            cursor=request.GET.get("after"),
            size=PAGE_SIZE,
        )
        context = {"page": page, "pledges": page.rows, "csrf_token": pagecache.CSRF_SLOT}
        return render_to_string("donations/my_pledges_body.html", context, request=request)

    body = pagecache.keep(
        "my-pledges", (donor.pk, request.GET.get("after")), render_list, request=request, private=True
    )
    return render(request, "donations/my_pledges.html", {"body": body})


@donor_required
def pledge_detail(request, pk):
    """One pledge, followed to the end: its state, what arrived, and the
    ledger entry of the gift with its inclusion proof against the latest
    signed checkpoint, checkable on the page and with the verifier."""
    pledge = access.get_pledge_for_donor(request.user, pk)
    entries = list(PublishedEntry.objects.filter(transaction__pledge=pledge).order_by("index")[:5])
    items = [
        {"row": row, "proof": publication.inclusion_proof(row["entry"]), "dom_id": f"proof-{row['entry'].index}"}
        for row in ledger_views.decorate(entries)
    ]
    pending = pledge.ledger_transactions.filter(published__isnull=True).exists()
    return render(
        request,
        "donations/pledge_detail.html",
        {"pledge": pledge, "items": items, "pending": pending, "site_key": publication.public_key_hex()},
    )


@donor_required
@require_POST
def pledge_cancel(request, pk):
    pledge = access.get_pledge_for_donor(request.user, pk)
    act_on_button(
        request,
        lambda: pledge_services.cancel_pledge(pledge_id=pledge.pk, by=request.user),
        success=_("Your pledge is cancelled; it is available to other donors again."),
    )
    return redirect("donations:my-pledges")


@donor_required
@require_POST
def pledge_sent(request, pk):
    pledge = access.get_pledge_for_donor(request.user, pk)
    act_on_button(
        request,
        lambda: pledge_services.mark_sent(pledge_id=pledge.pk, by=request.user),
        success=_("Marked as sent. The village will confirm when it arrives."),
    )
    return redirect("donations:my-pledges")


@login_required
def pledge_photo(request, pk):
    """The photo of a gift that arrived: for its donor, the village's
    secretary and staff over the village; never public (it may show a home)."""
    user = request.user
    pledge = get_object_or_404(Pledge.objects.select_related("need__household", "donor"), pk=pk)
    household = pledge.need.household
    # The donor sees it only while the household consents to photos (a
    # village need has no household to ask); withdrawal hides it at once.
    donor_may = pledge.donor.user_id == user.pk and (household is None or household.photo_consent)
    allowed = (
        donor_may
        or access.needs_for_secretary(user).filter(pk=pledge.need_id).exists()
        or access.needs_for_staff(user).filter(pk=pledge.need_id).exists()
    )
    if not allowed or not pledge.photo:
        raise Http404
    response = FileResponse(pledge.photo.open("rb"), content_type="image/jpeg")
    response["Cache-Control"] = "private, no-store"
    return response


# --- The village's first secretary -------------------------------------------


@secretary_required
def village_needs(request):
    needs = access.needs_for_secretary(request.user).select_related("village", "household")
    page = keyset_page(
        needs, order=("created_at", "id"), descending=True, cursor=request.GET.get("after"), size=PAGE_SIZE
    )
    arriving = (
        Pledge.objects.open()
        .filter(need__village__in=request.user.secretary_villages)
        .exclude(need__kind=Need.Kind.MONEY)
        .select_related("need", "donor")
        .order_by("created_at")[:50]
    )
    to_thank = (
        Pledge.objects.filter(
            need__village__in=request.user.secretary_villages, status__in=(Pledge.Status.RECEIVED, Pledge.Status.DONE)
        )
        .select_related("need", "donor")
        .order_by("-received_at")[:50]
    )
    return render(request, "donations/village_needs.html", {"page": page, "arriving": arriving, "to_thank": to_thank})


def _village_for(request):
    villages = request.user.secretary_villages
    chosen = request.GET.get("village") or request.POST.get("village_id")
    for village in villages:
        if str(village.pk) == chosen:
            return village
    if chosen:
        raise Http404
    return villages[0]


@secretary_required
def need_create(request):
    village = _village_for(request)
    form = NeedForm(request.POST or None, village=village)
    if request.method == "POST" and form.is_valid():
        try:
            need = need_services.create_need(
                by=request.user, village=village, submit="submit" in request.POST, **form.cleaned_data
            )
        except ActionRefused as refusal:
            refusal.add_to(form)
        else:
            if need.status == Need.Status.SUBMITTED:
                messages.success(request, _("The need is sent to the bureau for review."))
            else:
                messages.success(request, _("Saved as a draft."))
            return redirect("donations:village-needs")
    return render(request, "donations/need_form.html", {"form": form, "village": village, "need": None})


@secretary_required
def need_edit(request, pk):
    need = access.get_need_for_secretary(request.user, pk)
    if need.status not in Need.EDITABLE_STATUSES:
        messages.error(request, _("Only a draft or a rejected need can be changed."))
        return redirect("donations:village-needs")
    form = NeedForm(request.POST or None, instance=need, village=need.village)
    done = act_on_form(
        request,
        form,
        lambda data: need_services.update_need(
            need_id=need.pk, by=request.user, submit="submit" in request.POST, **data
        ),
        success=_("The need is saved."),
        next_url="donations:village-needs",
    )
    return done or render(request, "donations/need_form.html", {"form": form, "village": need.village, "need": need})


@secretary_required
@require_POST
def need_close(request, pk):
    need = access.get_need_for_secretary(request.user, pk)
    act_on_button(
        request, lambda: need_services.close_need(need_id=need.pk, by=request.user), success=_("The need is closed.")
    )
    return redirect("donations:village-needs")


@accepts_files()
@secretary_required
def pledge_confirm(request, pk):
    pledge = access.get_pledge_for_secretary(request.user, pk)
    form = ConfirmReceiptForm(request.POST or None, request.FILES or None, initial={"quantity": pledge.quantity})
    done = act_on_form(
        request,
        form,
        lambda data: pledge_services.confirm_receipt(
            pledge_id=pledge.pk,
            by=request.user,
            quantity=data["quantity"],
            photo=data["photo"],
            note=data["note"],
        ),
        success=_("Arrival confirmed. The donor will be told."),
        next_url="donations:village-needs",
    )
    return done or render(request, "donations/pledge_confirm.html", {"form": form, "pledge": pledge})


@secretary_required
def pledge_thank(request, pk):
    pledge = access.get_pledge_for_secretary(request.user, pk)
    form = ThanksForm(request.POST or None, initial={"message": pledge.thanks})
    done = act_on_form(
        request,
        form,
        lambda data: pledge_services.thank_donor(pledge_id=pledge.pk, by=request.user, message=data["message"]),
        success=_("Your thanks are posted; the donor sees them."),
        next_url="donations:village-needs",
    )
    return done or render(request, "donations/pledge_thank.html", {"form": form, "pledge": pledge})


# --- Bureau staff -----------------------------------------------------------


@staff_required
def review_list(request):
    needs = (
        access.needs_for_staff(request.user)
        .filter(status=Need.Status.SUBMITTED)
        .select_related("village", "township", "county", "household")
    )
    page = keyset_page(
        needs, order=("submitted_at", "id"), descending=False, cursor=request.GET.get("after"), size=PAGE_SIZE
    )
    return render(request, "donations/review_list.html", {"page": page})


@staff_required
def need_review(request, pk):
    need = access.get_need_for_staff(request.user, pk)
    form = RejectForm(request.POST or None) if request.POST.get("decision") == "reject" else RejectForm()
    if request.method == "POST":
        try:
            if request.POST.get("decision") == "publish":
                need_services.publish_need(need_id=need.pk, by=request.user)
                messages.success(request, _("Published: the need is now in the supermarket."))
                return redirect("donations:review-list")
            if form.is_valid():
                need_services.reject_need(need_id=need.pk, by=request.user, reason=form.cleaned_data["reason"])
                messages.success(request, _("Rejected; the village sees your reason."))
                return redirect("donations:review-list")
        except ActionRefused as refusal:
            refusal.add_to(form)
    return render(request, "donations/need_review.html", {"need": need, "form": form})


@staff_required
def money_list(request):
    pledges = (
        Pledge.objects.open()
        .filter(need__in=access.needs_for_staff(request.user), need__kind=Need.Kind.MONEY)
        .select_related("need__village", "donor")
    )
    page = keyset_page(
        pledges, order=("created_at", "id"), descending=False, cursor=request.GET.get("after"), size=PAGE_SIZE
    )
    return render(request, "donations/money_list.html", {"page": page})


@staff_required
def money_record(request, pk):
    pledge = access.get_pledge_for_staff(request.user, pk)
    form = MoneyReceivedForm(request.POST or None, initial={"amount": pledge.amount})
    done = act_on_form(
        request,
        form,
        lambda data: pledge_services.record_money_received(
            pledge_id=pledge.pk,
            by=request.user,
            amount=data["amount"],
            reference=data["reference"],
        ),
        success=_("The transfer is recorded."),
        next_url="donations:money-list",
    )
    return done or render(request, "donations/money_record.html", {"form": form, "pledge": pledge})
