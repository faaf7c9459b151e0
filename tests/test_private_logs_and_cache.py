"""No private data in logs or shared caches (issue 14, finding 6): the
register's ID-number and name searches are GET forms, so the access log
keeps no query string (nor a Referer's, nor a redirect's); the parts of
pages kept in Redis that show a household's name or ID number, or a donor's
pledges, are encrypted there."""

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from gunicorn.config import Config

from households import services
from sun_commune import pagecache

from . import factories
from .register_support import valid_id

ROOT = Path(__file__).resolve().parent.parent
ID_NUMBER = valid_id(731)
NAME = "黄国基"


def private_texts(*extra) -> list[bytes]:
    """The private values as they could appear in a log or a cache value:
    plain, URL-encoded (both ways) and pickled."""
    texts = []
    for value in (ID_NUMBER, NAME, *extra):
        texts += [value.encode(), urllib.parse.quote(value).encode(), urllib.parse.quote_plus(value).encode()]
    return texts


def assert_none_in(blob: bytes, texts: list[bytes], where: str) -> None:
    found = [t for t in texts if t in blob]
    assert not found, f"{where} holds {found!r}"


def search_url(path="/households/"):
    return f"{path}?id_number={ID_NUMBER}&q={urllib.parse.quote(NAME)}&after=9"


# --- The access log -------------------------------------------------------------------------


def gunicorn_config(**overrides) -> Config:
    """gunicorn's configuration as ops/gunicorn.conf.py makes it."""
    cfg = Config()
    namespace = {"__file__": str(ROOT / "ops/gunicorn.conf.py")}
    exec(compile((ROOT / "ops/gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)
    for name, value in {**namespace, **overrides}.items():
        if name in cfg.settings:
            cfg.set(name, value)
    return cfg


@pytest.mark.parametrize(
    "log_format",
    [
        None,  # gunicorn's default: the request line and the Referer
        '%(h)s "%(r)s" %(U)s q=%(q)s %(s)s "%(f)s" "%({referer}i)s" "%({location}o)s" "%({raw_uri}e)s"',
    ],
)
def test_the_access_log_holds_no_id_number_nor_name(tmp_path, log_format):
    log_file = tmp_path / "access.log"
    overrides = {"accesslog": str(log_file), "errorlog": str(tmp_path / "error.log")}
    if log_format:
        overrides["access_log_format"] = log_format
    cfg = gunicorn_config(**overrides)
    logger = cfg.logger_class(cfg)
    url = search_url()
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": url,
        "PATH_INFO": "/households/",
        "QUERY_STRING": url.split("?", 1)[1],
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_REFERER": "https://sun.example" + search_url("/households/export/"),
        "HTTP_USER_AGENT": "test",
    }
    req = SimpleNamespace(headers=[("REFERER", environ["HTTP_REFERER"])])
    resp = SimpleNamespace(status="302 Found", sent=0, headers=[("Location", "/accounts/login/?next=" + url)])
    logger.access(resp, req, environ, timedelta(milliseconds=12))
    for handler in logger.access_log.handlers:
        handler.flush()
    logged = log_file.read_bytes()
    assert b"/households/" in logged  # the path is still there
    assert_none_in(logged, private_texts(), "the access log")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_gunicorn_logs_the_register_search_without_its_query(tmp_path):
    """ops/gunicorn.conf.py as deployed, one worker, the searches asked of it
    (an anonymous visitor is sent to the login page with the search in
    ``next``: the request line, the Referer and the redirect all hold it)."""
    port = free_port()
    log_file = tmp_path / "gunicorn.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "DEBUG": "1",
    }
    with log_file.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "ops/gunicorn.conf.py", "sun_commune.wsgi"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            answered = 0
            while time.monotonic() < deadline and answered < 2:
                for path in ("/households/", "/households/export/"):
                    request = urllib.request.Request(
                        f"http://127.0.0.1:{port}{search_url(path)}",
                        headers={"Referer": f"http://127.0.0.1:{port}{search_url()}", "Host": "localhost"},
                    )
                    opener = urllib.request.build_opener(NoRedirect)
                    try:
                        opener.open(request, timeout=5)
                    except urllib.error.HTTPError:
                        answered += 1
                    except OSError:
                        time.sleep(0.3)
            assert answered >= 2, log_file.read_text(errors="replace")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    logged = log_file.read_bytes()
    assert b"GET /households/ HTTP/1.1" in logged and b"GET /households/export/ HTTP/1.1" in logged
    assert_none_in(logged, private_texts(), "gunicorn's log")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_django_servers_request_lines_lose_their_query():
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("django.server")
    logger.addHandler(handler)
    try:
        logger.info('"%s" %s %s', f"GET {search_url()} HTTP/1.1", "200", "512")
    finally:
        logger.removeHandler(handler)
    assert records
    logged = "\n".join(r.getMessage() for r in records).encode()
    assert b"GET /households/ HTTP/1.1" in logged
    assert_none_in(logged, private_texts(), "django.server's log")


# --- What Redis holds ------------------------------------------------------------------------


def redis_values() -> dict[bytes, bytes]:
    """Every key of this test run's cache prefix and its raw value."""
    client = cache._cache.get_client()
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    return {k: client.get(k) or b"" for k in client.scan_iter(match=f"{prefix}:*", count=1000)}


def forget_this_runs_keys() -> None:
    """Only this run's keys: Redis is shared with the other runs and the
    broker, so never a FLUSHDB (``cache.clear()``)."""
    client = cache._cache.get_client()
    for k in list(client.scan_iter(match=f"{settings.CACHES['default']['KEY_PREFIX']}:*", count=1000)):
        client.delete(k)


@pytest.fixture
def kept_for_a_while(settings):
    settings.PAGE_CACHE_SECONDS = 20
    forget_this_runs_keys()
    pagecache.LOCAL.clear()
    yield
    forget_this_runs_keys()


@pytest.mark.django_db
def test_redis_holds_no_head_name_nor_id_number_of_the_register_list(
    kept_for_a_while, areas, secretary_a, county_reviewer, client_of
):
    services.create_household(by=secretary_a, village=areas.village_a, head_name=NAME, id_number=ID_NUMBER)
    client = client_of(county_reviewer)
    path = reverse("households:household-list")
    for query in ("", f"?id_number={ID_NUMBER}", f"?q={urllib.parse.quote(NAME)}"):
        page = client.get(path + query).content.decode()
        assert NAME in page  # shown to staff
    assert ID_NUMBER in page or ID_NUMBER in client.get(f"{path}?id_number={ID_NUMBER}").content.decode()
    values = redis_values()
    assert any(b"household-list" in k for k in values), list(values)
    for k, v in values.items():
        assert_none_in(k + v, private_texts(), f"Redis key {k!r}")
    # Served again from Redis alone (a fresh process), decrypted, it is the same list.
    pagecache.LOCAL.clear()
    assert NAME in client.get(path).content.decode()


@pytest.mark.django_db
def test_redis_holds_no_donors_pledges_in_clear(kept_for_a_while, need_a, donor, client_of):
    factories.pledge(need_a, donor)
    client = client_of(donor)
    assert need_a.title in client.get(reverse("donations:my-pledges")).content.decode()
    values = redis_values()
    assert any(b"my-pledges" in k for k in values), list(values)
    kept = b"".join(v for k, v in values.items() if b"my-pledges" in k)
    assert need_a.title.encode() not in kept
