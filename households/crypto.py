"""Protecting the most sensitive fields (China's Personal Information
Protection Law): ID and phone numbers are encrypted in the database, and an
ID number is found — and kept unique — through a keyed hash of it.

``EncryptedTextField`` encrypts with Fernet (AES-128-CBC with HMAC-SHA256)
under ``FIELD_ENCRYPTION_KEYS``; the first key encrypts, every key decrypts,
so a key can be rotated by putting a new one first and re-saving. The
keyed hash uses its own key (``ID_HASH_KEY``) so that a stolen dump cannot
be matched against a list of ID numbers without it.
"""

import hashlib
import hmac

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.db import models

from sun_commune.crypto import fernet as _fernet

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """GB 11643-1999: the 18th character of a resident ID number."""
    return ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def normalise_id(value: str) -> str:
    return (value or "").strip().upper()


def id_number_valid(value: str) -> bool:
    value = normalise_id(value)
    return len(value) == 18 and value[:17].isdigit() and id_check_digit(value[:17]) == value[17]


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def encrypt_bytes(data: bytes) -> bytes:
    """For a whole uploaded file that holds ID numbers, kept until imported."""
    return _fernet().encrypt(data)


def decrypt_bytes(token: bytes) -> bytes:
    return _fernet().decrypt(bytes(token))


def id_hash(value: str) -> str | None:
    """The keyed hash that finds a household by its exact ID number."""
    value = normalise_id(value)
    if not value:
        return None
    return hmac.new(settings.ID_HASH_KEY.encode(), value.encode(), hashlib.sha256).hexdigest()


class EncryptedTextField(models.TextField):
    """A text field stored encrypted; Python code sees the plain text. It
    cannot be filtered on (the ciphertext is randomised): look up by a keyed
    hash column instead."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        try:
            return decrypt(value)
        except InvalidToken:
            raise ValueError(
                f"{self.model.__name__}.{self.name}: cannot decrypt (wrong FIELD_ENCRYPTION_KEYS?)"
            ) from None

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)
