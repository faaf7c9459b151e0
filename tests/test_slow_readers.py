"""A slow reader of the ledger cannot take the demo's server down (issue 14,
finding 2): gunicorn as the demo runs it (ops/run-demo.sh, ops/gunicorn.conf.py)
answers GET / while a download of ledger.jsonl stalls, and the stalled
download is not cut by the worker timeout. With sync workers both failed:
the worker that sent the file was busy until the reader finished, then
killed (WORKER TIMEOUT) half-way."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from donations import downloads, publication

from .ledger_support import bulk_goods_in

ROOT = Path(__file__).resolve().parent.parent


def demo_threads() -> str:
    match = re.search(r'GUNICORN_THREADS="\$\{GUNICORN_THREADS:-(\d+)\}"', (ROOT / "ops" / "run-demo.sh").read_text())
    assert match, "ops/run-demo.sh sets GUNICORN_THREADS for the demo"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def demo_server(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres:///{settings.DATABASES['default']['NAME']}",
        "LEDGER_FILES_ROOT": str(settings.LEDGER_FILES_ROOT),
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",  # one worker: a single stalled download would hold a sync server whole
        "GUNICORN_THREADS": demo_threads(),
        "GUNICORN_TIMEOUT": "3",
    }
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "sun_commune.wsgi:application",
                "-c",
                "ops/gunicorn.conf.py",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, log_path.read_text()
                time.sleep(0.3)
        yield port, log_path
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_a_stalled_ledger_download_neither_blocks_pages_nor_is_cut(areas, demo_server):
    bulk_goods_in(20_000, areas.village_a)
    publication.publish_all()
    files = downloads.write_files()
    expected = (files.directory / "ledger.jsonl").read_bytes()
    assert len(expected) > 8_000_000  # more than the kernel's socket buffers hold
    port, log_path = demo_server

    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    reader.settimeout(30)
    reader.connect(("127.0.0.1", port))
    reader.sendall(b"GET /ledger/ledger.jsonl HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    received = bytearray(reader.recv(1024))
    stalled_until = time.monotonic() + 5  # longer than the worker timeout

    answered = []
    while time.monotonic() < stalled_until:
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as response:
            assert response.status == 200
            response.read()
        answered.append(time.monotonic() - started)
        time.sleep(0.2)

    while chunk := reader.recv(1 << 16):
        received += chunk
    reader.close()
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == expected
    assert len(answered) >= 5 and max(answered) < 2
    assert "WORKER TIMEOUT" not in log_path.read_text()
