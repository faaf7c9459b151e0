"""ops/nginx.conf as shipped, with its placeholders filled in, for a local
nginx of one's own (tests/test_proxy.py, tools/bench_slow_readers.py):
nothing else of the machine's nginx is used or changed."""

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate and key for localhost."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def site_config(
    *, upstream: str, http_port: int, https_port: int, static: Path, files_root: Path, cert: Path, key: Path
) -> str:
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
        ("/var/lib/sun-commune/ledger-files", str(files_root)),
        ("/srv/sun-commune/staticfiles/", f"{static}/"),
        ("/var/log/nginx/sun-commune.access.log", str(Path(cert).parent / "access.log")),
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
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    access_log {tmp / "access.log"};
{temp}
    include {site};
}}
"""


@contextmanager
def running(directory: Path, site: str, port: int):
    """nginx with ``site`` (see site_config) in ``directory``, checked with
    ``nginx -t`` first, until the block ends; ``port`` answers when it is up."""
    (directory / "site.conf").write_text(site)
    conf = directory / "nginx.conf"
    conf.write_text(main_config(directory, directory / "site.conf"))
    command = [NGINX, "-p", str(directory), "-c", str(conf)]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
    if checked.returncode != 0:
        raise RuntimeError(checked.stderr)
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((directory / "error.log").read_text()) from None
                time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)
