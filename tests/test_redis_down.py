"""Redis can go away (issue 14, finding 7): cache errors are misses and
sessions are read from PostgreSQL."""

import logging
import socket
import time

import pytest
from django.core.cache import cache, caches

from . import factories

NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens there


@pytest.fixture
def cache_at(settings):
    """``cache_at(url)``: the default cache (and sessions) on the Redis at ``url``."""

    def point(url):
        settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": url}}
        return caches["default"]

    return point


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
