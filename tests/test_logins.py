"""Finding 8 of issue 14: logins are throttled per account and per client
address (django-axes, counted in PostgreSQL), the login page says why, staff
are told once per lockout; password-reset mails are capped per address and
per client. Finding 10 (part): the login page refuses a large body before
reading it."""

import io
from itertools import count

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core import mail
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client
from django.urls import reverse

from sun_commune.models import AuditEntry, MailRequest

from . import factories

pytestmark = pytest.mark.django_db

PASSWORD = "right-horse-battery"
_numbers = count()


def account(**fields):
    user = factories.UserFactory(username=f"villager{next(_numbers)}", **fields)
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture
def site_staff(db):
    return account(is_staff=True, email="bureau-it@example.org")


def log_in(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def locked(response) -> bool:
    return response.status_code == 429 and b'id="login-locked-out"' in response.content


def test_thirty_wrong_passwords_lock_the_account_and_staff_hear_once(site_staff, django_capture_on_commit_callbacks):
    victim = account()
    attacker = Client(REMOTE_ADDR="203.0.113.7")

    with django_capture_on_commit_callbacks(execute=True):
        answers = [log_in(attacker, victim.username, f"guess-{n}") for n in range(30)]

    limit = settings.LOGIN_FAILURES_PER_ACCOUNT
    assert [r.status_code for r in answers[: limit - 1]] == [200] * (limit - 1)  # the form again, with its error
    assert all(locked(r) for r in answers[limit:])
    # Even the right password is refused now, from anywhere.
    assert locked(log_in(Client(REMOTE_ADDR="198.51.100.1"), victim.username, PASSWORD))
    # Another account from the attacker's address still logs in (the address is under its own limit).
    other = account()
    assert log_in(attacker, other.username, PASSWORD).status_code == 302

    entries = AuditEntry.objects.filter(action="login.locked_out")
    assert [(e.changes["reason"], e.object_id) for e in entries] == [("account", str(victim.pk))]
    assert entries[0].ip_address == "203.0.113.7"
    staff_mails = [m for m in mail.outbox if m.to == [site_staff.email]]
    assert len(staff_mails) == 1 and victim.username in staff_mails[0].body


def test_wrong_passwords_across_twenty_accounts_lock_the_address(site_staff):
    accounts = [account() for _ in range(21)]
    attacker = Client(REMOTE_ADDR="203.0.113.9")

    for user in accounts[:20]:
        for n in range(3):
            log_in(attacker, user.username, f"guess-{n}")

    # No account reached its own limit, but the address did.
    assert not any(locked(log_in(Client(REMOTE_ADDR="198.51.100.2"), u.username, PASSWORD)) for u in accounts[:1])
    assert locked(log_in(attacker, accounts[20].username, PASSWORD))
    assert log_in(Client(REMOTE_ADDR="198.51.100.3"), accounts[20].username, PASSWORD).status_code == 302
    reasons = set(AuditEntry.objects.filter(action="login.locked_out").values_list("changes__reason", flat=True))
    assert reasons == {"address"}
    # Kept in PostgreSQL; once the address was locked, its tries were no longer recorded.
    tried = -(-settings.LOGIN_FAILURES_PER_ADDRESS // 3)
    assert AccessAttempt.objects.filter(ip_address="203.0.113.9").count() == tried


def test_the_client_address_is_the_one_the_trusted_proxy_saw(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    user = account()
    behind_proxy = Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.44")

    log_in(behind_proxy, user.username, "wrong")

    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["192.0.2.44"]


def test_the_lockout_message_is_translated():
    victim = account()
    client = Client(REMOTE_ADDR="203.0.113.8")
    for n in range(settings.LOGIN_FAILURES_PER_ACCOUNT):
        log_in(client, victim.username, f"guess-{n}")

    client.cookies["django_language"] = "zh-hans"
    response = log_in(client, victim.username, PASSWORD)

    assert locked(response)
    assert "登录" in response.content.decode() and "Too many wrong passwords" not in response.content.decode()


def test_reset_mails_to_one_address_are_capped_and_say_nothing_about_existence(django_capture_on_commit_callbacks):
    user = account(email="farmer@example.org")
    client = Client(REMOTE_ADDR="203.0.113.10")
    with django_capture_on_commit_callbacks(execute=True):
        answers = [client.post(reverse("password_reset"), {"email": "farmer@example.org"}) for _ in range(6)]
        nobody = client.post(reverse("password_reset"), {"email": "nobody@example.org"})

    cap = settings.TYPED_ADDRESS_MAILS_PER_ADDRESS
    assert len([m for m in mail.outbox if m.to == [user.email]]) == cap
    done = reverse("password_reset_done")
    assert {(r.status_code, r["Location"]) for r in [*answers, nobody]} == {(302, done)}
    assert not MailRequest.objects.filter(address_hash__contains="farmer").exists()  # no address in clear


def test_reset_mails_asked_for_from_one_client_are_capped(django_capture_on_commit_callbacks):
    users = [account(email=f"f{n}@example.org") for n in range(25)]
    client = Client(REMOTE_ADDR="203.0.113.11")

    with django_capture_on_commit_callbacks(execute=True):
        for user in users:
            client.post(reverse("password_reset"), {"email": user.email})

    assert len(mail.outbox) == settings.TYPED_ADDRESS_MAILS_PER_CLIENT
    # Another client is not held back by that one.
    with django_capture_on_commit_callbacks(execute=True):
        Client(REMOTE_ADDR="198.51.100.4").post(reverse("password_reset"), {"email": users[-1].email})
    assert len(mail.outbox) == settings.TYPED_ADDRESS_MAILS_PER_CLIENT + 1


class _Body(io.RawIOBase):
    """A request body that counts what is read of it."""

    def __init__(self, size):
        self.size, self.read_bytes = size, 0

    def read(self, n=-1):
        n = self.size - self.read_bytes if n is None or n < 0 else min(n, self.size - self.read_bytes)
        self.read_bytes += n
        return b"a" * n

    def readline(self, *args):
        return self.read(*args)


def _post(path, body, content_type="application/x-www-form-urlencoded"):
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "203.0.113.12",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(body.size),
        "wsgi.input": body,
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    status = []
    content = b"".join(WSGIHandler()(environ, lambda s, headers: status.append(s)))
    return status[0], content


def test_a_fifty_megabyte_post_to_the_login_page_is_refused_unread():
    body = _Body(50 * 1024 * 1024)

    status, content = _post(reverse("login"), body)

    assert status.startswith("413")
    assert body.read_bytes == 0
    assert b"64 KB" in content


def test_a_view_that_takes_files_accepts_a_photo_sized_body(secretary_a, need_a, donor):
    body = _Body(3 * 1024 * 1024)

    status, _content = _post("/village/pledges/1/confirm/", body, "multipart/form-data; boundary=x")

    assert not status.startswith("413")  # past the cap (to the login redirect: nobody is logged in)
