"""Donors: registering as one, and finding one by login."""

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from sun_commune import audit
from sun_commune import services as base_services
from sun_commune.errors import ActionRefused
from sun_commune.models import MailRequest

from .. import tasks
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


def find_donor(login: str, *, quietly: bool = False) -> Donor | None:
    """The donor whose username or e-mail is ``login`` (case ignored).
    ``quietly``: None when there is no single such donor, instead of saying
    which of "none" or "several" it is."""
    login = (login or "").strip()
    if not login:
        raise ActionRefused(_("Enter the donor's username or e-mail."), field="donor")
    matches = list(
        Donor.objects.select_related("user")
        .filter(Q(user__username__iexact=login) | Q(user__email__iexact=login), user__is_active=True)
        .order_by("pk")[:2]
    )
    if quietly and len(matches) != 1:
        exact = [d for d in matches if d.user.username.lower() == login.lower()]
        return exact[0] if len(exact) == 1 else None
    if not matches:
        raise ActionRefused(_("No donor is registered with this username or e-mail."), field="donor")
    if len(matches) > 1:
        exact = [d for d in matches if d.user.username.lower() == login.lower()]
        if len(exact) != 1:
            raise ActionRefused(_("Several donors use this e-mail; enter the username instead."), field="donor")
        return exact[0]
    return matches[0]


@transaction.atomic
def register_account(
    *,
    username: str,
    email: str,
    password: str,
    language: str,
    kind: str,
    name: str,
    show_name: bool,
    phone: str = "",
    client_ip: str | None = None,
) -> None:
    """A visitor registers as a donor. Whatever the username and e-mail,
    the visitor is told the same thing: a link is on its way to that
    address. A new account is created inactive, with its donor profile, and
    the link (mailed after commit) activates it. When the address is
    already an account's, nothing is created and its owner is mailed that
    someone tried (an account never activated is sent its link again); when
    only the username is taken, nothing is created and no mail goes. Mails
    are capped per address and per client like password resets."""
    users = get_user_model().objects
    if not base_services.allow_typed_address_mail(kind=MailRequest.Kind.REGISTRATION, email=email, client_ip=client_ip):
        return
    owner = users.filter(email__iexact=email).order_by("pk").first()
    if owner is not None:
        unconfirmed = not owner.is_active and owner.last_login is None and owner.donor_profile is not None
        task = tasks.send_registration_link if unconfirmed else tasks.notify_registration_attempt
        owner_id = owner.pk
        transaction.on_commit(lambda: task.delay(user_id=owner_id))
        return
    if users.filter(username__iexact=username).exists():
        return
    user = users.model(username=username, email=email, language=language, is_active=False)
    user.set_password(password)
    user.save()
    register_donor(user=user, kind=kind, name=name, show_name=show_name, phone=phone)
    transaction.on_commit(lambda: tasks.send_registration_link.delay(user_id=user.pk))


@transaction.atomic
def activate_account(*, user_id: int, token: str):
    """Activate the account a registration link was sent for; returns the
    user, or None when the link is wrong, used or too old."""
    user = get_user_model().objects.select_for_update().filter(pk=user_id, is_active=False).first()
    if user is None or user.last_login is not None or not default_token_generator.check_token(user, token):
        return None
    user.is_active = True
    user.save(update_fields=["is_active"])
    audit.record(actor=user, action="user.activated", obj=user, changes={"is_active": [False, True]})
    return user
