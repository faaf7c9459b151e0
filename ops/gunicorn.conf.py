"""gunicorn settings: sync workers, 2 × cores + 1 unless WEB_CONCURRENCY says
otherwise (GUNICORN_THREADS > 1: gthread workers with that many threads
each); logs to stderr. Used by `make demo` and in production."""

import multiprocessing
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
# Sync workers behind nginx, which buffers every answer and serves the
# ledger's files itself (ops/nginx.conf), so no slow client holds a worker.
# With no proxy in front (the demo), a slow reader of a download holds the
# worker that sends it; gthread workers give it a thread instead, and the
# heartbeat does not wait for that thread, so a long download is not cut by
# `timeout` either (tools/bench_slow_readers.py measures both).
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
# A worker is recycled now and then to bound any leak, not every minute:
# kept public pages are served so fast that a small max_requests restarts
# every worker within a minute or two under load, and while one restarts and
# warms up, requests queue behind it — `make bench` saw the p99 of such a
# page grow many times over. The app is
# loaded once in the master (preload_app) so that a recycled worker is a
# fork, not a fresh import; a deployment of new code restarts gunicorn.
max_requests = 200000
max_requests_jitter = 20000
preload_app = True
accesslog = "-"
errorlog = "-"
# Access log lines without query strings or a Referer's query: the register's
# searches are GET forms, and an ID number or a name must never reach a log.
logger_class = "sun_commune.accesslog.AccessLogger"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
