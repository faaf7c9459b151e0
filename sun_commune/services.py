"""Granting and withdrawing roles: who may act for which area; lockouts of
logins and the caps on mails to typed addresses."""

import hashlib
import hmac
from datetime import timedelta

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from . import audit, tasks
from .errors import ActionRefused
from .models import AuditEntry, MailRequest, RoleGrant


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


# --- Logins locked out (sun_commune/throttle.py) ----------------------------------


@transaction.atomic
def record_lockout(*, username: str, client_ip: str | None, account: bool, address: bool) -> AuditEntry | None:
    """Write one audit entry per lockout (an account's, an address's) and
    mail the site's staff after commit. A lockout already recorded within
    the lockout window is not recorded again (axes reports every refused
    try). Returns the new entry, or None."""
    reasons = [r for r, on in (("account", account), ("address", address)) if on]
    if not reasons:
        return None
    keys = [f"account:{username}" if r == "account" else f"address:{client_ip}" for r in reasons]
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    known = AuditEntry.objects.filter(action="login.locked_out", at__gte=since)
    if known.filter(Q(changes__key__in=keys)).exists():
        return None
    user = get_user_model().objects.filter(username=username).first() if username else None
    obj = user or AccessAttempt.objects.filter(ip_address=client_ip).order_by("-attempt_time").first()
    if obj is None:
        return None
    entry = None
    for reason, key in zip(reasons, keys, strict=True):
        entry = audit.record(
            actor=None,
            action="login.locked_out",
            obj=obj,
            changes={
                "key": key,
                "reason": reason,
                "username": username,
                "address": client_ip,
                "until": timezone.now() + settings.AXES_COOLOFF_TIME,
            },
        )
        entry_id = entry.pk
        transaction.on_commit(lambda entry_id=entry_id: tasks.notify_lockout.delay(entry_id=entry_id))
    return entry


# --- Mails to an address someone typed --------------------------------------------


def _address_hash(email: str) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, b"typed-address:" + email.strip().lower().encode(), hashlib.sha256).hexdigest()


@transaction.atomic
def allow_typed_address_mail(*, kind: str, email: str, client_ip: str | None) -> bool:
    """Whether a mail of ``kind`` may go to ``email`` (typed by a visitor at
    ``client_ip``): at most TYPED_ADDRESS_MAILS_PER_ADDRESS an hour to one
    address and TYPED_ADDRESS_MAILS_PER_CLIENT from one client, whether or
    not the address belongs to anyone. An allowed mail is counted; rows
    older than a day are removed."""
    digest = _address_hash(email)
    now = timezone.now()
    # One request for the same address at a time, so that two at once
    # cannot both find room under the cap.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"typed-address:{digest}"])
    MailRequest.objects.filter(at__lt=now - timedelta(days=1)).delete()
    recent = MailRequest.objects.filter(at__gte=now - timedelta(hours=1))
    if recent.filter(address_hash=digest).count() >= settings.TYPED_ADDRESS_MAILS_PER_ADDRESS:
        return False
    if client_ip and recent.filter(client_ip=client_ip).count() >= settings.TYPED_ADDRESS_MAILS_PER_CLIENT:
        return False
    MailRequest.objects.create(kind=kind, address_hash=digest, client_ip=client_ip, at=now)
    return True
