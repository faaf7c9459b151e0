"""The household register as the village and the bureau keep it, its imports
and reports, and the editing of a village's public profile (the page itself
shows needs and the ledger too, so it is portal.views.village_public)."""

import tempfile

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Sum
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from sun_commune import audit, pagecache
from sun_commune.access import staff_required
from sun_commune.forms import act_on_form
from sun_commune.limits import accepts_files
from sun_commune.pagination import keyset_page
from sun_commune.prepared import prepared

from . import access, history, importing, reports, services, tasks
from .forms import (
    ConsentForm,
    HouseholdFilterForm,
    HouseholdForm,
    ImportForm,
    IncomeForm,
    MemberForm,
    ReportForm,
    VillageProfileForm,
)
from .models import Area, ConsentRecord, Household, HouseholdMember, ImportJob, IncomeRecord, VillageProfile

EXPORT_MAX = 50_000
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _keeper_required(user):
    if not access.is_keeper(user):
        raise PermissionDenied


# --- The register ----------------------------------------------------------------------


def _area_links(user, current: Area | None) -> list[Area]:
    """Areas to narrow the list to: the ones directly under the chosen area,
    or under the user's own (a short list at any scale)."""
    if current is None:
        scope = access.keeper_areas(user)
        if len(scope) != 1 or scope[0].level >= Area.Level.VILLAGE:
            return scope
        loaded = getattr(scope[0], "loaded_children", None)  # read with the user (portal.backends)
        if loaded is not None:
            return loaded
        current = scope[0]
    # Not through current.children: making the related manager cost more
    # than the query.
    return list(Area.objects.filter(parent_id=current.pk).only("code", "name", "name_en").order_by("code")[:200])


# What a row of the list shows. The private columns (ID number, phone,
# address, health), decrypted on every read, are never loaded for a list.
LIST_COLUMNS = (
    "id",
    "public_id",
    "head_name",
    "status",
    "lifted_out_year",
    "size",
    "poverty_causes",
    "village__name",
    "village__name_en",
)


@login_required
def household_list(request):
    user = request.user
    _keeper_required(user)
    areas = access.keeper_areas(user)
    # Without filters no form is made: it would only be rendered above a list
    # that is not kept, and making its fields is not free on a page this fast.
    form = HouseholdFilterForm(request.GET, areas=areas) if request.GET else None
    valid = form is not None and form.is_valid()
    # A name is found in the GIN index of names and area codes; the user's
    # areas said through the same index keep the search one index scan in
    # a plan PostgreSQL prepares once (said by the code's depth, it planned
    # the query anew each time, and planning cost more than the search).
    households = access.households_for(user, by_codes=valid and form.searches_names())
    current = None
    if valid:
        households = form.filter(households)
        current = form.cleaned_data.get("area")
    elif form is not None:
        households = households.none()
    can_export = user.is_bureau_staff
    query = request.GET.copy()
    query.pop("after", None)

    def render_list():
        with prepared():
            page = keyset_page(
                households.select_related("village").only(*LIST_COLUMNS),
                order=("id",),
                descending=True,
                cursor=request.GET.get("after"),
                size=50,
            )
            area_links = _area_links(user, current)
        context = {
            "form": form or HouseholdFilterForm(None, areas=areas),
            "page": page,
            "households": page.rows,
            "current": current,
            "area_links": area_links,
            "can_export": can_export,
            "filters": query.urlencode(),
            "csrf_token": pagecache.CSRF_SLOT,
        }
        return render_to_string("households/household_list_body.html", context, request=request)

    # Kept for each person (their areas are theirs) and query string.
    body = pagecache.keep(
        "household-list", (user.pk, sorted(request.GET.lists())), render_list, request=request, private=True
    )
    return render(request, "households/household_list.html", {"body": body})


@staff_required
@require_GET
def household_export(request):
    """The filtered list as .xlsx (the import's columns, so that it reads back
    in); at most EXPORT_MAX households; every export is in the audit log."""
    user = request.user
    form = HouseholdFilterForm(request.GET, areas=user.staff_areas)
    list_url = reverse("households:household-list") + ("?" + request.GET.urlencode() if request.GET else "")
    if not form.is_valid():
        messages.error(request, _("Correct the filters first."))
        return redirect(list_url)
    households = form.filter(Household.objects.within_any(user.staff_areas))
    ids = list(households.order_by("-id").values_list("pk", flat=True)[: EXPORT_MAX + 1])
    if len(ids) > EXPORT_MAX:
        messages.error(
            request,
            _("More than %(max)s households match: narrow the list (an area, a status, a cause) and export again.")
            % {"max": f"{EXPORT_MAX:,}"},
        )
        return redirect(list_url)

    def rows():
        for start in range(0, len(ids), 2000):
            chunk = ids[start : start + 2000]
            yield from (
                Household.objects.filter(pk__in=chunk)
                .select_related("village")
                .prefetch_related("members")
                .order_by("-id")
            )

    stream = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)
    count = importing.export_workbook(rows(), stream)
    area = form.cleaned_data.get("area") or user.staff_areas[0]
    services.record_export(by=user, area=area, filters=form.described(), rows=count)
    stream.seek(0)
    filename = f"households-{area.code}-{timezone.localdate():%Y%m%d}.xlsx"
    response = FileResponse(stream, as_attachment=True, filename=filename, content_type=XLSX)
    response["Cache-Control"] = "private, no-store"  # private data: no copy in any cache
    return response


@login_required
def household_detail(request, pk):
    _keeper_required(request.user)
    household = access.get_household_for_keeper(request.user, pk)
    return _detail(request, household)


def _detail(request, household, consent_form=None, status=200):
    needs = household.needs.order_by("-created_at")[:50]
    sources = dict(IncomeRecord.Source.choices)
    income = [
        {**row, "source_label": sources.get(row["source"], row["source"])}
        for row in household.income_records.values("year", "source")
        .annotate(total=Sum("amount"))
        .order_by("-year", "source")[:60]
    ]
    return render(
        request,
        "households/household_detail.html",
        {
            "household": household,
            "needs": needs,
            "members": household.members.order_by("id"),
            "income": income,
            "consents": household.consents.select_related("recorded_by").order_by("-recorded_at", "-id")[:100],
            "consent_state": [
                (value, label, household.consent_for(value)) for value, label in ConsentRecord.Subject.choices
            ],
            "consent_form": consent_form or ConsentForm(),
            "recent_changes": history.rows_for(household.changes.select_related("changed_by").order_by("-id")[:5]),
        },
        status=status,
    )


@login_required
def household_create(request):
    user = request.user
    if not user.is_secretary:
        raise PermissionDenied
    villages = {str(v.pk): v for v in user.secretary_villages}
    chosen = request.GET.get("village") or request.POST.get("village_id") or next(iter(villages))
    if chosen not in villages:
        raise Http404
    village = villages[chosen]
    form = HouseholdForm(request.POST or None, user=user)
    done = act_on_form(
        request,
        form,
        lambda data: services.create_household(by=user, village=village, **data),
        success=_("The household is registered."),
        next_url=lambda household: reverse("households:household-detail", kwargs={"pk": household.pk}),
    )
    return done or render(
        request, "households/household_form.html", {"form": form, "village": village, "household": None}
    )


@login_required
def household_edit(request, pk):
    _keeper_required(request.user)
    household = access.get_household_for_keeper(request.user, pk)
    form = HouseholdForm(request.POST or None, instance=household, user=request.user)
    done = act_on_form(
        request,
        form,
        lambda data: services.update_household(household_id=household.pk, by=request.user, **data),
        success=_("The household is saved."),
        next_url=reverse("households:household-detail", kwargs={"pk": household.pk}),
    )
    return done or render(
        request, "households/household_form.html", {"form": form, "village": household.village, "household": household}
    )


@login_required
def household_history(request, pk):
    _keeper_required(request.user)
    household = access.get_household_for_keeper(request.user, pk)
    page = keyset_page(
        household.changes.select_related("changed_by", "audit_entry"),
        order=("id",),
        descending=True,
        cursor=request.GET.get("after"),
        size=100,
    )
    return render(
        request,
        "households/household_history.html",
        {"household": household, "page": page, "rows": history.rows_for(page.rows)},
    )


@login_required
@require_POST
def consent_record(request, pk):
    _keeper_required(request.user)
    household = access.get_household_for_keeper(request.user, pk)
    form = ConsentForm(request.POST)
    done = act_on_form(
        request,
        form,
        lambda data: services.record_consent(by=request.user, household_id=household.pk, **data),
        success=_("The consent decision is recorded; public pages follow it at once."),
        next_url=reverse("households:household-detail", args=[household.pk]) + "#consent",
    )
    if done:
        return done
    household.refresh_from_db()
    return _detail(request, household, consent_form=form, status=400)


# --- Members and income -----------------------------------------------------------------------


@login_required
def member_create(request, pk):
    _keeper_required(request.user)
    household = access.get_household_for_keeper(request.user, pk)
    form = MemberForm(request.POST or None)
    done = act_on_form(
        request,
        form,
        lambda data: services.add_member(by=request.user, household_id=household.pk, **data),
        success=_("The member is added."),
        next_url=reverse("households:household-detail", kwargs={"pk": household.pk}),
    )
    return done or render(
        request, "households/member_form.html", {"form": form, "household": household, "member": None}
    )


def _member_for_keeper(user, pk, member_pk):
    household = access.get_household_for_keeper(user, pk)
    return household, get_object_or_404(HouseholdMember, pk=member_pk, household=household)


@login_required
def member_edit(request, pk, member_pk):
    _keeper_required(request.user)
    household, member = _member_for_keeper(request.user, pk, member_pk)
    form = MemberForm(request.POST or None, instance=member)
    done = act_on_form(
        request,
        form,
        lambda data: services.update_member(by=request.user, member_id=member.pk, **data),
        success=_("The member is saved."),
        next_url=reverse("households:household-detail", kwargs={"pk": household.pk}),
    )
    return done or render(
        request, "households/member_form.html", {"form": form, "household": household, "member": member}
    )


@login_required
@require_POST
def member_remove(request, pk, member_pk):
    _keeper_required(request.user)
    household, member = _member_for_keeper(request.user, pk, member_pk)
    services.remove_member(by=request.user, member_id=member.pk)
    messages.success(request, _("The member is taken off the household; the history keeps the record."))
    return redirect("households:household-detail", pk=household.pk)


@login_required
def income_create(request, pk):
    _keeper_required(request.user)
    household = access.get_household_for_keeper(request.user, pk)
    form = IncomeForm(request.POST or None)
    done = act_on_form(
        request,
        form,
        lambda data: services.record_income(by=request.user, household_id=household.pk, **data),
        success=_("The income is recorded."),
        next_url=reverse("households:household-detail", kwargs={"pk": household.pk}),
    )
    return done or render(request, "households/income_form.html", {"form": form, "household": household})


# --- Imports --------------------------------------------------------------------------------


@staff_required
def import_list(request):
    from django.db.models import Q

    q = Q()
    for area in request.user.staff_areas:
        q |= Q(area__path__startswith=area.path)
    jobs = ImportJob.objects.filter(q).defer("content", "errors", "notes").select_related("area", "created_by")
    page = keyset_page(jobs, order=("id",), descending=True, cursor=request.GET.get("after"), size=30)
    return render(request, "households/import_list.html", {"page": page})


@accepts_files(ImportForm.MAX_BYTES + 1024 * 1024)
@staff_required
def import_create(request):
    user = request.user
    form = ImportForm(request.POST or None, request.FILES or None, areas=user.staff_areas)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        job = services.start_import(
            by=user,
            area=form.cleaned_data["area"],
            filename=upload.name,
            data=upload.read(),
            language=get_language() or "",
            ip_address=audit.client_ip(request),
        )
        return redirect("households:import-detail", pk=job.pk)
    return render(request, "households/import_form.html", {"form": form})


@staff_required
def import_detail(request, pk):
    job = access.get_import_for_staff(request.user, pk)
    return render(request, "households/import_detail.html", {"job": job})


@never_cache
@staff_required
@require_GET
def import_status(request, pk):
    """What the progress bar polls: a few numbers, read from the job row."""
    job = access.get_import_for_staff(request.user, pk)
    return JsonResponse(
        {
            "status": job.status,
            "status_label": job.get_status_display(),
            "phase": job.phase,
            "phase_label": job.get_phase_display(),
            "percent": job.percent,
            "processed": job.processed_rows,
            "total": job.total_rows,
            "finished": job.is_finished,
            "created": job.created_count,
            "skipped": job.skipped_count,
            "errors": job.error_count,
        }
    )


@staff_required
@require_GET
def import_template(request):
    response = HttpResponse(content_type=XLSX)
    importing.template_workbook().save(response)
    response["Content-Disposition"] = 'attachment; filename="household-import-template.xlsx"'
    return response


# --- Reports ---------------------------------------------------------------------------------


@staff_required
def register_report(request):
    user = request.user
    form = ReportForm(request.GET or None, areas=user.staff_areas)
    area, year = user.staff_areas[0], timezone.localdate().year
    if form.is_bound and form.is_valid():
        area = form.cleaned_data["area"] or area
        year = form.cleaned_data["year"]
    report = reports.area_report(area, year)
    return render(request, "households/report.html", {"form": form, "report": report, "last_year": year - 1})


@staff_required
@require_POST
def report_refresh(request):
    form = ReportForm(request.POST, areas=request.user.staff_areas)
    if not form.is_valid():
        raise Http404
    area = form.cleaned_data["area"] or request.user.staff_areas[0]
    transaction.on_commit(lambda: tasks.refresh_register_figures.delay(area_id=area.pk))
    messages.success(request, _("The figures are being counted again; reload the page in a minute."))
    return redirect(reverse("households:report") + f"?area={area.code}&year={form.cleaned_data['year']}")


# --- Villages ---------------------------------------------------------------------------------


@login_required
def village_edit(request, code):
    _keeper_required(request.user)
    village = access.get_village_for_keeper(request.user, code)
    staff = any(area.contains(village) for area in request.user.staff_areas)
    profile = VillageProfile.objects.filter(village=village).first()
    initial = {"is_poor_village": village.is_poor_village}
    if profile is not None:
        initial.update(
            population=profile.population, collective_income=profile.collective_income, description=profile.description
        )
    form = VillageProfileForm(request.POST or None, initial=initial, staff=staff)
    done = act_on_form(
        request,
        form,
        lambda data: services.update_village_profile(by=request.user, village_id=village.pk, **data),
        success=_("The village's page is saved."),
        next_url=reverse("village-public", kwargs={"code": village.code}),
    )
    return done or render(request, "households/village_form.html", {"form": form, "village": village})
