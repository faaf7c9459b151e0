"""Donors: registering as one, and finding one by login."""

from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from sun_commune import audit
from sun_commune.errors import ActionRefused

from ..models import (
    Donor,
)


@transaction.atomic
def register_donor(*, user, kind: str, name: str, show_name: bool, phone: str = "") -> Donor:
    """Give ``user`` a donor profile (a user registers as a donor once)."""
    if Donor.objects.filter(user=user).exists():
        raise ActionRefused(_("You are already registered as a donor."))
    donor = Donor.objects.create(user=user, kind=kind, name=name, show_name=show_name, phone=phone)
    audit.record(actor=user, action="donor.registered", obj=donor, changes={"kind": kind, "show_name": show_name})
    return donor


def find_donor(login: str) -> Donor:
    """The donor whose username or e-mail is ``login`` (case ignored)."""
    login = (login or "").strip()
    if not login:
        raise ActionRefused(_("Enter the donor's username or e-mail."), field="donor")
    matches = list(
        Donor.objects.select_related("user")
        .filter(Q(user__username__iexact=login) | Q(user__email__iexact=login), user__is_active=True)
        .order_by("pk")[:2]
    )
    if not matches:
        raise ActionRefused(_("No donor is registered with this username or e-mail."), field="donor")
    if len(matches) > 1:
        exact = [d for d in matches if d.user.username.lower() == login.lower()]
        if len(exact) != 1:
            raise ActionRefused(_("Several donors use this e-mail; enter the username instead."), field="donor")
        return exact[0]
    return matches[0]
