"""ops/nginx.conf, the production proxy (issue 14, finding 2), run as
shipped (only its placeholders filled in) in front of a live test server:
it serves the ledger's files and static files itself, compresses the
ledger, refuses bodies larger than an upload, sends plain HTTP to HTTPS and
passes pages through. Needs Debian's nginx (`apt-get install nginx-light`)."""

import gzip
import http.client
import socket
import ssl
from pathlib import Path

import pytest
from django.conf import settings

from donations import downloads, publication
from donations.services import money
from tools.nginx_local import NGINX, running, self_signed, site_config

from .ledger_support import bulk_goods_in, yesterday

pytestmark = pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nginx(live_server, tmp_path):
    cert, key = self_signed(tmp_path)
    static = tmp_path / "static"
    static.mkdir()
    (static / "site.0123456789ab.css").write_text("body { color: black; }\n" * 100)
    http_port, https_port = free_port(), free_port()
    site = site_config(
        upstream=live_server.url.removeprefix("http://").replace("localhost", "127.0.0.1"),
        http_port=http_port,
        https_port=https_port,
        static=static,
        files_root=settings.LEDGER_FILES_ROOT,
        cert=cert,
        key=key,
    )
    with running(tmp_path, site, https_port):
        yield http_port, https_port, tmp_path


def fetch(port, path, *, tls=True, method="GET", headers=None, body=None):
    if tls:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ssl._create_unverified_context(), timeout=10)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers={"Host": "localhost", **(headers or {})})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


@pytest.mark.django_db(transaction=True)
def test_nginx_serves_the_ledger_files_and_static_files_itself_and_buffers_pages(areas, county_reviewer, nginx):
    http_port, https_port, nginx_dir = nginx
    bulk_goods_in(50, areas.village_a)
    publication.publish_all()
    files = downloads.write_files()
    # A second batch the files do not hold yet: the app would write and serve it.
    money.record_gift(by=county_reviewer, area=areas.yanting, amount="200", reference="V-2", occurred_on=yesterday())
    publication.publish_all()

    response, body = fetch(https_port, "/ledger/ledger.jsonl")
    assert response.status == 200
    assert body == (files.directory / "ledger.jsonl").read_bytes() and body.count(b"\n") == 50  # from disk
    assert response.getheader("Content-Type") == "application/x-ndjson; charset=utf-8"
    assert response.getheader("Content-Disposition") == 'attachment; filename="ledger.jsonl"'
    assert response.getheader("Cache-Control") == "public, max-age=60"
    response, body = fetch(https_port, "/ledger/ledger.csv", headers={"Accept-Encoding": "gzip"})
    assert response.getheader("Content-Encoding") == "gzip"
    assert gzip.decompress(body) == (files.directory / "ledger.csv").read_bytes()
    response, body = fetch(https_port, "/ledger/checkpoint.json")
    assert response.getheader("Content-Type") == "application/json"
    assert response.getheader("Content-Disposition") is None and b'"batch": 1' in body
    assert fetch(https_port, "/ledger/state.json")[0].status == 404  # the app's URL conf: not a download

    response, body = fetch(https_port, "/static/site.0123456789ab.css")
    assert response.status == 200 and response.getheader("Cache-Control") == "public, max-age=31536000, immutable"

    response, body = fetch(https_port, "/")  # a page, from the app
    assert response.status == 200 and b"<html" in body
    fetch(https_port, "/ledger/?q=%E9%BB%84%E5%9B%BD%E5%9F%BA&id_number=510700", headers={"Referer": "/?q=x510700"})

    response, _body = fetch(https_port, "/accounts/login/", method="POST", headers={"Content-Length": str(10 << 20)})
    assert response.status == 413  # larger than any upload: refused before gunicorn sees it
    response, _body = fetch(https_port, "/households/imports/new/", method="POST", body=b"x" * (10 << 20))
    assert response.status == 403  # passed on: the register's import takes larger files (the app refuses its CSRF)

    response, _body = fetch(http_port, "/ledger/", tls=False)
    assert response.status == 301 and response.getheader("Location") == "https://localhost/ledger/"

    logged = (nginx_dir / "access.log").read_text()
    assert '"GET /ledger/ HTTP/1.1" 200' in logged and '"GET /ledger/ledger.jsonl HTTP/1.1" 200' in logged
    assert "510700" not in logged and "%E9" not in logged.upper() and "黄" not in logged  # no query, no Referer
