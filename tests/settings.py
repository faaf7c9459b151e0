"""Settings for the test suite: the real settings, on the real PostgreSQL and
Redis, with what tests must control (mail, queue, files) made local."""

import os
import tempfile

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("EMAIL_URL", "locmem://")
os.environ.setdefault("CELERY_QUEUE", "sun_commune_test")
os.environ.setdefault("CACHE_PREFIX", "sun_test")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
os.environ.setdefault("MEDIA_ROOT", tempfile.mkdtemp(prefix="sun-commune-test-media-"))
os.environ.setdefault("LEDGER_FILES_ROOT", tempfile.mkdtemp(prefix="sun-commune-test-ledger-files-"))

from sun_commune.settings import *  # noqa: E402,F403

ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
