"""Tasks that must not be lost: a transactional outbox in PostgreSQL.

``enqueue(task, **kwargs)`` writes an :class:`~sun_commune.models.OutboxTask`
row in the transaction of the change that asks for the task — a mail, an
import, the payments of a distribution — so the task exists exactly when
the change does. After the commit the row is sent to Celery at once, as a
``deliver`` task that carries only the row's id; if the broker (Redis) does
not answer, nothing fails and the row waits. The drain (beat, every
``OUTBOX_RESEND_SECONDS``, and each worker as it starts) sends again every
row that has waited that long without being done: one enqueued while Redis
was down, or lost from Redis with its queue.

A row may so be delivered more than once; it runs once in effect. ``deliver``
locks the row (``SELECT … FOR UPDATE SKIP LOCKED``), runs the task and marks
the row done in that one transaction: a second delivery finds the row done,
or locked by the run still going, and does nothing. A task that commits its
own transactions (an import, which must be its outermost transaction; the
payments, one transaction a line) says so with ``outbox_commits_itself=True``
on its decorator: it is run under a PostgreSQL advisory lock on the row
instead and marked done after it returns; such tasks are safe to run again
by themselves (DESIGN.md, rule 6). A mail is sent again only if the worker
dies between sending it and committing.
"""

import logging
from datetime import timedelta

from celery import current_app, shared_task
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from .cache import Outage
from .models import OutboxTask

log = logging.getLogger(__name__)

broker = Outage("the Celery broker (Redis)")
# What sending a task raises when the broker does not answer.
BROKER_ERRORS = (OperationalError, RedisError)
# One retry on a fresh connection: the pool's may have died with Redis.
SEND_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}
ADVISORY_NAMESPACE = 7242  # households.importing takes 7241
DRAIN_BATCH = 500
KEEP_DONE = timedelta(days=7)


def enqueue(task, **kwargs) -> OutboxTask:
    """Have ``task(**kwargs)`` run once the current transaction commits (at
    once outside one), even if the broker is down until later. ``kwargs``
    are ids and other JSON values."""
    row = OutboxTask.objects.create(name=task.name, kwargs=kwargs)
    transaction.on_commit(lambda: send(row.pk))
    return row


def send(outbox_id: int) -> bool:
    """Hand row ``outbox_id`` to Celery; False when the broker does not
    answer (the row waits for the drain). Never raises for the broker."""
    if broker.skipping():
        return False
    try:
        deliver.apply_async(kwargs={"outbox_id": outbox_id}, retry=True, retry_policy=SEND_POLICY)
    except BROKER_ERRORS as error:
        broker.failed(error)
        return False
    except Exception as error:
        if deliver.app.conf.task_always_eager:
            raise  # the task itself failed, run in place (tests): say so
        # Whatever else sending raised, the change is committed and its task
        # is in the outbox: the page that asked must not fail for it.
        log.exception("outbox row %d not sent", outbox_id)
        broker.failed(error)
        return False
    broker.answered()
    return True


def run(outbox_id: int) -> bool:
    """Run row ``outbox_id``'s task unless it is done or running; True when
    it ran now."""
    row = OutboxTask.objects.filter(pk=outbox_id, done_at__isnull=True).first()
    if row is None:
        return False
    task = current_app.tasks.get(row.name)
    if task is None:
        log.error("outbox row %d names no known task %s", row.pk, row.name)
        return False
    if getattr(task, "outbox_commits_itself", False):
        return _run_committing_itself(row, task)
    with transaction.atomic():
        row = OutboxTask.objects.select_for_update(skip_locked=True).filter(pk=outbox_id, done_at__isnull=True).first()
        if row is None:
            return False
        task(**row.kwargs)
        OutboxTask.objects.filter(pk=row.pk).update(done_at=timezone.now())
    log.info("outbox row %d: %s done", row.pk, row.name)
    return True


def _run_committing_itself(row: OutboxTask, task) -> bool:
    # A session lock: it outlives the task's own transactions and goes with
    # the connection if the worker dies.
    lock = [ADVISORY_NAMESPACE, row.pk & 0x7FFFFFFF]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", lock)
        if not cursor.fetchone()[0]:
            return False
    try:
        if not OutboxTask.objects.filter(pk=row.pk, done_at__isnull=True).exists():
            return False  # done by the run that held the lock just before
        task(**row.kwargs)
        OutboxTask.objects.filter(pk=row.pk).update(done_at=timezone.now())
        log.info("outbox row %d: %s done", row.pk, row.name)
        return True
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", lock)


def drain() -> int:
    """Send again every row not done that has waited ``OUTBOX_RESEND_SECONDS``
    since it was made or last sent, and forget rows done a week ago.
    Returns how many were sent."""
    cutoff = timezone.now() - timedelta(seconds=settings.OUTBOX_RESEND_SECONDS)
    waited = Q(sent_at__isnull=True, created__lte=cutoff) | Q(sent_at__lte=cutoff)
    sent = 0
    while True:
        # Stamp the rows first and send after the commit: a worker that got
        # one while this transaction still held it would skip it as running.
        with transaction.atomic():
            ids = list(
                OutboxTask.objects.select_for_update(skip_locked=True)
                .filter(waited, done_at__isnull=True)
                .order_by("pk")
                .values_list("pk", flat=True)[:DRAIN_BATCH]
            )
            OutboxTask.objects.filter(pk__in=ids).update(sent_at=timezone.now(), resends=F("resends") + 1)
        for outbox_id in ids:
            if not send(outbox_id):
                return sent
            sent += 1
        if len(ids) < DRAIN_BATCH:
            break
    old = OutboxTask.objects.filter(done_at__lt=timezone.now() - KEEP_DONE).values("pk")[:10_000]
    OutboxTask.objects.filter(pk__in=old).delete()
    if sent:
        log.info("outbox: sent %d waiting tasks again", sent)
    return sent


@shared_task(name="sun_commune.outbox.deliver", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def deliver(*, outbox_id: int) -> bool:
    """Run one outbox row (see :func:`run`); a mail server that does not
    answer is tried again, and the drain sends the row again after that."""
    return run(outbox_id)


@shared_task(name="sun_commune.outbox.drain_outbox")
def drain_outbox() -> int:
    """Beat, and each worker as it starts (celery.py): :func:`drain`."""
    return drain()
