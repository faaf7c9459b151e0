"""Settings for the test suite: the real settings, on the real PostgreSQL and
Redis, with what tests must control (mail, queue, files) made local."""

import os
import tempfile
from decimal import Decimal

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

# The shipped limits on what a donor holds open at once are kept here for
# the tests of them (tests/test_honoured_pledges.py, fixture
# ``shipped_limits``); elsewhere the suite's donors pledge far more than a
# new donor may, so they are not held to them.
SHIPPED_PLEDGE_LIMITS = {
    name: globals()[name]
    for name in (
        "PLEDGE_NEW_DONOR_DAYS",
        "PLEDGE_NEW_DONOR_HONOURED",
        "PLEDGE_OPEN_LIMIT_NEW",
        "PLEDGE_OPEN_YUAN_LIMIT_NEW",
        "PLEDGE_OPEN_LIMIT",
        "PLEDGE_OPEN_YUAN_LIMIT",
    )
}
PLEDGE_OPEN_LIMIT_NEW = PLEDGE_OPEN_LIMIT = 1_000_000  # noqa: F405
PLEDGE_OPEN_YUAN_LIMIT_NEW = PLEDGE_OPEN_YUAN_LIMIT = Decimal("1000000000000")  # noqa: F405
