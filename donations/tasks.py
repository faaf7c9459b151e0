"""Celery tasks: they take ids, look the rows up, return quietly when the
rows are gone, and call services or send mail."""

import logging
from datetime import date

from celery import shared_task
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from sun_commune.errors import ActionRefused
from sun_commune.mail import send_to_user

from . import downloads, publication
from .models import Donor, GiftClaim, Need, Pairing, PairingInstallment, Pledge, period_of

log = logging.getLogger(__name__)


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_need_reviewed(*, need_id: int) -> None:
    need = Need.objects.select_related("created_by", "village").filter(pk=need_id).first()
    if need is None or need.status not in (Need.Status.PUBLISHED, Need.Status.REJECTED):
        return
    if need.status == Need.Status.PUBLISHED and need.reviewed_by_id is None:
        return  # a pairing's installment, published by the pairing rather than the bureau
    send_to_user(need.created_by, "emails/need_reviewed", {"need": need})


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_new_pledge(*, pledge_id: int) -> None:
    p = Pledge.objects.select_related("need__created_by", "need__village", "donor").filter(pk=pledge_id).first()
    if p is None:
        return
    send_to_user(p.need.created_by, "emails/new_pledge", {"pledge": p, "need": p.need})


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_goods_received(*, pledge_id: int) -> None:
    """Tell the donor their gift arrived. Only public facts of the household
    go into this mail (its public label and village)."""
    p = Pledge.objects.select_related("need__village", "need__household", "donor__user").filter(pk=pledge_id).first()
    if p is None:
        return
    send_to_user(p.donor.user, "emails/gift_received", {"pledge": p, "need": p.need})


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_donor_verification(*, donor_id: int) -> None:
    """Mail the donor the link that verifies their e-mail; the signed token
    is made here, for the address the account has now."""
    from .services import donors  # noqa: PLC0415 -- deferred: services import tasks

    donor = Donor.objects.select_related("user").filter(pk=donor_id, user__is_active=True).first()
    if donor is None or donor.email_verified or not donor.user.email:
        return
    send_to_user(donor.user, "emails/donor_verify", {"donor": donor, "token": donors.verification_token(donor)})


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_pledge_released(*, pledge_id: int) -> None:
    """Tell the donor their pledge was released, and why. Only public facts
    of the household go into this mail."""
    p = Pledge.objects.select_related("need__village", "need__household", "donor__user").filter(pk=pledge_id).first()
    if p is None or p.status != Pledge.Status.RELEASED:
        return
    send_to_user(p.donor.user, "emails/pledge_released", {"pledge": p, "need": p.need})


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_gift_claim(*, claim_id: int) -> None:
    """Ask the donor to confirm (or dispute) a gift staff recorded in their name."""
    claim = GiftClaim.objects.select_related("donor__user", "transaction__area").filter(pk=claim_id).first()
    if claim is None or claim.status != GiftClaim.Status.PENDING:
        return
    send_to_user(claim.donor.user, "emails/gift_claim", {"claim": claim})


@shared_task
def release_unpaid_money_pledges() -> int:
    """Beat (daily): release every money pledge with no transfer recorded
    MONEY_PLEDGE_RELEASE_DAYS after it was made, one transaction each. Safe
    to run twice or at once: the service locks each pledge and leaves one
    that is no longer open as it is."""
    from .services import pledges  # noqa: PLC0415 -- deferred: services import tasks

    released = pledges.release_unpaid_money_pledges()
    if released:
        log.info("released %d unpaid money pledges", released)
    return released


@shared_task
def expire_overdue_needs() -> int:
    """Beat: expire every open need past its deadline, one transaction each
    (a need that fails does not hold up the others; a rerun finishes the job)."""
    from .services import needs  # noqa: PLC0415 -- deferred: services import tasks

    today = timezone.localdate()
    overdue = Need.objects.filter(
        status__in=(Need.Status.PUBLISHED, Need.Status.FULLY_PLEDGED), deadline__lt=today
    ).values_list("pk", flat=True)
    count = 0
    for need_id in overdue.iterator(chunk_size=1000):
        needs.expire_need(need_id=need_id, today=today)
        count += 1
    if count:
        log.info("expired %d needs", count)
    return count


@shared_task
def publish_ledger() -> int:
    """Beat: publish every committed, unpublished ledger transaction as the
    next numbered batches, then bring the download files up to the latest
    batch (also when nothing new was published: a write that failed is made
    on the next run). Safe to run twice at once or to kill half-way."""
    batches = publication.publish_all()
    try:
        downloads.write_files()
    except OSError:
        log.exception("the ledger's download files could not be written; the next run tries again")
    if batches:
        log.info(
            "published ledger batches %s..%s, tree size %d",
            batches[0].number,
            batches[-1].number,
            batches[-1].tree_size,
        )
    return len(batches)


@shared_task
def check_ledger() -> bool:
    """Nightly: run the ledger check; on failure mail the bureau staff."""

    check = publication.run_check()
    if check.ok:
        log.info("ledger check passed: %d published entries in %.1fs", check.tree_size, check.seconds)
        return True
    log.error("ledger check FAILED: %d problems", len(check.problems))
    staff = (
        get_user_model().objects.filter(role_grants__role="staff", role_grants__active=True, is_active=True).distinct()
    )
    for user in staff:
        send_to_user(user, "emails/ledger_check_failed", {"check": check})
    return False


# --- Pairing ----------------------------------------------------------------

PAIRING_EVENT_STATUS = {
    "requested": Pairing.Status.REQUESTED,
    "invited": Pairing.Status.INVITED,
    "accepted": Pairing.Status.ACTIVE,
    "declined": Pairing.Status.DECLINED,
    "ended": Pairing.Status.ENDED,
    "update": None,
}


def village_secretaries(village_id: int):
    return (
        get_user_model()
        .objects.filter(
            role_grants__role="secretary", role_grants__area_id=village_id, role_grants__active=True, is_active=True
        )
        .distinct()
    )


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_pairing(*, pairing_id: int, event: str, to: str) -> None:
    """Mail one side of a pairing (``to``: "donor" or "village") that
    ``event`` happened. Returns quietly when the pairing is gone or has
    moved on. Mail to the donor carries only public facts of the household:
    its public label and its village."""
    pairing = (
        Pairing.objects.select_related("donor__user", "household", "village", "township", "county")
        .filter(pk=pairing_id)
        .first()
    )
    if pairing is None or event not in PAIRING_EVENT_STATUS:
        return
    expected = PAIRING_EVENT_STATUS[event]
    if expected is not None and pairing.status != expected:
        return
    template = f"emails/pairing_{event}"
    if to == "donor":
        send_to_user(pairing.donor.user, template, {"pairing": pairing, "for_donor": True})
    else:
        for user in village_secretaries(pairing.village_id):
            send_to_user(user, template, {"pairing": pairing, "for_donor": False})


@shared_task
def create_pairing_pledges(today: str | None = None) -> int:
    """Beat (hourly): end the active pairings whose end date has passed, then
    make this period's installment (a need and the donor's pledge) of every
    active pairing that has none yet, one transaction each. Safe to run twice
    or at once: the service locks each pairing and the installment's period
    is unique. ``today`` (ISO date) is for tests and catching up by hand."""
    from .services import pairings  # noqa: PLC0415 -- deferred: services import tasks

    day = date.fromisoformat(today) if today else timezone.localdate()
    ran_out = Pairing.objects.active().filter(end_date__lt=day).values_list("pk", flat=True)
    for pairing_id in ran_out.iterator(chunk_size=1000):
        pairings.end_pairing(pairing_id=pairing_id, by=None, side=None, today=day)
    installments = PairingInstallment.objects.filter(pairing=OuterRef("pk"))
    has_month = Exists(installments.filter(period=period_of(day, Pairing.Commitment.MONEY)))
    has_season = Exists(installments.filter(period=period_of(day, Pairing.Commitment.GOODS)))
    due = (
        Pairing.objects.active()
        .filter(start_date__lte=day)
        .filter(Q(end_date__isnull=True) | Q(end_date__gte=day))
        .filter(
            (Q(commitment=Pairing.Commitment.MONEY) & ~has_month)
            | (Q(commitment=Pairing.Commitment.GOODS) & ~has_season)
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    made = 0
    for pairing_id in due.iterator(chunk_size=1000):
        try:
            if pairings.create_pairing_installment(pairing_id=pairing_id, today=day) is not None:
                made += 1
        except ActionRefused as refusal:
            # Rolled back whole; the next run tries again. Only ids in the log.
            log.warning("pairing %d: no installment for %s: %s", pairing_id, day, refusal.message)
    if made:
        log.info("made %d pairing installments", made)
    return made


# --- Registration --------------------------------------------------------------


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_registration_link(*, user_id: int) -> None:
    """Mail a new (inactive) account the link that activates it; the task
    makes the token itself, so none sits in the queue."""
    user = get_user_model().objects.filter(pk=user_id, is_active=False, last_login__isnull=True).first()
    if user is None:
        return
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    send_to_user(user, "emails/registration_link", {"uid": uid, "token": default_token_generator.make_token(user)})


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_registration_attempt(*, user_id: int) -> None:
    """Tell an account's owner that someone tried to register with its address."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is not None:
        send_to_user(user, "emails/registration_attempt", {})
