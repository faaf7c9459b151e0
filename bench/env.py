"""What `make bench` shares between the generator, the server and the
measurements: the scales, the database names, and the environment a
production-like server runs with (DEBUG=0; the keys are bench-only, fixed so
that the generator's encrypted fields and the server's sessions match — never
use them anywhere else).
"""

import base64
import hashlib
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"


def _derived(label: str) -> bytes:
    return hashlib.sha256(f"sun-commune-bench:{label}".encode()).digest()


SECRET_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": _derived("secret").hex() + _derived("secret2").hex(),
    "LEDGER_SIGNING_KEY": _derived("ledger").hex(),
    "FIELD_ENCRYPTION_KEYS": base64.urlsafe_b64encode(_derived("fields")).decode(),
    "ID_HASH_KEY": _derived("id-hash").hex(),
    "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    "SECURE_SSL_REDIRECT": "0",
    "SESSION_COOKIE_SECURE": "0",
    "CSRF_COOKIE_SECURE": "0",
    "SECURE_HSTS_SECONDS": "0",
    "EMAIL_URL": "locmem://",
    "CACHE_PREFIX": "sun_bench",
    "CELERY_QUEUE": "sun_commune_bench",
    "LOG_LEVEL": "WARNING",
}

# Sizes. "province" is the issue's: two million households in a five-level
# tree with about 11,000 villages, 300,000 open needs, 3 million pledges and
# 10 million published ledger entries. "city" is the seed city's size
# (5,177 households and 492 villages in the 2017 account), in the same shape.
# "tiny" is for trying the generator out in seconds.
SCALES = {
    "tiny": dict(
        cities=1,
        counties_per_city=2,
        townships_per_county=2,
        villages=8,
        households=80,
        open_needs=20,
        pledges=120,
        ledger=400,
        donors=20,
    ),
    "city": dict(
        cities=1,
        counties_per_city=9,
        townships_per_county=11,
        villages=500,
        households=5_200,
        open_needs=750,
        pledges=7_500,
        ledger=25_000,
        donors=600,
    ),
    "province": dict(
        cities=20,
        counties_per_city=9,
        townships_per_county=11,
        villages=11_000,
        households=2_000_000,
        open_needs=300_000,
        pledges=3_000_000,
        ledger=10_000_000,
        donors=200_000,
    ),
}


def database_name(scale: str) -> str:
    return f"sun_commune_bench_{scale}"


def django_env(scale: str) -> dict:
    """The environment of the server and of every Django process of the bench."""
    return {
        **SECRET_ENV,
        "DATABASE_URL": f"postgres:///{database_name(scale)}",
        "DJANGO_SETTINGS_MODULE": "sun_commune.settings",
        # The pledge writes send thousands of pledges from 64 donors: what a
        # donor may hold open is lifted (the check itself still runs), as it
        # would be for long-standing donors of a real site.
        "PLEDGE_OPEN_LIMIT": "1000000000",
        "PLEDGE_OPEN_YUAN_LIMIT": "1000000000000",
        "PLEDGE_NEW_DONOR_DAYS": "0",
        "PLEDGE_NEW_DONOR_HONOURED": "0",
    }


def setup_django(scale: str):
    """Configure this process like the server, then django.setup()."""
    os.environ.update(django_env(scale))
    import sys

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
