"""Redis can go away (issue 14, finding 7): cache errors are misses, sessions
are read from PostgreSQL, and tasks that must not be lost wait in the
outbox until a worker runs them, once."""

import logging
import re
import socket
import subprocess
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.core import mail
from django.core.cache import cache, caches
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from cooperatives.tasks import pay_distribution
from donations.services import pledges
from donations.tasks import notify_new_pledge
from sun_commune import outbox
from sun_commune.celery import app
from sun_commune.models import OutboxTask
from sun_commune.tasks import send_password_reset

from . import factories
from .test_worker import sent_mail, start_worker, stop_worker

ROOT = Path(__file__).resolve().parent.parent
NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens there


@pytest.fixture
def cache_at(settings):
    """``cache_at(url)``: the default cache (and sessions) on the Redis at ``url``."""

    def point(url):
        settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": url}}
        return caches["default"]

    return point


@pytest.fixture
def broker_at():
    """``broker_at(url)``: this process sends tasks to the broker at ``url``,
    for real (not run in place); put back afterwards."""
    old = app.conf.broker_url, app.conf.broker_write_url, app.conf.task_always_eager

    def forget_connections():
        # Celery keeps the pools it made for the old URL and has no public
        # call to drop them (app.close() also unregisters the app).
        app._pool = None
        app.amqp._producer_pool = None

    def point(url):
        forget_connections()
        app.conf.broker_url = app.conf.broker_write_url = url
        app.conf.task_always_eager = False

    yield point
    forget_connections()
    app.conf.broker_url, app.conf.broker_write_url, app.conf.task_always_eager = old
    outbox.broker.answered()


# --- Cache errors are misses ----------------------------------------------------------------


def test_every_cache_call_is_a_miss_when_redis_does_not_answer(cache_at, caplog):
    down = cache_at(NOWHERE)
    caplog.set_level(logging.WARNING, logger="sun_commune.cache")
    started = time.monotonic()

    for _ in range(50):
        assert down.get("k") is None
        assert down.get("k", "default") == "default"
        down.set("k", "v", 10)
        assert down.add("k", "v", 10) is False
        assert down.get_many(["k", "l"]) == {}
        assert down.has_key("k") is False
        down.delete("k")
        down.delete_many(["k", "l"])
        with pytest.raises(ValueError):
            down.incr("k")

    assert time.monotonic() - started < 2
    warnings = [r for r in caplog.records if r.name == "sun_commune.cache"]
    assert len(warnings) == 1, "one warning per interval, not one per call"
    assert "does not answer" in warnings[0].getMessage()


def test_a_redis_that_accepts_and_never_answers_costs_one_short_timeout(cache_at, settings):
    """A Redis that hangs (not refused): the socket timeout bounds the first
    call, and the calls after it do not wait at all."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # connections complete in the backlog; nothing ever answers
    try:
        hanging = cache_at(f"redis://127.0.0.1:{listener.getsockname()[1]}/0")
        started = time.monotonic()
        assert hanging.get("k") is None
        first = time.monotonic() - started
        for _ in range(20):
            assert hanging.get("k") is None
        rest = time.monotonic() - started - first
    finally:
        listener.close()

    assert settings.REDIS_TIMEOUT_SECONDS <= first < settings.REDIS_TIMEOUT_SECONDS * 4
    assert rest < 0.1


def test_a_write_that_missed_redis_is_deleted_when_it_answers_again(settings, monkeypatch):
    """A session logged out while Redis was out of reach must not come back
    from Redis when it returns."""
    settings.REDIS_RETRY_SECONDS = 0
    backend = caches["default"]
    cache.set("session-like", "logged in", 60)

    def unreachable(*args, **kwargs):
        raise ConnectionError("Redis went away")

    with monkeypatch.context() as patch:
        patch.setattr(backend._cache, "delete", unreachable)
        patch.setattr(backend._cache, "get", unreachable)
        cache.delete("session-like")  # does nothing now ...
        assert cache.get("session-like") is None

    assert cache.get("another key") is None  # Redis answers: the missed delete is done first
    assert cache.get("session-like") is None


# --- Sessions fall back to PostgreSQL ---------------------------------------------------------


def test_logging_in_and_out_works_with_redis_down(db, cache_at, anonymous):
    donor = factories.make_donor(username="li_down")
    cache_at(NOWHERE)

    response = anonymous.post("/accounts/login/", {"username": "li_down", "password": factories.PASSWORD})
    assert response.status_code == 302
    page = anonymous.get("/my/pledges/")
    assert page.status_code == 200
    assert page.wsgi_request.user == donor

    assert anonymous.post("/accounts/logout/").status_code == 302
    assert anonymous.get("/my/pledges/").status_code == 302  # to the login page


def test_a_session_made_while_redis_was_up_is_read_from_postgresql_when_it_is_down(db, donor, client_of, cache_at):
    client = client_of(donor)
    assert client.get("/my/pledges/").status_code == 200  # the session is in Redis and PostgreSQL

    cache_at(NOWHERE)
    page = client.get("/my/pledges/")

    assert page.status_code == 200
    assert page.wsgi_request.user == donor


# --- The outbox -------------------------------------------------------------------------------


def test_a_mail_asked_for_by_a_change_rolled_back_is_never_sent(need_a, donor):
    donor_profile = donor.donor_profile
    mail.outbox.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        pledges.make_pledge(need_id=need_a.pk, donor=donor_profile, quantity=1)
        assert OutboxTask.objects.filter(name=notify_new_pledge.name).exists()
        raise RuntimeError("the change fails after asking for the mail")

    assert not OutboxTask.objects.filter(name=notify_new_pledge.name).exists()
    assert mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_a_mail_enqueued_while_the_broker_is_down_waits_and_the_drain_sends_it_once(
    need_a, donor, secretary_a, broker_at, settings
):
    broker_at(NOWHERE)
    mail.outbox.clear()
    started = time.monotonic()

    p = pledges.make_pledge(need_id=need_a.pk, donor=donor.donor_profile, quantity=1)

    assert time.monotonic() - started < 2, "the broker's absence costs no long wait"
    row = OutboxTask.objects.get(name=notify_new_pledge.name)
    assert row.kwargs == {"pledge_id": p.pk} and row.done_at is None
    assert outbox.broker.down
    assert mail.outbox == []

    app.conf.task_always_eager = True  # the broker is back (tasks run here)
    outbox.broker.answered()
    settings.OUTBOX_RESEND_SECONDS = 0
    assert outbox.drain() == 1
    assert outbox.drain() == 0  # done: nothing to send again

    row.refresh_from_db()
    assert row.done_at is not None and row.resends == 1
    assert [m.to for m in mail.outbox] == [[secretary_a.email]]


def test_a_row_delivered_twice_runs_once(need_a, donor, secretary_a, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        p = pledges.make_pledge(need_id=need_a.pk, donor=donor.donor_profile, quantity=1)
    row = OutboxTask.objects.get(name=notify_new_pledge.name, kwargs={"pledge_id": p.pk})
    assert row.done_at is not None
    assert len(mail.outbox) == 1

    assert outbox.deliver.apply(kwargs={"outbox_id": row.pk}).get() is False
    assert outbox.run(row.pk) is False
    assert len(mail.outbox) == 1


@pytest.mark.django_db(transaction=True)
def test_a_row_being_run_is_skipped_by_a_second_delivery(need_a, donor):
    p = pledges.make_pledge(need_id=need_a.pk, donor=donor.donor_profile, quantity=1)
    row = OutboxTask.objects.get(name=notify_new_pledge.name, kwargs={"pledge_id": p.pk})
    OutboxTask.objects.filter(pk=row.pk).update(done_at=None)
    mail.outbox.clear()
    locked, release = threading.Event(), threading.Event()

    def first_delivery_still_running():
        try:
            with transaction.atomic():
                OutboxTask.objects.select_for_update().get(pk=row.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=first_delivery_still_running)
    thread.start()
    try:
        assert locked.wait(10)
        assert outbox.run(row.pk) is False
        assert mail.outbox == []
    finally:
        release.set()
        thread.join()

    assert outbox.run(row.pk) is True  # the first one died without marking it done
    assert len(mail.outbox) == 1


@pytest.mark.django_db(transaction=True)
def test_a_task_that_commits_itself_runs_once_under_the_rows_advisory_lock():
    """The payments (and the import) open their own transactions: a second
    delivery while the first runs does nothing, and a done row stays done."""
    row = OutboxTask.objects.create(name=pay_distribution.name, kwargs={"distribution_id": 0, "by_id": None})
    key = [outbox.ADVISORY_NAMESPACE, row.pk]
    locked, release = threading.Event(), threading.Event()

    def first_delivery_still_running():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s, %s)", key)
                locked.set()
                release.wait(10)
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)
        finally:
            connection.close()

    thread = threading.Thread(target=first_delivery_still_running)
    thread.start()
    try:
        assert locked.wait(10)
        assert outbox.run(row.pk) is False
        row.refresh_from_db()
        assert row.done_at is None
    finally:
        release.set()
        thread.join()

    assert outbox.run(row.pk) is True
    row.refresh_from_db()
    assert row.done_at is not None
    assert outbox.run(row.pk) is False


def test_the_drain_leaves_young_rows_to_their_first_send_and_forgets_old_done_ones(db, settings):
    settings.OUTBOX_RESEND_SECONDS = 60
    young = OutboxTask.objects.create(name=notify_new_pledge.name, kwargs={"pledge_id": 0})
    old_done = OutboxTask.objects.create(name=notify_new_pledge.name, kwargs={"pledge_id": 0})
    OutboxTask.objects.filter(pk=old_done.pk).update(done_at=timezone.now() - timedelta(days=8))

    assert outbox.drain() == 0

    young.refresh_from_db()
    assert young.sent_at is None and young.resends == 0
    assert not OutboxTask.objects.filter(pk=old_done.pk).exists()


def test_nothing_is_sent_to_celery_except_through_the_outbox():
    """Every task a change asks for goes through sun_commune.outbox.enqueue."""
    sending = re.compile(r"\.(delay|apply_async|send_task)\(")
    offenders = []
    for app_dir in ("sun_commune", "households", "donations", "cooperatives", "portal"):
        for path in (ROOT / app_dir).rglob("*.py"):
            if path.name in ("outbox.py", "celery.py") or "migrations" in path.parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if sending.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


# --- The journey: a Redis of its own, stopped mid-way -------------------------------------------


class OwnRedis:
    """A redis-server of this test's own on a free port, keeping nothing on
    disk: killed, it loses every queued task and kept page."""

    def __init__(self, workdir: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=0.2).ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def kill(self):
        self.process.kill()
        self.process.wait(timeout=10)

    def queued(self, queue: str) -> int:
        return redis.Redis.from_url(self.url).llen(queue)


def wait_until(what, predicate, worker=None, log_path=None, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        if worker is not None:
            assert worker.poll() is None, log_path.read_text(errors="replace")[-3000:]
        time.sleep(0.1)
    raise AssertionError(
        f"timed out waiting for {what}\n" + (log_path.read_text(errors="replace")[-3000:] if log_path else "")
    )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_pages_and_mail_survive_redis_stopped_mid_journey(
    areas, need_a, donor, secretary_a, client_of, cache_at, broker_at, settings, tmp_path
):
    own = OwnRedis(tmp_path)
    own.start()
    queue = f"sun_commune_test_outage_{uuid.uuid4().hex[:8]}"
    old_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    worker = None
    try:
        cache_at(own.url)
        broker_at(own.url)
        settings.REDIS_URL = settings.CELERY_BROKER_URL = own.url
        settings.REDIS_RETRY_SECONDS = 1
        visitor, donor_client = Client(), client_of(donor)
        tag = uuid.uuid4().hex[:8]
        timings = {}

        def pages(phase: str) -> int:
            rendered = 0
            started = time.monotonic()
            for path in ("/", "/needs/", f"/needs/{need_a.pk}/", "/ledger/", "/accounts/login/"):
                assert visitor.get(path).status_code == 200, (phase, path)
                rendered += 1
            for path in ("/needs/", f"/needs/{need_a.pk}/", "/my/pledges/"):
                page = donor_client.get(path)
                assert page.status_code == 200 and page.wsgi_request.user == donor, (phase, path)
                rendered += 1
            timings[phase] = (time.monotonic() - started) / rendered
            return rendered

        def journey(phase: str) -> int:
            rendered = pages(phase)
            pledged = donor_client.post(
                f"/needs/{need_a.pk}/pledge/", {"quantity": "1", "message": f"{phase}-{tag}"}, follow=True
            )
            assert pledged.status_code == 200 and pledged.redirect_chain, phase
            return rendered + 1

        pages("cold")
        journey("up")  # the GET pages from what Redis kept
        assert own.queued(queue) == 1  # the village's mail about the first pledge, in Redis only

        own.kill()  # mid-journey: the queued mail goes with it

        rendered_down = journey("down")
        secretary = Client()
        logged_in = secretary.post("/accounts/login/", {"username": "secretary_a", "password": factories.PASSWORD})
        assert logged_in.status_code == 302
        assert secretary.get("/village/needs/").status_code == 200
        rendered_down += 2
        health = visitor.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        waiting = OutboxTask.objects.filter(name=notify_new_pledge.name, done_at__isnull=True)
        assert sorted(row.kwargs["pledge_id"] for row in waiting) == sorted(
            need_a.pledges.filter(message__endswith=tag).values_list("pk", flat=True)
        ), "both mails wait in the outbox: the one lost from Redis and the one enqueued while it was down"

        own.start()  # empty: nothing of before survived in it
        assert own.queued(queue) == 0
        mail_dir = tmp_path / "mail"
        mail_dir.mkdir()
        log_path = tmp_path / "worker.log"
        worker = start_worker(  # drains the outbox as it starts
            queue,
            mail_dir,
            log_path,
            REDIS_URL=own.url,
            CACHE_URL=own.url,
            CELERY_BROKER_URL=own.url,
            OUTBOX_RESEND_SECONDS="0",
        )
        wait_until("the outbox drained", lambda: not waiting.all().exists(), worker, log_path)

        # Deliveries again (a drain that overlapped, a retry): each does nothing.
        for row in OutboxTask.objects.filter(name=notify_new_pledge.name):
            assert outbox.send(row.pk)
        with transaction.atomic():
            outbox.enqueue(send_password_reset, user_id=donor.pk)  # last in the queue: all before it ran
        wait_until("the last mail", lambda: any(donor.email in m["To"] for m in sent_mail(mail_dir)), worker, log_path)

        about = [m.get_body(("plain",)).get_content() for m in sent_mail(mail_dir) if secretary_a.email in m["To"]]
        delivered = {phase: sum(f"{phase}-{tag}" in body for body in about) for phase in ("up", "down")}
        assert delivered == {"up": 1, "down": 1}, delivered
        print(
            f"\nRedis stopped: {rendered_down} pages rendered, all 200 "
            f"(a GET {timings['up'] * 1000:.0f} ms with Redis, {timings['down'] * 1000:.0f} ms without, "
            f"{timings['cold'] * 1000:.0f} ms rendered afresh); "
            f"after it came back: {sum(delivered.values())} mails delivered, each once"
        )
    finally:
        app.conf.task_default_queue = old_queue
        if worker is not None:
            stop_worker(worker)
        if own.process.poll() is None:
            own.kill()
