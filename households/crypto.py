"""Protecting the most sensitive fields (China's Personal Information
Protection Law): ID and phone numbers are encrypted in the database, and an
ID number is found — and kept unique — through a keyed hash of it.

``EncryptedTextField`` encrypts with Fernet (AES-128-CBC with HMAC-SHA256)
under ``FIELD_ENCRYPTION_KEYS``; the first key encrypts, every key decrypts,
so a key can be rotated by putting a new one first and re-saving. The
keyed hash (``sun_commune.ids``, with the check every ID number passes) uses
its own key (``ID_HASH_KEY``) so that a stolen dump cannot be matched
against a list of ID numbers without it.
"""

from cryptography.fernet import InvalidToken
from django.db import models

from sun_commune.crypto import fernet as _fernet
from sun_commune.ids import id_hash

__all__ = ["EncryptedTextField", "id_check_digit", "id_hash"]

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """GB 11643-1999: the 18th character of a resident ID number."""
    return ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def encrypt_bytes(data: bytes) -> bytes:
    """For a whole uploaded file that holds ID numbers, kept until imported."""
    return _fernet().encrypt(data)


def decrypt_bytes(token: bytes) -> bytes:
    return _fernet().decrypt(bytes(token))


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
