"""A cooperative itself: registering it, its leading enterprises, and
appointing its managers (a role's own act: only bureau staff over the
cooperative's area may).
"""

from django.db import transaction
from django.utils.translation import gettext as _

from sun_commune import audit
from sun_commune.errors import ActionRefused

from ..access import staff_over
from ..models import (
    Cooperative,
    CooperativeManager,
    DistributionRules,
    LeadingEnterprise,
)


@transaction.atomic
def create_cooperative(
    *, by, name: str, kind: str, area, mode: str = "", description: str = "", founded_on=None, enterprises=()
) -> Cooperative:
    """Register a cooperative in ``area`` (bureau staff over the area), with
    the default rules (60% by volume, no fixed returns)."""
    name = (name or "").strip()
    if by is not None and not staff_over(by, area):
        raise ActionRefused(_("You can register a cooperative only in your own area."), field="area")
    if not name:
        raise ActionRefused(_("Enter the cooperative's name."), field="name")
    if Cooperative.objects.filter(name=name).exists():
        raise ActionRefused(_("A cooperative with this name is already registered."), field="name")
    coop = Cooperative.objects.create(
        name=name, kind=kind, area=area, mode=mode, description=description, founded_on=founded_on, created_by=by
    )
    if enterprises:
        coop.leading_enterprises.set(enterprises)
    DistributionRules.objects.create(cooperative=coop, updated_by=by)
    audit.record(
        actor=by,
        action="cooperative.created",
        obj=coop,
        changes={"name": name, "kind": kind, "area": area.code, "enterprises": [e.pk for e in enterprises]},
    )
    return coop


@transaction.atomic
def add_leading_enterprise(
    *, by, cooperative_id: int, name: str, general_manager: str = "", description: str = ""
) -> LeadingEnterprise:
    """Name a leading enterprise behind the cooperative (registered once by
    name, shared by the cooperatives it leads)."""
    name = (name or "").strip()
    if not name:
        raise ActionRefused(_("Enter the enterprise's name."), field="name")
    coop = Cooperative.objects.select_for_update().get(pk=cooperative_id)
    enterprise, created = LeadingEnterprise.objects.get_or_create(
        name=name, defaults={"general_manager": general_manager, "description": description}
    )
    if coop.leading_enterprises.filter(pk=enterprise.pk).exists():
        return enterprise
    coop.leading_enterprises.add(enterprise)
    audit.record(
        actor=by,
        action="cooperative.enterprise_added",
        obj=coop,
        changes={"enterprise": enterprise.pk, "name": enterprise.name, "new": created},
    )
    return enterprise


@transaction.atomic
def grant_manager(*, by, cooperative_id: int, user) -> CooperativeManager:
    """Make ``user`` a manager of the cooperative. Only bureau staff whose
    area contains the cooperative's may (``by=None``: a management command).
    Granting an active grant again changes nothing."""
    coop = Cooperative.objects.select_related("area").get(pk=cooperative_id)
    if by is not None and not staff_over(by, coop.area):
        raise ActionRefused(_("Only bureau staff over the cooperative's area can appoint its managers."))
    grant = CooperativeManager.objects.select_for_update().filter(user=user, cooperative=coop).first()
    if grant and grant.active:
        return grant
    grant = grant or CooperativeManager(user=user, cooperative=coop)
    grant.active = True
    grant.granted_by = by
    grant.save()
    audit.record(
        actor=by, action="cooperative.manager_granted", obj=grant, changes={"user": user.pk, "cooperative": coop.pk}
    )
    return grant


@transaction.atomic
def withdraw_manager(*, by, grant_id: int) -> CooperativeManager:
    grant = CooperativeManager.objects.select_for_update().select_related("cooperative__area").get(pk=grant_id)
    if by is not None and not staff_over(by, grant.cooperative.area):
        raise ActionRefused(_("Only bureau staff over the cooperative's area can appoint its managers."))
    if not grant.active:
        return grant
    grant.active = False
    grant.save(update_fields=["active"])
    audit.record(actor=by, action="cooperative.manager_withdrawn", obj=grant, changes={"active": [True, False]})
    return grant
