"""Celery tasks: they take ids, look the rows up, return quietly when the
rows are gone, and call services or send mail."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from sun_commune.mail import send_to_user
from sun_commune.models import RoleGrant

from .models import CooperativeManager, Distribution, LoanInstallment, Member

log = logging.getLogger(__name__)


@shared_task
def check_loan_repayments() -> dict:
    """Beat, daily: remind the managers of every unpaid installment falling
    due within COOP_LOAN_REMINDER_DAYS, and flag every one past its due date.
    Each installment is reminded and flagged once (conditional updates in
    the services), so a second run, or two at once, sends nothing twice."""
    from .services import loans  # noqa: PLC0415 -- deferred: services import tasks

    today = timezone.localdate()
    horizon = today + timedelta(days=settings.COOP_LOAN_REMINDER_DAYS)
    open_installments = LoanInstallment.objects.filter(paid_on__isnull=True)
    reminded = flagged = 0
    to_remind = open_installments.filter(reminded_at__isnull=True, due_on__lte=horizon, due_on__gte=today)
    for installment_id in to_remind.values_list("pk", flat=True).iterator(chunk_size=1000):
        reminded += loans.remind_installment(installment_id=installment_id)
    to_flag = open_installments.filter(flagged_at__isnull=True, due_on__lt=today)
    for installment_id in to_flag.values_list("pk", flat=True).iterator(chunk_size=1000):
        flagged += loans.flag_overdue(installment_id=installment_id)
    if reminded or flagged:
        log.info("loan repayments: %d reminded, %d flagged overdue", reminded, flagged)
    return {"reminded": reminded, "flagged": flagged}


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_installment(*, installment_id: int, overdue: bool) -> int:
    """Mail the cooperative's active managers about one installment. The mail
    names the member by number only."""
    installment = (
        LoanInstallment.objects.select_related("loan__cooperative", "loan__member").filter(pk=installment_id).first()
    )
    if installment is None or installment.paid_on:
        return 0
    managers = _managers_of(installment.loan.cooperative_id)
    template = "emails/coop_installment_overdue" if overdue else "emails/coop_installment_due"
    sent = 0
    for user in managers:
        sent += send_to_user(user, template, {"installment": installment, "loan": installment.loan})
    return sent


@shared_task
def pay_distribution(*, distribution_id: int, by_id: int | None, note: str = "") -> int:
    """Record every unpaid line of an approved distribution (each line once;
    safe to run again or after dying half-way)."""
    from .services import distributions  # noqa: PLC0415 -- deferred: services import tasks

    if not Distribution.objects.filter(pk=distribution_id).exists():
        return 0
    by = get_user_model().objects.filter(pk=by_id).first() if by_id else None
    return distributions.record_all_payments(by=by, distribution_id=distribution_id, note=note)


def _managers_of(cooperative_id: int):
    return get_user_model().objects.filter(
        pk__in=CooperativeManager.objects.filter(cooperative_id=cooperative_id, active=True).values("user_id"),
        is_active=True,
    )


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_membership_requested(*, member_id: int) -> int:
    """Mail the first secretaries of the household's village that a
    cooperative asks for the household as a member (still awaiting)."""
    member = Member.objects.select_related("cooperative", "household").filter(pk=member_id).first()
    if member is None or member.standing != Member.Standing.REQUESTED:
        return 0
    secretaries = (
        get_user_model()
        .objects.filter(
            role_grants__role=RoleGrant.Role.SECRETARY,
            role_grants__area_id=member.household.village_id,
            role_grants__active=True,
            is_active=True,
        )
        .distinct()
    )
    sent = 0
    for user in secretaries:
        sent += send_to_user(user, "emails/coop_membership_requested", {"member": member})
    return sent


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_membership_decided(*, member_id: int) -> int:
    """Mail the cooperative's managers what the village answered; the mail
    names the member by number and public id only."""
    member = Member.objects.select_related("cooperative", "household").filter(pk=member_id).first()
    if member is None or member.standing == Member.Standing.REQUESTED:
        return 0
    sent = 0
    for user in _managers_of(member.cooperative_id):
        sent += send_to_user(user, "emails/coop_membership_decided", {"member": member})
    return sent
