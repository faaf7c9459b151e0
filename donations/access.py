from django.shortcuts import get_object_or_404

from .models import Need, Pairing, Pledge


def needs_for_secretary(user):
    return Need.objects.filter(village__in=user.secretary_villages)


def get_need_for_secretary(user, pk) -> Need:
    return get_object_or_404(needs_for_secretary(user).select_related("village", "household"), pk=pk)


def needs_for_staff(user):
    return Need.objects.within_any(user.staff_areas)


def get_need_for_staff(user, pk) -> Need:
    return get_object_or_404(needs_for_staff(user).select_related("village", "household"), pk=pk)


def get_pledge_for_donor(user, pk) -> Pledge:
    return get_object_or_404(Pledge.objects.select_related("need"), pk=pk, donor__user=user)


def get_pledge_for_secretary(user, pk) -> Pledge:
    return get_object_or_404(
        Pledge.objects.select_related("need", "donor"), pk=pk, need__village__in=user.secretary_villages
    )


def get_pledge_for_staff(user, pk) -> Pledge:
    return get_object_or_404(Pledge.objects.select_related("need", "donor"), pk=pk, need__in=needs_for_staff(user))


# --- Pairings -------------------------------------------------------------------


def pairings_for_secretary(user):
    return Pairing.objects.filter(village__in=user.secretary_villages)


def get_pairing_for_secretary(user, pk):
    return get_object_or_404(
        pairings_for_secretary(user).select_related("donor", "household", "village", "township", "county"), pk=pk
    )


def get_pairing_for_donor(user, pk):
    return get_object_or_404(
        Pairing.objects.select_related("donor", "household", "village", "township", "county"), pk=pk, donor__user=user
    )
