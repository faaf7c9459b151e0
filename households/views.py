"""The household register as the village and the bureau keep it."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from sun_commune.errors import ActionRefused
from sun_commune.pagination import keyset_page

from . import access, services
from .forms import HouseholdForm


def _keeper_required(user):
    if not (user.is_secretary or user.is_bureau_staff):
        raise PermissionDenied


@login_required
def household_list(request):
    _keeper_required(request.user)
    households = access.households_for(request.user).select_related("village")
    page = keyset_page(households, order=("id",), descending=True, cursor=request.GET.get("after"), size=20)
    return render(request, "households/household_list.html", {"page": page})


@login_required
def household_detail(request, pk):
    _keeper_required(request.user)
    household = access.get_household_for_keeper(request.user, pk)
    needs = household.needs.order_by("-created_at")[:50]
    return render(request, "households/household_detail.html", {"household": household, "needs": needs})


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
    form = HouseholdForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            household = services.create_household(by=user, village=village, **form.cleaned_data)
        except ActionRefused as refusal:
            refusal.add_to(form)
        else:
            messages.success(request, _("The household is registered."))
            return redirect("households:household-detail", pk=household.pk)
    return render(request, "households/household_form.html", {"form": form, "village": village, "household": None})


@login_required
def household_edit(request, pk):
    _keeper_required(request.user)
    household = access.get_household_for_keeper(request.user, pk)
    form = HouseholdForm(request.POST or None, instance=household)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_household(household_id=household.pk, by=request.user, **form.cleaned_data)
        except ActionRefused as refusal:
            refusal.add_to(form)
        else:
            messages.success(request, _("The household is saved."))
            return redirect("households:household-detail", pk=household.pk)
    return render(
        request, "households/household_form.html", {"form": form, "village": household.village, "household": household}
    )
