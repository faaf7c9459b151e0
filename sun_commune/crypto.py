"""The one symmetric cipher of the site: Fernet (AES-128-CBC with
HMAC-SHA256) under ``FIELD_ENCRYPTION_KEYS``; the first key encrypts, every
key decrypts, so a key is rotated by putting a new one first. The
household register's encrypted fields (``households.crypto``) and the
private parts of pages kept in the shared cache (``pagecache``) use it."""

from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


@lru_cache(maxsize=1)
def fernet() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in settings.FIELD_ENCRYPTION_KEYS])
