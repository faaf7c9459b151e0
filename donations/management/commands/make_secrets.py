import secrets

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Make fresh secret keys: LEDGER_SIGNING_KEY (Ed25519), FIELD_ENCRYPTION_KEYS (Fernet) and ID_HASH_KEY."

    def handle(self, *args, **options):
        seed = secrets.token_bytes(32)
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.stdout.write(f"LEDGER_SIGNING_KEY={seed.hex()}")
        self.stdout.write(f"# ledger public key: {public.hex()}")
        self.stdout.write(f"FIELD_ENCRYPTION_KEYS={Fernet.generate_key().decode()}")
        self.stdout.write(f"ID_HASH_KEY={secrets.token_hex(32)}")
