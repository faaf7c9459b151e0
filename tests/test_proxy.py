"""ops/nginx.conf, the production proxy (issue 14, finding 2), run as
shipped (only its placeholders filled in) in front of a live test server:
it serves the ledger's files and static files itself, compresses the
ledger, refuses bodies larger than an upload, sends plain HTTP to HTTPS and
passes pages through. Needs Debian's nginx (`apt-get install nginx-light`)."""

import gzip
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings

from donations import downloads, publication
from donations.services import money

from .ledger_support import bulk_goods_in, yesterday

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def site_config(*, upstream: str, http_port: int, https_port: int, static: Path, cert: Path, key: Path) -> str:
    """ops/nginx.conf with its placeholders filled in (each must be there)."""
    text = (ROOT / "ops" / "nginx.conf").read_text()
    for placeholder, value in [
        ("server 127.0.0.1:8000;", f"server {upstream};"),
        ("    listen [::]:80;\n", ""),
        ("    listen [::]:443 ssl http2;\n", ""),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("/etc/ssl/sun-commune/fullchain.pem", str(cert)),
        ("/etc/ssl/sun-commune/privkey.pem", str(key)),
        ("/var/lib/sun-commune/ledger-files", str(settings.LEDGER_FILES_ROOT)),
        ("/srv/sun-commune/staticfiles/", f"{static}/"),
    ]:
        assert placeholder in text, placeholder
        text = text.replace(placeholder, value)
    return text


def main_config(tmp: Path, site: Path) -> str:
    temp = "\n".join(
        f"    {kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
{"user root;" if os.geteuid() == 0 else ""}
daemon off;
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"};
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    access_log {tmp / "access.log"};
{temp}
    include {site};
}}
"""


@pytest.fixture
def nginx(live_server, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    static = tmp_path / "static"
    static.mkdir()
    (static / "site.0123456789ab.css").write_text("body { color: black; }\n" * 100)
    http_port, https_port = free_port(), free_port()
    site = tmp_path / "site.conf"
    upstream = live_server.url.removeprefix("http://").replace("localhost", "127.0.0.1")
    site.write_text(
        site_config(upstream=upstream, http_port=http_port, https_port=https_port, static=static, cert=cert, key=key)
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(main_config(tmp_path, site))
    checked = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(conf)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, (tmp_path / "error.log").read_text()
                time.sleep(0.1)
        yield http_port, https_port
    finally:
        process.terminate()
        process.wait(timeout=10)


def fetch(port, path, *, tls=True, method="GET", headers=None):
    if tls:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ssl._create_unverified_context(), timeout=10)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, headers={"Host": "localhost", **(headers or {})})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


@pytest.mark.django_db(transaction=True)
def test_nginx_serves_the_ledger_files_and_static_files_itself_and_buffers_pages(areas, county_reviewer, nginx):
    http_port, https_port = nginx
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

    response, _body = fetch(https_port, "/accounts/login/", method="POST", headers={"Content-Length": str(10 << 20)})
    assert response.status == 413  # larger than any upload: refused before gunicorn sees it

    response, _body = fetch(http_port, "/ledger/", tls=False)
    assert response.status == 301 and response.getheader("Location") == "https://localhost/ledger/"
