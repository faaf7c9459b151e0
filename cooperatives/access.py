"""Who may see which cooperative's books.

- a cooperative's **managers** keep it (members, shares, loans, purchases,
  distributions);
- **bureau staff** over the cooperative's area see its books, approve its
  distributions and appoint its managers;
- a village's **first secretary** sees the statements of the members that
  are registered households of the village.

Anything outside a user's cooperatives or areas answers 404.
"""

from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import get_object_or_404

from households.models import Household

from .models import Cooperative, CooperativeManager, Distribution, Member


def is_manager(user) -> bool:
    if not getattr(user, "pk", None):
        return False
    # Through getattr: request.user is a lazy proxy, and the flag is set on
    # the user inside it (User.set_loaded, called by portal.backends.load_user).
    cached = getattr(user, "coop_manager", None)
    if cached is None:
        cached = CooperativeManager.objects.filter(user=user, active=True).exists()
        user.coop_manager = cached
    return cached


def staff_over(user, area) -> bool:
    return bool(user and getattr(user, "pk", None)) and any(a.contains(area) for a in user.staff_areas)


def require_keeper(user) -> None:
    """Pages of the cooperatives' keepers: managers and bureau staff (403 otherwise)."""
    if not (is_manager(user) or user.is_bureau_staff):
        raise PermissionDenied


def managed(user):
    return Cooperative.objects.managed_by(user)


def kept_by(user):
    """Cooperatives whose books ``user`` may read: those they manage and those
    in their areas as bureau staff."""
    q = Q(pk__in=CooperativeManager.objects.filter(user=user, active=True).values("cooperative_id"))
    for area in user.staff_areas:
        q |= Q(area__path__startswith=area.path)
    return Cooperative.objects.filter(q)


def get_cooperative_for_keeper(user, pk) -> Cooperative:
    return get_object_or_404(kept_by(user).select_related("area"), pk=pk)


def members_for_reader(user):
    """Members whose statement ``user`` may read: of the cooperatives they
    keep, and the households of their villages as secretary."""
    q = Q(cooperative__in=kept_by(user))
    villages = user.secretary_villages
    if villages:
        q |= Q(household__in=Household.objects.filter(village__in=villages))
    return Member.objects.filter(q)


def get_member_for_reader(user, pk) -> Member:
    return get_object_or_404(members_for_reader(user).select_related("cooperative__area", "household__village"), pk=pk)


def membership_requests_for(user):
    """Households of the user's villages (as first secretary) that a
    cooperative asks to enter as members, still awaiting an answer."""
    return Member.objects.filter(
        standing=Member.Standing.REQUESTED, household__village__in=user.secretary_villages
    ).select_related("cooperative", "household__village")


def get_membership_request(user, pk) -> Member:
    return get_object_or_404(membership_requests_for(user), pk=pk)


def get_member_for_manager(user, cooperative: Cooperative, pk) -> Member:
    return get_object_or_404(Member.objects.filter(cooperative=cooperative).select_related("household"), pk=pk)


def get_distribution_for_keeper(user, cooperative: Cooperative, pk) -> Distribution:
    return get_object_or_404(Distribution.objects.filter(cooperative=cooperative), pk=pk)
