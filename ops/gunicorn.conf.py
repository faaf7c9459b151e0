"""gunicorn settings: sync workers, 2 × cores + 1 unless WEB_CONCURRENCY says
otherwise; logs to stderr. Used by `make demo` and in production."""

import multiprocessing
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
# A worker is recycled now and then to bound any leak, not every few seconds:
# at a few hundred requests a second, 2,000 requests meant a restart of a
# worker every few seconds, and each restart re-imported Django (a second of
# CPU on a small machine) while requests queued behind it (`make bench` saw
# 56 restarts in seven minutes and its p99 latencies with them). The app is
# loaded once in the master (preload_app) so that a recycled worker is a fork,
# not a fresh import; a deployment of new code restarts gunicorn (not HUP).
max_requests = 20000
max_requests_jitter = 2000
preload_app = True
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
