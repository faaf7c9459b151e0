"""The ledger in the formats transparency-log tools speak (issue 15).

* The checkpoint is a C2SP ``tlog-checkpoint`` (origin, tree size, base64
  root hash) signed as a C2SP ``signed-note`` with the ledger's Ed25519 key,
  so that Go's ``golang.org/x/mod/sumdb/note`` opens it and witnesses and
  monitors can follow the log.
* The tree is served as C2SP ``tlog-tiles``: tiles of 256 hashes (height 8)
  and bundles of 256 entries, at the spec's paths.
* Consistency proofs follow RFC 9162 §2.1.4.

The tiles are not files: each is one range read of an index — the leaf
hashes of 256 published entries (level 0), or 256 stored Merkle nodes of
height 8·L (level L) — so at ten million entries they cost what a list page
costs, and full tiles are cached for a year by whatever sits in front.
"""

import base64
import hashlib
import re
import struct
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings

from . import merkle
from .models import MerkleNode, PublishedEntry

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
ALGORITHM_ED25519 = b"\x01"
SIGNATURE_PREFIX = "\u2014 "  # "— ", an em dash and a space, starts each signature line


# --- The signed note -----------------------------------------------------------


def origin() -> str:
    """The log's name: the first line of every checkpoint, and the key's name."""
    return settings.LEDGER_ORIGIN or f"{urlsplit(settings.SITE_URL).netloc}/ledger"


def key_hash(name: str, public_key: bytes) -> bytes:
    """signed-note key ID: the first 4 bytes of SHA-256(name || "\\n" || 0x01 || key)."""
    return hashlib.sha256(name.encode() + b"\n" + ALGORITHM_ED25519 + public_key).digest()[:4]


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def verifier_key(key: Ed25519PrivateKey) -> str:
    """The note verifier key, as ``note.NewVerifier`` parses it: ``name+hash+key``."""
    name, public_key = origin(), _raw(key)
    encoded = base64.b64encode(ALGORITHM_ED25519 + public_key).decode()
    return f"{name}+{key_hash(name, public_key).hex()}+{encoded}"


def checkpoint_body(name: str, tree_size: int, root_hash_hex: str) -> str:
    """The C2SP tlog-checkpoint text: origin, size, base64 root, each ending in a newline."""
    return f"{name}\n{tree_size}\n{base64.b64encode(bytes.fromhex(root_hash_hex)).decode()}\n"


def signed_note(key: Ed25519PrivateKey, tree_size: int, root_hash_hex: str) -> str:
    """The checkpoint of a tree, signed with ``key`` (Ed25519 is deterministic:
    the same tree, origin and key always give the same note). The signature
    covers the body, its final newline included."""
    name = origin()
    body = checkpoint_body(name, tree_size, root_hash_hex)
    signature = key_hash(name, _raw(key)) + key.sign(body.encode())
    return f"{body}\n{SIGNATURE_PREFIX}{name} {base64.b64encode(signature).decode()}\n"


# --- Tiles -----------------------------------------------------------------------

_INDEX_ELEMENT = re.compile(r"x[0-9]{3}")
_LAST_ELEMENT = re.compile(r"[0-9]{3}")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_LEVEL = re.compile(r"0|[1-9][0-9]?")


class TilePath:
    """A parsed tile path: level (None for an entry bundle), index, width."""

    __slots__ = ("level", "index", "width")

    def __init__(self, level: int | None, index: int, width: int):
        self.level, self.index, self.width = level, index, width

    @property
    def partial(self) -> bool:
        return self.width < TILE_WIDTH


def encode_index(index: int) -> str:
    """tlog-tiles' path form of a tile index: 1234067 -> x001/x234/067."""
    digits = str(index)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([f"x{g}" for g in groups[:-1]] + groups[-1:])


def tile_path(level: int | None, index: int, width: int = TILE_WIDTH) -> str:
    name = "entries" if level is None else str(level)
    suffix = f".p/{width}" if width < TILE_WIDTH else ""
    return f"tile/{name}/{encode_index(index)}{suffix}"


def parse_tile_path(path: str) -> TilePath | None:
    """``<L>/<N>[.p/<W>]`` or ``entries/<N>[.p/<W>]`` (below ``tile/``), in its
    one canonical spelling; None for anything else."""
    parts = path.split("/")
    if len(parts) < 2:
        return None
    width = TILE_WIDTH
    if len(parts) >= 3 and parts[-2].endswith(".p"):
        if not _WIDTH.fullmatch(parts[-1]) or int(parts[-1]) >= TILE_WIDTH:
            return None
        width = int(parts[-1])
        parts = parts[:-2] + [parts[-2][:-2]]
    level_part, *elements = parts
    if level_part == "entries":
        level = None
    elif _LEVEL.fullmatch(level_part) and int(level_part) < 64:
        level = int(level_part)
    else:
        return None
    if not elements or not _LAST_ELEMENT.fullmatch(elements[-1]):
        return None
    if not all(_INDEX_ELEMENT.fullmatch(e) for e in elements[:-1]):
        return None
    if len(elements) > 1 and elements[0] == "x000":
        return None  # a leading zero group: not the canonical path of its index
    index = int("".join(e.lstrip("x") for e in elements))
    if index >= 1 << 63:
        return None
    return TilePath(level, index, width)


def _leaf_hashes(start: int, count: int) -> list[bytes]:
    rows = PublishedEntry.objects.filter(index__gte=start, index__lt=start + count).order_by("index")
    return [bytes.fromhex(h) for h in rows.values_list("leaf_hash", flat=True)]


def tile(tile: TilePath) -> bytes | None:
    """The hashes of a tile (``width`` of them, 32 bytes each), or None when the
    tree does not hold that many yet. Level L holds the roots of the perfect
    subtrees of height 8·L, which publication stored as they were completed."""
    start = tile.index * TILE_WIDTH
    if tile.level == 0:
        hashes = _leaf_hashes(start, tile.width)
    else:
        height = TILE_HEIGHT * tile.level  # >= 8: publication stores every height from 4 up
        rows = MerkleNode.objects.filter(height=height, position__gte=start, position__lt=start + tile.width)
        hashes = [bytes.fromhex(h) for h in rows.order_by("position").values_list("hash", flat=True)]
    if len(hashes) != tile.width:
        return None
    return b"".join(hashes)


def entry_bundle(tile: TilePath) -> bytes | None:
    """``width`` entries from index·256, each a big-endian uint16 length and the
    entry's canonical bytes (the ledger.jsonl line without its newline: what
    the leaf hash covers), or None when fewer are published."""
    start = tile.index * TILE_WIDTH
    rows = PublishedEntry.objects.filter(index__gte=start, index__lt=start + tile.width).order_by("index")
    lines = [line.encode() for line in rows.values_list("line", flat=True)]
    if len(lines) != tile.width:
        return None
    return b"".join(struct.pack(">H", len(line)) + line for line in lines)


# --- Consistency --------------------------------------------------------------------


def consistency(old_size: int, new_size: int, get_node: merkle.NodeGetter) -> dict:
    """RFC 9162 §2.1.4 proof that the tree of ``old_size`` entries is a prefix of
    the tree of ``new_size`` (0 < old_size <= new_size <= the published size)."""
    return {
        "old_size": old_size,
        "new_size": new_size,
        "old_root": merkle.root_at(old_size, get_node).hex(),
        "new_root": merkle.root_at(new_size, get_node).hex(),
        "proof": [h.hex() for h in merkle.consistency_proof(old_size, new_size, get_node)],
    }
