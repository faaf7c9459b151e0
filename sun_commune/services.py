"""Granting and withdrawing roles: who may act for which area."""

from django.core.exceptions import ValidationError
from django.db import transaction

from . import audit
from .errors import ActionRefused
from .models import RoleGrant


@transaction.atomic
def grant_role(*, by, user, role: str, area) -> RoleGrant:
    """Give ``user`` ``role`` over ``area`` (a secretary: a village; staff: a
    township or above). Granting an existing active role changes nothing."""
    grant = RoleGrant.objects.select_for_update().filter(user=user, role=role, area=area).first()
    if grant and grant.active:
        return grant
    grant = grant or RoleGrant(user=user, role=role, area=area)
    try:
        grant.clean()
    except ValidationError as error:
        raise ActionRefused(error.messages[0], field="area") from None
    grant.active = True
    grant.save()
    audit.record(actor=by, action="role.granted", obj=grant, changes={"user": user.pk, "role": role, "area": area.code})
    return grant


@transaction.atomic
def withdraw_role(*, by, grant_id: int) -> RoleGrant:
    grant = RoleGrant.objects.select_for_update().get(pk=grant_id)
    if not grant.active:
        return grant
    grant.active = False
    grant.save(update_fields=["active"])
    audit.record(actor=by, action="role.withdrawn", obj=grant, changes={"active": [True, False]})
    return grant
