"""Mail goes out from a real Celery worker: a separate process that reads the
task from Redis, looks the rows up in PostgreSQL (the test database) and
sends through Django's file e-mail backend."""

import email
import email.policy
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings

from donations.services import pledges
from sun_commune.celery import app

from . import factories
from .factories import pledge

ROOT = Path(__file__).resolve().parent.parent
WAIT_SECONDS = 20

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def start_worker(queue: str, mail_dir: Path, log_path: Path, **env) -> subprocess.Popen:
    """A Celery worker process on ``queue`` and the test database, writing
    mail into ``mail_dir``; ``env`` adds to (or overrides) its environment."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CELERY_QUEUE": queue,
        "EMAIL_URL": f"file://{mail_dir}",
        "DATABASE_URL": f"postgres:///{settings.DATABASES['default']['NAME']}",
        "DB_CONN_MAX_AGE": "0",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    celery = Path(sys.executable).with_name("celery")
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [
                str(celery),
                "-A",
                "sun_commune",
                "worker",
                "--pool=solo",
                "--concurrency=1",
                "-Q",
                queue,
                "--without-heartbeat",
                "--without-mingle",
                "--without-gossip",
                "--loglevel=INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_worker(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def worker(django_db_setup, tmp_path_factory):
    """A Celery worker on a queue of its own, on the test database, writing
    mail into a directory; stopped when the module's tests are done."""
    queue = f"sun_commune_test_{uuid.uuid4().hex[:12]}"
    mail_dir = tmp_path_factory.mktemp("worker-mail")
    log_path = mail_dir.parent / f"{mail_dir.name}-worker.log"
    process = start_worker(queue, mail_dir, log_path)
    try:
        yield SimpleNamespace(queue=queue, mail_dir=mail_dir, process=process, log_path=log_path)
    finally:
        stop_worker(process)


@pytest.fixture
def to_worker(worker):
    """Send this test's tasks to the worker instead of running them in place."""
    old = app.conf.task_always_eager, app.conf.task_default_queue
    app.conf.task_always_eager = False
    app.conf.task_default_queue = worker.queue
    try:
        yield worker
    finally:
        app.conf.task_always_eager, app.conf.task_default_queue = old


def sent_mail(mail_dir: Path) -> list:
    """Every message the file backend wrote (several to a file, separated by a
    line of 79 dashes)."""
    messages = []
    for path in sorted(mail_dir.glob("*.log")):
        for chunk in path.read_bytes().split(b"\n" + b"-" * 79 + b"\n"):
            if chunk.strip():
                messages.append(email.message_from_bytes(chunk.lstrip(), policy=email.policy.default))
    return messages


def wait_for_mail(worker, *, to: str, containing: str):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        for message in sent_mail(worker.mail_dir):
            if to in str(message["To"]) and containing in message.get_body(("plain",)).get_content():
                return message
        assert worker.process.poll() is None, worker.log_path.read_text(errors="replace")[-3000:]
        time.sleep(0.2)
    raise AssertionError(
        f"no mail to {to} about {containing!r} within {WAIT_SECONDS}s; worker log:\n"
        + worker.log_path.read_text(errors="replace")[-3000:]
    )


def test_the_worker_mails_the_secretary_when_a_need_is_published(to_worker, areas, secretary_a, county_reviewer):
    title = f"Worker blankets {uuid.uuid4().hex[:8]}"

    need = factories.published_need(village=areas.village_a, by=secretary_a, reviewer=county_reviewer, title=title)

    message = wait_for_mail(to_worker, to=secretary_a.email, containing=title)
    assert title in str(message["Subject"])
    assert f"/needs/{need.pk}/" in message.get_body(("plain",)).get_content()


def test_the_worker_tells_the_donor_the_gift_arrived(to_worker, areas, secretary_a, county_reviewer, donor):
    title = f"Worker stoves {uuid.uuid4().hex[:8]}"
    need = factories.published_need(village=areas.village_a, by=secretary_a, reviewer=county_reviewer, title=title)
    p = pledge(need, donor, 4)

    pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=3)

    message = wait_for_mail(to_worker, to=donor.email, containing=title)
    assert "3" in message.get_body(("plain",)).get_content()
    wait_for_mail(to_worker, to=secretary_a.email, containing=title)  # the new pledge, mailed to the village
