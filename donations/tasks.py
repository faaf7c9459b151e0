"""Celery tasks: they take ids, look the rows up, return quietly when the
rows are gone, and call services or send mail."""

import logging

from celery import shared_task
from django.utils import timezone

from sun_commune.mail import send_to_user

from .models import Need, Pledge

log = logging.getLogger(__name__)


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_need_reviewed(*, need_id: int) -> None:
    need = Need.objects.select_related("created_by", "village").filter(pk=need_id).first()
    if need is None or need.status not in (Need.Status.PUBLISHED, Need.Status.REJECTED):
        return
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
    p = (
        Pledge.objects.select_related("need__village", "need__household", "donor__user")
        .filter(pk=pledge_id)
        .first()
    )
    if p is None:
        return
    send_to_user(p.donor.user, "emails/gift_received", {"pledge": p, "need": p.need})


@shared_task
def expire_overdue_needs() -> int:
    """Beat: expire every open need past its deadline, one transaction each
    (a need that fails does not hold up the others; a rerun finishes the job)."""
    from . import services

    today = timezone.localdate()
    overdue = Need.objects.filter(
        status__in=(Need.Status.PUBLISHED, Need.Status.FULLY_PLEDGED), deadline__lt=today
    ).values_list("pk", flat=True)
    count = 0
    for need_id in overdue.iterator(chunk_size=1000):
        services.expire_need(need_id=need_id, today=today)
        count += 1
    if count:
        log.info("expired %d needs", count)
    return count


@shared_task
def publish_ledger() -> int:
    """Beat: publish every committed, unpublished ledger transaction as the
    next numbered batches. Safe to run twice at once or to kill half-way."""
    from . import publication

    batches = publication.publish_all()
    if batches:
        log.info("published ledger batches %s..%s, tree size %d", batches[0].number, batches[-1].number, batches[-1].tree_size)
    return len(batches)


@shared_task
def check_ledger() -> bool:
    """Nightly: run the ledger check; on failure mail the bureau staff."""
    from django.contrib.auth import get_user_model

    from . import publication

    check = publication.run_check()
    if check.ok:
        log.info("ledger check passed: %d published entries in %.1fs", check.tree_size, check.seconds)
        return True
    log.error("ledger check FAILED: %d problems", len(check.problems))
    staff = get_user_model().objects.filter(role_grants__role="staff", role_grants__active=True, is_active=True).distinct()
    for user in staff:
        send_to_user(user, "emails/ledger_check_failed", {"check": check})
    return False
