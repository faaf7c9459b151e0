from django.http import Http404
from django.shortcuts import get_object_or_404

from .models import Household


def households_for(user, *, by_codes: bool = False):
    """Households whose private fields ``user`` may see: their villages as
    secretary and everything under their areas as staff. ``by_codes`` says
    the same through the index a name search uses (see ``_under``)."""
    return Household.objects.within_any(user.secretary_villages + user.staff_areas, by_codes=by_codes)


def get_household_for_keeper(user, pk) -> Household:
    return get_object_or_404(households_for(user).select_related("village"), pk=pk)


def is_keeper(user) -> bool:
    return user.is_secretary or user.is_bureau_staff


def keeper_areas(user) -> list:
    return user.secretary_villages + user.staff_areas


def get_import_for_staff(user, pk, *, with_content: bool = False):
    """An import job for an area within the user's staff areas, or 404."""
    from django.db.models import Q

    from .models import ImportJob

    q = Q()
    for area in user.staff_areas:
        q |= Q(area__path__startswith=area.path)
    jobs = ImportJob.objects.filter(q) if user.staff_areas else ImportJob.objects.none()
    if not with_content:
        jobs = jobs.defer("content")
    return get_object_or_404(jobs.select_related("area", "created_by"), pk=pk)


def get_village_for_keeper(user, code):
    """A village the user keeps (its secretary, or staff over it), or 404."""
    from .models import Area

    village = get_object_or_404(Area.objects.villages(), code=code)
    if not any(area.contains(village) for area in keeper_areas(user)):
        raise Http404
    return village
