"""Donors: registering as one, verifying their e-mail, and finding one by
login."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from sun_commune import audit, outbox
from sun_commune import services as base_services
from sun_commune.errors import ActionRefused
from sun_commune.models import MailRequest

from .. import tasks
from ..models import (
    Donor,
)

VERIFY_SALT = "donations.donor-email"
RESEND_AFTER = timedelta(seconds=60)


@transaction.atomic
def register_donor(
    *, user, kind: str, name: str, show_name: bool, phone: str = "", mail_verification: bool = True
) -> Donor:
    """Give ``user`` a donor profile (a user registers as a donor once).
    The link that verifies their e-mail is mailed after commit (unless the
    caller mails a link that verifies it anyway: ``register_account``)."""
    if Donor.objects.filter(user=user).exists():
        raise ActionRefused(_("You are already registered as a donor."))
    donor = Donor.objects.create(
        user=user, kind=kind, name=name, show_name=show_name, phone=phone, verification_sent_at=timezone.now()
    )
    audit.record(actor=user, action="donor.registered", obj=donor, changes={"kind": kind, "show_name": show_name})
    if user.email and mail_verification:
        outbox.enqueue(tasks.send_donor_verification, donor_id=donor.pk)
    return donor


def verification_token(donor: Donor) -> str:
    """A signed, timestamped token for the donor's current e-mail (made in the
    mail task, so it never sits in the queue)."""
    return signing.TimestampSigner(salt=VERIFY_SALT).sign_object({"d": donor.pk, "e": donor.user.email.lower()})


@transaction.atomic
def resend_verification(*, donor_id: int, by) -> Donor:
    """Mail the verification link again (at most once a minute), after commit."""
    donor = Donor.objects.select_for_update().select_related("user").get(pk=donor_id)
    if donor.email_verified:
        raise ActionRefused(_("Your e-mail address is already verified."))
    if not donor.user.email:
        raise ActionRefused(_("Your account has no e-mail address; ask the bureau to add one."))
    now = timezone.now()
    if donor.verification_sent_at and now - donor.verification_sent_at < RESEND_AFTER:
        raise ActionRefused(_("A link was mailed less than a minute ago; please check your inbox first."))
    donor.verification_sent_at = now
    donor.save(update_fields=["verification_sent_at"])
    audit.record(actor=by, action="donor.verification_sent", obj=donor, changes={})
    outbox.enqueue(tasks.send_donor_verification, donor_id=donor.pk)
    return donor


@transaction.atomic
def verify_email(*, token: str) -> Donor:
    """Mark the donor's e-mail verified from the link's token, if it is
    genuine, not older than DONOR_VERIFY_MAX_AGE_SECONDS and still for the
    account's current address. Safe to follow twice."""
    try:
        data = signing.TimestampSigner(salt=VERIFY_SALT).unsign_object(
            token, max_age=settings.DONOR_VERIFY_MAX_AGE_SECONDS
        )
    except signing.SignatureExpired:
        raise ActionRefused(_("This link has expired; ask for a new one below."))
    except signing.BadSignature:
        raise ActionRefused(_("This link is not valid; ask for a new one below."))
    donor = Donor.objects.select_for_update().select_related("user").filter(pk=data.get("d")).first()
    email = data.get("e") or ""
    if donor is None or (donor.user.email or "").lower() != email:
        raise ActionRefused(_("This link is for an e-mail address your account no longer has; ask for a new one."))
    if donor.email_verified:
        return donor
    donor.verified_email = email
    donor.verified_at = timezone.now()
    donor.save(update_fields=["verified_email", "verified_at"])
    audit.record(actor=donor.user, action="donor.email_verified", obj=donor, changes={})
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
        outbox.enqueue(task, user_id=owner.pk)
        return
    if users.filter(username__iexact=username).exists():
        return
    user = users.model(username=username, email=email, language=language, is_active=False)
    user.set_password(password)
    user.save()
    register_donor(user=user, kind=kind, name=name, show_name=show_name, phone=phone, mail_verification=False)
    outbox.enqueue(tasks.send_registration_link, user_id=user.pk)


@transaction.atomic
def activate_account(*, user_id: int, token: str):
    """Activate the account a registration link was sent for; returns the
    user, or None when the link is wrong, used or too old. The link reached
    the account's address, so its donor's e-mail is verified too."""
    user = get_user_model().objects.select_for_update().filter(pk=user_id, is_active=False).first()
    if user is None or user.last_login is not None or not default_token_generator.check_token(user, token):
        return None
    user.is_active = True
    user.save(update_fields=["is_active"])
    audit.record(actor=user, action="user.activated", obj=user, changes={"is_active": [False, True]})
    donor = Donor.objects.select_for_update().filter(user=user).first()
    if donor is not None and user.email and not donor.email_verified:
        donor.verified_email = user.email.lower()
        donor.verified_at = timezone.now()
        donor.save(update_fields=["verified_email", "verified_at"])
        audit.record(actor=user, action="donor.email_verified", obj=donor, changes={})
    return user
