"""Donors: registering as one, verifying their e-mail, and finding one by
login."""

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from sun_commune import audit
from sun_commune.errors import ActionRefused

from .. import tasks
from ..models import (
    Donor,
)

VERIFY_SALT = "donations.donor-email"
RESEND_AFTER = timedelta(seconds=60)


@transaction.atomic
def register_donor(*, user, kind: str, name: str, show_name: bool, phone: str = "") -> Donor:
    """Give ``user`` a donor profile (a user registers as a donor once).
    The link that verifies their e-mail is mailed after commit."""
    if Donor.objects.filter(user=user).exists():
        raise ActionRefused(_("You are already registered as a donor."))
    donor = Donor.objects.create(
        user=user, kind=kind, name=name, show_name=show_name, phone=phone, verification_sent_at=timezone.now()
    )
    audit.record(actor=user, action="donor.registered", obj=donor, changes={"kind": kind, "show_name": show_name})
    if user.email:
        transaction.on_commit(lambda: tasks.send_donor_verification.delay(donor_id=donor.pk))
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
    transaction.on_commit(lambda: tasks.send_donor_verification.delay(donor_id=donor.pk))
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
