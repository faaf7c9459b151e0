import secrets

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Make a new Ed25519 key for signing ledger checkpoints (set LEDGER_SIGNING_KEY to the first line)."

    def handle(self, *args, **options):
        seed = secrets.token_bytes(32)
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.stdout.write(f"LEDGER_SIGNING_KEY={seed.hex()}")
        self.stdout.write(f"# public key: {public.hex()}")
