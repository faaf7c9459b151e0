"""Does the server stay up while slow clients download the ledger? (run by
hand, not a test)

    DEBUG=1 .venv/bin/python tools/bench_slow_readers.py [--entries 20000] [--readers 5]
        [--rate 200000] [--seconds 20] [--threads N] [--nginx] [--keep]

Builds a throw-away database (sun_commune_benchslow: the ledger publisher's
bench data, N published entries), writes the ledger's download files,
starts gunicorn with ops/gunicorn.conf.py (DEBUG=0, bench-only keys;
``--threads`` sets GUNICORN_THREADS, i.e. gthread workers; ``--nginx``
puts ops/nginx.conf in front, over TLS, as in production), then for
``--seconds``: ``--readers`` threads each download /ledger/ledger.jsonl
over and over at ``--rate`` bytes a second (a small receive buffer and a
sleep between reads, so the kernel's buffers cannot swallow the file), while
one client asks for GET / back to back. Prints GET /'s p50, p99 and worst
time, how many failed or timed out, and how many downloads finished whole.
The same is measured first with no slow reader, as the floor.
"""

import argparse
import contextlib
import importlib.util
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import bench_publication  # noqa: E402 -- the same throw-away ledger data
import nginx_local  # noqa: E402

from bench.env import SECRET_ENV  # noqa: E402

bench_publication.DB_NAME = "sun_commune_benchslow"
REQUEST_TIMEOUT = 10.0
TLS = ssl._create_unverified_context()  # nginx's throw-away certificate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(entries: int, files_root: Path) -> None:
    os.environ.update({**SECRET_ENV, "LEDGER_FILES_ROOT": str(files_root)})
    bench_publication.create_database()
    bench_publication.setup_django()
    bench_publication.seed(entries)
    from donations import publication

    publication.publish_all()
    if importlib.util.find_spec("donations.downloads"):  # absent before the downloads were files
        from donations import downloads

        downloads.write_files()


def start_server(port: int, files_root: Path, threads: int | None, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        **SECRET_ENV,
        "DATABASE_URL": f"postgres:///{bench_publication.DB_NAME}",
        "DJANGO_SETTINGS_MODULE": "sun_commune.settings",
        "LEDGER_FILES_ROOT": str(files_root),
        "BIND": f"127.0.0.1:{port}",
    }
    if threads:
        env["GUNICORN_THREADS"] = str(threads)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "sun_commune.wsgi:application", "-c", "ops/gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise SystemExit(f"gunicorn did not start; see {log_path}")


def slow_download(port: int, path: str, rate: int, stop: threading.Event, tls: bool) -> tuple[int, bool]:
    """One download at ``rate`` bytes/s; returns (bytes read, whole?)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # before connect: a small window
    sock.settimeout(60)
    sock.connect(("127.0.0.1", port))
    if tls:
        sock = TLS.wrap_socket(sock)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    chunk, tick = rate // 20, 0.05
    data = bytearray()
    try:
        while not stop.is_set():
            started = time.monotonic()
            got = sock.recv(chunk)
            if not got:
                break
            data += got
            time.sleep(max(0.0, tick * len(got) / chunk - (time.monotonic() - started)))
    except OSError:
        pass
    finally:
        sock.close()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        None,
    )
    whole = head.startswith(b"HTTP/1.1 200") and (length is None or len(body) == length) and body.endswith(b"\n")
    return len(body), whole


def reader(port, rate, stop, results, tls):
    while not stop.is_set():
        results.append(slow_download(port, "/ledger/ledger.jsonl", rate, stop, tls))


def measure_home(port: int, seconds: float, tls: bool) -> dict:
    times, failures = [], 0
    end = time.monotonic() + seconds
    url = f"https://localhost:{port}/" if tls else f"http://127.0.0.1:{port}/"
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT, context=TLS if tls else None) as response:
                response.read()
                ok = response.status == 200
        except OSError:
            ok = False
        elapsed = time.monotonic() - started
        if ok:
            times.append(elapsed)
        else:
            failures += 1
            times.append(max(elapsed, REQUEST_TIMEOUT))  # a failure counts as the slowest answer
    times.sort()
    return {
        "requests": len(times),
        "failed": failures,
        "p50_ms": round(1000 * statistics.median(times), 1),
        "p99_ms": round(1000 * times[min(len(times) - 1, int(len(times) * 0.99))], 1),
        "max_ms": round(1000 * times[-1], 1),
    }


def run(port: int, args) -> tuple[dict, dict, list]:
    """GET / alone, then with the slow readers; and how their downloads ended."""
    tls = args.nginx
    measure_home(port, 5, tls)  # warm-up
    alone = measure_home(port, args.seconds / 2, tls)
    stop, results = threading.Event(), []
    readers = [
        threading.Thread(target=reader, args=(port, args.rate, stop, results, tls), daemon=True)
        for _ in range(args.readers)
    ]
    for thread in readers:
        thread.start()
    time.sleep(1)
    loaded = measure_home(port, args.seconds, tls)
    stop.set()
    for thread in readers:
        thread.join(timeout=70)
    return alone, loaded, results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--readers", type=int, default=5)
    parser.add_argument("--rate", type=int, default=200_000, help="bytes a second per reader")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--threads", type=int, default=None, help="GUNICORN_THREADS (gthread workers)")
    parser.add_argument("--nginx", action="store_true", help="put ops/nginx.conf in front of gunicorn")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    files_root = Path(tempfile.mkdtemp(prefix="sun-commune-slow-readers-"))
    log_path = Path(tempfile.gettempdir()) / "sun-commune-slow-readers-gunicorn.log"
    prepare(args.entries, files_root)
    size = os.path.getsize(files_root / "current" / "ledger.jsonl") if (files_root / "current").exists() else 0
    port = free_port()
    server = start_server(port, files_root, args.threads, log_path)
    try:
        with contextlib.ExitStack() as stack:
            if args.nginx:
                public = free_port()
                nginx_dir = Path(tempfile.mkdtemp(prefix="sun-commune-slow-readers-nginx-"))
                cert, key = nginx_local.self_signed(nginx_dir)
                site = nginx_local.site_config(
                    upstream=f"127.0.0.1:{port}",
                    http_port=free_port(),
                    https_port=public,
                    static=ROOT / "staticfiles",
                    files_root=files_root,
                    cert=cert,
                    key=key,
                )
                stack.enter_context(nginx_local.running(nginx_dir, site, public))
            else:
                public = port
            alone, loaded, results = run(public, args)
    finally:
        server.terminate()
        server.wait(timeout=30)
        if not args.keep:
            bench_publication.drop_database()
    timeouts = log_path.read_text().count("WORKER TIMEOUT")
    mode = (f"gthread, {args.threads} threads" if args.threads else "sync") + (", behind nginx" if args.nginx else "")
    print(f"gunicorn {mode}; ledger.jsonl {size / 1e6:.1f} MB ({args.entries:,} entries)")
    print(f"GET / alone:            {alone}")
    print(f"GET / with {args.readers} readers at {args.rate / 1000:.0f} kB/s: {loaded}")
    print(
        f"downloads: {len(results)} ended, {sum(whole for _n, whole in results)} whole (the others cut at the end "
        f"of the run or by the server); WORKER TIMEOUT in the log: {timeouts}"
    )


if __name__ == "__main__":
    main()
