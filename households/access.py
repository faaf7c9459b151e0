from django.shortcuts import get_object_or_404

from .models import Household


def households_for(user):
    """Households whose private fields ``user`` may see: their villages as
    secretary and everything under their areas as staff."""
    return Household.objects.within_any(user.secretary_villages + user.staff_areas)


def get_household_for_keeper(user, pk) -> Household:
    return get_object_or_404(households_for(user).select_related("village"), pk=pk)
