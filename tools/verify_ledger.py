#!/usr/bin/env python3
"""Check the Sun Commune fund-usage ledger yourself, without trusting the platform.

This single file needs only Python 3.9 or newer: no packages. Download the
ledger and a checkpoint (and keep the checkpoints you downloaded earlier),
then run one of:

    python verify_ledger.py ledger.jsonl checkpoint --public-key KEY
    python verify_ledger.py ledger.jsonl checkpoint --previous checkpoint-I-kept
    python verify_ledger.py ledger.jsonl checkpoint --prefix
    python verify_ledger.py --consistency consistency.json --previous checkpoint-I-kept checkpoint
    python verify_ledger.py --tiles https://example.org/ledger checkpoint [--entry 41]
    python verify_ledger.py --inclusion my-donation-proof.json

A checkpoint is either the signed note (/ledger/checkpoint, C2SP
tlog-checkpoint + signed-note) or the JSON checkpoint (checkpoint.json): the
file's content says which.

The key. KEY is the commune's Ed25519 public key: the note verifier key
"<name>+<key hash>+<base64>" (/ledger/verifier-key.txt), 64 hex digits
(/ledger/public-key.txt), or a file holding either (or a PEM key). Compare it
with the one the commune publishes elsewhere (notices, press). The first run
that passes stores it in ledger-key.pin beside the checkpoint (or the proof);
later runs use that pin, and refuse to run with a different key. Without a
key and without a pin nothing is checked (exit 3).

What is checked:
  * the checkpoint is signed (Ed25519) by the pinned key; for a note, the
    signature line carries that key's name and key hash, and the key's name
    is the note's origin (other signature lines, e.g. witnesses', are ignored);
  * every entry is well-formed, carries its own position ("index") and the
    hash of the entry before it ("prev"), so a deleted, inserted, moved or
    edited entry is named;
  * the Merkle root (RFC 6962) of the entries is the one the checkpoint
    signs, and the ledger has no line after them: a file longer than the
    checkpoint (or with a stray line at its end) fails, unless --prefix says
    you check only the entries the checkpoint covers;
  * with --previous: an older checkpoint (that you kept) is a prefix of this
    ledger, i.e. nothing it covered has been rewritten since;
  * with --consistency: an RFC 9162 consistency proof between the checkpoint
    you kept (--previous) and the new one, without the ledger;
  * with --tiles: the log's C2SP tlog-tiles (a URL or a directory) against
    the checkpoint: every entry bundle and hash tile, every level, and the
    root; with --entry N only the tiles that prove entry N;
  * with --inclusion: your entry is in the tree the checkpoint signs.

Exit status:
  0  all checks passed (the line starting "OK:" says what was checked)
  1  something is wrong: the line starting "BAD" names the first problem
  2  usage error, or a file, URL or tile could not be read
  3  no key to check against (none given, none pinned), or the key given is
     not the pinned one: nothing was checked
"""

import argparse
import base64
import hashlib
import json
import os
import re
import sys
import time

CHECKPOINT_FORMAT = "sun-commune-checkpoint/v1"
INCLUSION_FORMAT = "sun-commune-inclusion/v1"
GENESIS_PREV = "0" * 64
EMPTY_ROOT = hashlib.sha256(b"").digest()
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_HEX128 = re.compile(r"[0-9a-f]{128}\Z")


# --- Ed25519 verification (RFC 8032 §5.1), pure Python, verification only ----------------

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _recover_x(y, sign):
    """§5.1.3 step 2-4: x from y and the sign bit, or None."""
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    vxx = v * x * x % _P
    if vxx == u:
        pass
    elif vxx == (-u) % _P:
        x = x * _SQRT_M1 % _P
    else:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return x


def _decode_point(data):
    """§5.1.3: 32 bytes -> extended coordinates (X, Y, Z, T), or None if not a valid encoding."""
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % _P)


def _add(p, q):
    """§5.1.4 unified addition on -x^2 + y^2 = 1 + d x^2 y^2 (also valid for doubling)."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * t1 * t2 * _D % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(scalar, point):
    result = (0, 1, 1, 0)  # neutral element
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _equal(p, q):
    return (p[0] * q[2] - q[0] * p[2]) % _P == 0 and (p[1] * q[2] - q[1] * p[2]) % _P == 0


_BY = 4 * pow(5, _P - 2, _P) % _P
_BX = _recover_x(_BY, 0)
_B = (_BX, _BY, 1, _BX * _BY % _P)


def ed25519_verify(public_key, message, signature):
    """RFC 8032 §5.1.7, pure Ed25519 (no prehash, no context). Returns True or False."""
    if not isinstance(public_key, bytes) or not isinstance(signature, bytes) or not isinstance(message, bytes):
        return False
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a = _decode_point(public_key)
    r = _decode_point(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % _L
    left = _mul(s, _B)
    right = _add(r, _mul(k, a))
    # The cofactored check [8][S]B = [8]R + [8][k]A' of step 3.
    return _equal(_mul(8, left), _mul(8, right))


# --- Merkle tree (RFC 6962 / RFC 9162) --------------------------------------------------


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


# json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False), built once.
# allow_nan=False: NaN/Infinity are not JSON, so no canonical entry contains them.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def canonical(entry):
    return _ENCODER.encode(entry).encode("utf-8")


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


class Frontier:
    """Right edge of the tree: [(height, hash)] of perfect subtrees, largest first. O(log n) memory."""

    def __init__(self):
        self.nodes = []
        self.size = 0

    def append(self, leaf):
        nodes = self.nodes
        height, digest = 0, leaf
        while nodes and nodes[-1][0] == height:
            digest = node_hash(nodes.pop()[1], digest)
            height += 1
        nodes.append((height, digest))
        self.size += 1

    def root(self):
        if not self.nodes:
            return EMPTY_ROOT
        result = self.nodes[-1][1]
        for _, digest in reversed(self.nodes[:-1]):
            result = node_hash(digest, result)
        return result


def verify_inclusion(leaf, leaf_index, tree_size, path, root):
    """RFC 9162 §2.1.3.2."""
    if not 0 <= leaf_index < tree_size:
        return False
    fn, sn = leaf_index, tree_size - 1
    result = leaf
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root


def _largest_power_of_two_below(n):
    return 1 << ((n - 1).bit_length() - 1)


def verify_consistency(old_size, new_size, old_root, new_root, proof):
    """RFC 9162 §2.1.4.2: does `proof` show the tree of old_size (old_root) is a prefix of new_size (new_root)?"""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT  # the empty tree is a prefix of every tree
    if not proof:
        return False
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is itself a node of the new tree
        proof = [old_root] + list(proof)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def _fold(parts):
    result = parts[-1]
    for digest in reversed(parts[:-1]):
        result = node_hash(digest, result)
    return result


def _range_hash(start, end, get_node):
    """MTH(D[start:end]) for an RFC 6962 range (start aligned), from perfect subtrees get_node(height, index)."""
    parts = []
    while start < end:
        height = (end - start).bit_length() - 1
        parts.append(get_node(height, start >> height))
        start += 1 << height
    return _fold(parts)


def audit_path(leaf_index, tree_size, get_node):
    """RFC 6962 §2.1.1 PATH(leaf_index, D[tree_size]), leaf-side sibling first."""
    path = []
    start, end = 0, tree_size
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        if leaf_index < start + k:
            path.append(_range_hash(start + k, end, get_node))
            end = start + k
        else:
            path.append(_range_hash(start, start + k, get_node))
            start += k
    path.reverse()
    return path


# --- Reporting ----------------------------------------------------------------------------


class Bad(Exception):
    """A verification failure: exit 1 with this message."""


class Unusable(Exception):
    """A file could not be read or an argument makes no sense: exit 2."""


class Untrusted(Exception):
    """No key to trust, or a key other than the pinned one: exit 3, nothing checked."""


def _n(number):
    return f"{number:,}"


def _short(hex_string):
    return hex_string[:16] + "…"


def _entry(i):
    return f"entry {i} (line {i + 1})"


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise Unusable(f"cannot read {what} {path}: {e.strerror or e}")


def _parse_json(raw, what, path):
    try:
        data = _DECODER.decode(raw.decode("utf-8-sig"))  # tolerate a BOM added by an editor
    except (UnicodeDecodeError, ValueError):
        raise Unusable(f"cannot read {what} {path}: it is not a JSON file")
    if not isinstance(data, dict):
        raise Unusable(f"cannot read {what} {path}: it is not a JSON object")
    return data


def _load_json_file(path, what):
    return _parse_json(_read(path, what), what, path)


# --- Keys: the note verifier key format, hex, PEM; the pin file ---------------------------

_KEY_NAME = re.compile(r"[^\s+]+\Z")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}\Z")
_ED25519_ALG = b"\x01"


def key_hash(name, public):
    """C2SP signed-note: the first 4 bytes of SHA-256(name || "\\n" || 0x01 || public key)."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + _ED25519_ALG + public).digest()[:4]


def _b64(text):
    """Strict standard base64 (padding required, no other characters), or None."""
    if not _B64.match(text) or len(text) % 4:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None


class Key:
    """An Ed25519 public key, with the note key name if it came as a verifier key."""

    def __init__(self, public, name=None):
        self.public = public
        self.name = name

    def vkey(self, name=None):
        name = name or self.name
        return f"{name}+{key_hash(name, self.public).hex()}+{base64.b64encode(_ED25519_ALG + self.public).decode()}"

    def describe(self):
        if self.name:
            return f"{self.name}+{key_hash(self.name, self.public).hex()}"
        return _short(self.public.hex())

    def same_as(self, other):
        return self.public == other.public and (self.name is None or other.name is None or self.name == other.name)


def _parse_vkey(text, source):
    """<name>+<8 hex key hash>+<base64(0x01 || key)>, the key hash checked. None if it does not look like one."""
    parts = text.split("+")
    if len(parts) < 3 or not _KEY_NAME.match(parts[0]) or not re.match(r"[0-9a-f]{8}\Z", parts[1]):
        return None
    data = _b64("+".join(parts[2:]))  # base64 may itself hold "+"
    if data is None or len(data) != 33 or data[:1] != _ED25519_ALG:
        raise Unusable(f"{source} looks like a note verifier key but its key is not an Ed25519 key (0x01 + 32 bytes)")
    name, public = parts[0], data[1:]
    if key_hash(name, public).hex() != parts[1]:
        raise Unusable(f"{source}: its key hash {parts[1]} is not the hash of its name and key — it was altered")
    return Key(public, name)


def _parse_key_text(text, source):
    text = text.strip()
    if _HEX64.match(text.lower()):
        return Key(bytes.fromhex(text.lower()))
    key = _parse_vkey(text, source)
    if key is not None:
        return key
    if text.startswith("-----BEGIN PUBLIC KEY-----"):
        body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
        der = _b64(body) or b""
        prefix = bytes.fromhex("302a300506032b6570032100")  # SubjectPublicKeyInfo, id-Ed25519
        if len(der) == 44 and der.startswith(prefix):
            return Key(der[12:])
    return None


def parse_key(value):
    """A note verifier key, 64 hex digits, or a file holding one of those, 32 raw bytes or an Ed25519 PEM key."""
    key = _parse_key_text(value, "--public-key")
    if key is not None:
        return key
    try:
        with open(value, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise Unusable(
            f"--public-key {value!r} is neither a verifier key, 64 hex digits nor a readable file ({e.strerror or e})"
        )
    if len(raw) == 32:
        return Key(raw)
    key = _parse_key_text(raw.decode("utf-8", "replace"), f"--public-key file {value}")
    if key is None:
        raise Unusable(
            f"--public-key file {value} does not hold an Ed25519 public key (a verifier key, 64 hex digits, raw or PEM)"
        )
    return key


PIN_NAME = "ledger-key.pin"


def resolve_key(given, pin_path):
    """The key to check against: the pinned one, or the one given (pinned once the checks pass).

    Returns (key, pin_to_write or None). Raises Untrusted."""
    pinned = None
    if os.path.exists(pin_path):
        try:
            with open(pin_path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise Unusable(f"cannot read the pinned key {pin_path}: {e}")
        pinned = _parse_key_text(text, f"pinned key {pin_path}")
        if pinned is None:
            raise Unusable(f"the pin file {pin_path} does not hold a key; delete it and pin the key again")
    if given is None and pinned is None:
        raise Untrusted(
            f"NOT CHECKED: no key to check the signature against (no --public-key, no pin in {pin_path}). "
            f"Pin the commune's key once: run again with --public-key KEY, where KEY is the verifier key from "
            f"/ledger/verifier-key.txt (or the hex of /ledger/public-key.txt), compared with the one the commune "
            f"publishes elsewhere; it is then stored in {pin_path} and used from then on."
        )
    if pinned is None:
        return given, given
    if given is not None and not given.same_as(pinned):
        raise Untrusted(
            f"NOT CHECKED: the key given ({given.describe()}) is not the key pinned in {pin_path} "
            f"({pinned.describe()}). If the commune really changed its key (it says so publicly), delete {pin_path} "
            f"and pin the new one; otherwise someone is giving you a different log."
        )
    if given is not None and pinned.name is None and given.name is not None:
        pinned = given  # the same key, now with its note name
    return pinned, None


def write_pin(key, pin_path, name=None):
    """Store the key (as the note verifier key when its name is known) in a new pin file; returns what to say."""
    key = Key(key.public, name or key.name)
    text = key.vkey() if key.name else key.public.hex()
    try:
        with open(pin_path, "x", encoding="utf-8") as f:
            f.write(text + "\n")
    except FileExistsError:
        return f"NOTE: {pin_path} appeared meanwhile; the key was not pinned again."
    except OSError as e:
        return (
            f"NOTE: the key could not be pinned in {pin_path} ({e.strerror or e}); give --public-key again next time."
        )
    return f"Pinned key {key.describe()} in {pin_path}: later runs use it and refuse any other key."


# --- Checkpoints: C2SP signed note or JSON ------------------------------------------------

_SIZE = re.compile(r"(0|[1-9][0-9]*)\Z")
_SIG_LINE = re.compile(r"— (\S+) (\S+)\Z")


class Checkpoint:
    """A checked checkpoint: tree size and root hash, and how to name it in messages."""

    def __init__(self, tree_size, root, label, origin=None, batch=None):
        self.tree_size = tree_size
        self.root = root
        self.label = label
        self.origin = origin
        self.batch = batch


def _check_json_checkpoint(cp, key, label):
    """Format and signature of a sun-commune-checkpoint/v1. Raises Bad."""
    if cp.get("format") != CHECKPOINT_FORMAT:
        raise Bad(f"BAD {label}: format is {cp.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    batch = cp.get("batch")
    name = f"{label} batch {batch}" if _is_int(batch) else label
    problems = []
    if not _is_int(batch) or batch < 0:
        problems.append("batch is not a non-negative integer")
    if not _is_int(cp.get("tree_size")) or cp["tree_size"] < 0:
        problems.append("tree_size is not a non-negative integer")
    for field, pattern, size in (("root_hash", _HEX64, 64), ("public_key", _HEX64, 64), ("signature", _HEX128, 128)):
        if not isinstance(cp.get(field), str) or not pattern.match(cp[field]):
            problems.append(f"{field} is not {size} lowercase hex digits")
    timestamp = cp.get("timestamp")
    if not isinstance(timestamp, str) or not timestamp or any(ord(c) < 0x20 for c in timestamp):
        problems.append("timestamp is not a one-line string")
    if problems:
        raise Bad(f"BAD {name}: " + "; ".join(problems))
    if bytes.fromhex(cp["public_key"]) != key.public:
        raise Bad(
            f"BAD signature on {name}: it names key {_short(cp['public_key'])}, "
            f"not the pinned key ({_short(key.public.hex())})"
        )
    message = (
        f"{CHECKPOINT_FORMAT}\nbatch {batch}\ntree_size {cp['tree_size']}\nroot {cp['root_hash']}\ntime {timestamp}\n"
    ).encode()
    if not ed25519_verify(key.public, message, bytes.fromhex(cp["signature"])):
        raise Bad(f"BAD signature on {name}")
    return Checkpoint(cp["tree_size"], bytes.fromhex(cp["root_hash"]), name, batch=batch)


def check_note(raw, key, label):
    """A C2SP tlog-checkpoint in a C2SP signed note, signed by `key`. Raises Bad."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Bad(f"BAD {label}: the note is not UTF-8")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise Bad(f"BAD {label}: the note holds a control character (a carriage return or tab?)")
    split = text.rfind("\n\n")
    if split < 0 or not text.endswith("\n"):
        raise Bad(f"BAD {label}: not a signed note (no blank line before the signatures, or no final newline)")
    if split + 2 == len(text):
        raise Bad(f"BAD {label}: the note carries no signature")
    body, signatures = text[: split + 1], text[split + 2 : -1].split("\n")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise Bad(f"BAD {label}: the checkpoint has {len(lines)} lines, not origin, tree size and root hash")
    origin, size_text, root_text = lines[:3]
    if not origin:
        raise Bad(f"BAD {label}: its origin line is empty")
    if not _SIZE.match(size_text):
        raise Bad(f"BAD {label}: its tree size {size_text!r} is not a decimal number")
    root = _b64(root_text)
    if root is None or len(root) != 32:
        raise Bad(f"BAD {label}: its root hash {root_text!r} is not 32 bytes in standard base64")
    tree_size = int(size_text)
    name = f"{label} {origin} size {tree_size}"
    key_name = key.name or origin
    if key_name != origin:
        raise Bad(f"BAD {name}: its origin is {origin!r}, but the pinned key is the key of the log {key_name!r}")
    expected_hash = key_hash(key_name, key.public)
    named = []
    for line in signatures:
        match = _SIG_LINE.match(line)
        if not match:
            raise Bad(f"BAD {name}: the signature line {line!r} is not '— <key name> <base64>'")
        data = _b64(match.group(2))
        if data is None or len(data) < 5:
            raise Bad(f"BAD {name}: the signature of {match.group(1)!r} is not base64 of a key hash and a signature")
        if match.group(1) != key_name:
            continue  # someone else's, e.g. a witness's cosignature
        named.append(data)
    if not named:
        raise Bad(f"BAD {name}: it carries no signature by {key_name!r} (the pinned key {key.describe()})")
    ours = [data for data in named if data[:4] == expected_hash]
    if not ours:
        raise Bad(
            f"BAD {name}: its signature by {key_name!r} carries key hash {named[0][:4].hex()}, not "
            f"{expected_hash.hex()} of the pinned key — it was signed with a different key"
        )
    if not any(len(data) == 68 and ed25519_verify(key.public, body.encode("utf-8"), data[4:]) for data in ours):
        raise Bad(f"BAD signature on {name}")
    return Checkpoint(tree_size, root, name, origin=origin)


def _is_note(raw):
    return not raw.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def load_checkpoint(path, key, label):
    """A checkpoint file, the signed note or the JSON, by its content."""
    what = "older checkpoint" if label.startswith("older") else "checkpoint"
    raw = _read(path, what)
    if _is_note(raw):
        if raw.lstrip().startswith(b"<"):
            raise Unusable(f"cannot read {what} {path}: it is neither a signed note nor a JSON checkpoint")
        return check_note(raw, key, label)
    return _check_json_checkpoint(_parse_json(raw, what, path), key, label)


def _describe_key(key, cp):
    if cp.origin is not None:
        return Key(key.public, key.name or cp.origin).describe()
    return _short(key.public.hex())


def _ok_line(what, cp, key):
    return f"OK: {what} (root {_short(cp.root.hex())}), signature valid (key {_describe_key(key, cp)})"


# --- The ledger file ----------------------------------------------------------------------


def check_entry(i, body, expected_prev, name=_entry):
    """One canonical entry at position i linking to expected_prev. Returns its leaf hash. Raises Bad."""
    try:
        entry = _DECODER.decode(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Bad(f"BAD {name(i)}: not valid JSON")
    if not isinstance(entry, dict):
        raise Bad(f"BAD {name(i)}: not a JSON object")
    try:
        same = canonical(entry) == body
    except (ValueError, UnicodeEncodeError):
        same = False
    if not same:
        raise Bad(f"BAD {name(i)}: not in canonical form (re-serialising it gives different bytes) — it was edited")
    index = entry.get("index")
    if not _is_int(index):
        raise Bad(f"BAD {name(i)}: it has no integer index")
    if index != i:
        raise Bad(f"BAD {name(i)}: its index says {index} — an entry was deleted, inserted or moved before it")
    if entry.get("prev") != expected_prev:
        if i == 0:
            raise Bad(f"BAD {name(0)}: its prev should be 64 zeros (it is the first entry)")
        raise Bad(f"BAD {name(i - 1)}: it was changed — entry {i} links to a different previous entry")
    return leaf_hash(body)


def _check_older(old, cp):
    if old.batch is not None and cp.batch is not None and old.batch > cp.batch:
        raise Bad(f"BAD {old.label}: it is newer than {cp.label} — give the older one as --previous")
    if old.tree_size > cp.tree_size:
        raise Bad(
            f"BAD {old.label}: it covered {_n(old.tree_size)} entries, more than the {_n(cp.tree_size)} of "
            f"{cp.label} — entries were removed since"
        )


def verify_ledger(ledger_path, checkpoint_path, previous_path=None, key=None, prefix=False):
    """Returns the lines to print on success; raises Bad or Unusable."""
    cp = load_checkpoint(checkpoint_path, key, "checkpoint")
    old = load_checkpoint(previous_path, key, "older checkpoint") if previous_path else None
    if old is not None:
        _check_older(old, cp)
    try:
        ledger = open(ledger_path, "rb")
    except OSError as e:
        raise Unusable(f"cannot read ledger {ledger_path}: {e.strerror or e}")

    tree_size = cp.tree_size
    old_size = old.tree_size if old is not None else None
    # The root at the older checkpoint's size is taken when the stream passes that point.
    old_root_seen = EMPTY_ROOT if old_size == 0 else None
    frontier = Frontier()
    expected_prev = GENESIS_PREV
    uncovered = 0
    i = 0
    with ledger:
        for line in ledger:
            if i >= tree_size:
                if not prefix:
                    what = "an entry" if line.endswith(b"\n") else "a line without its newline"
                    raise Bad(
                        f"BAD line {_n(tree_size + 1)}: the ledger goes on after the {_n(tree_size)} entries that "
                        f"{cp.label} covers ({what} not covered by it). Check it against a newer checkpoint, or "
                        f"give --prefix to check only the first {_n(tree_size)} entries"
                    )
                uncovered += 1
                continue
            if not line.endswith(b"\n"):
                raise Bad(f"BAD {_entry(i)}: the line has no newline at its end — the file is cut short or edited")
            digest = check_entry(i, line[:-1], expected_prev)
            expected_prev = digest.hex()
            frontier.append(digest)
            i += 1
            if i == old_size:
                old_root_seen = frontier.root()

    if i < tree_size:
        raise Bad(
            f"BAD {_entry(i)}: missing — the ledger ends after {_n(i)} entries but {cp.label} covers {_n(tree_size)}"
        )
    if frontier.root() != cp.root:
        if tree_size == 0:
            raise Bad(f"BAD {cp.label}: its root is not the root of an empty ledger")
        raise Bad(
            f"BAD {_entry(tree_size - 1)}: the entries do not match the signed root of {cp.label}. "
            f"Every entry links correctly to the one before it, so an entry was probably rewritten together "
            f"with the links of all entries after it, up to this last entry covered by the checkpoint"
        )
    summary = _ok_line(f"{_n(tree_size)} entries match {cp.label}", cp, key)
    if old is not None:
        if old_root_seen != old.root:
            raise Bad(
                f"BAD {old.label}: not a prefix of this ledger — its first {_n(old_size)} entries were "
                f"signed with a different root, so history was rewritten after it was published"
            )
        summary += f", {old.label} ({_n(old_size)} entries) is a prefix"
    lines = [summary]
    if uncovered:
        lines.append(
            f"NOTE: --prefix: {_n(uncovered)} further lines (from line {_n(tree_size + 1)}) are not covered by this "
            f"checkpoint; they were not checked."
        )
    return lines, cp


# --- Consistency proofs -------------------------------------------------------------------


def verify_consistency_file(proof_path, previous_path, checkpoint_path, key):
    started = time.perf_counter()
    cp = load_checkpoint(checkpoint_path, key, "checkpoint")
    old = load_checkpoint(previous_path, key, "older checkpoint")
    proof = _load_json_file(proof_path, "consistency proof")
    fields = [proof.get(k) for k in ("old_size", "new_size", "old_root", "new_root", "proof")]
    old_size, new_size, old_root, new_root, path = fields
    if not (_is_int(old_size) and _is_int(new_size) and isinstance(path, list)):
        raise Bad("BAD consistency proof: old_size, new_size or proof is missing or of the wrong type")
    if not all(isinstance(h, str) and _HEX64.match(h) for h in [old_root, new_root] + path):
        raise Bad("BAD consistency proof: old_root, new_root and proof must be 64-hex-digit hashes")
    _check_older(old, cp)
    for what, size, root, checked in (("old", old_size, old_root, old), ("new", new_size, new_root, cp)):
        if size != checked.tree_size or root != checked.root.hex():
            raise Bad(
                f"BAD consistency proof: its {what} tree ({_n(size)} entries, root {_short(root)}) is not the tree "
                f"of {checked.label} (root {_short(checked.root.hex())})"
            )
    if not verify_consistency(old_size, new_size, old.root, cp.root, [bytes.fromhex(h) for h in path]):
        raise Bad(
            f"BAD consistency proof: {old.label} is NOT a prefix of {cp.label} — the proof does not join them, "
            f"so the history you kept was rewritten (or the proof was altered)"
        )
    ms = (time.perf_counter() - started) * 1000
    return [
        _ok_line(f"{old.label} ({_n(old_size)} entries) is a prefix of {cp.label}", cp, key)
        + f"; consistency proof of {len(path)} hashes checked in {ms:.1f} ms"
    ], cp


# --- Tiles (C2SP tlog-tiles) --------------------------------------------------------------

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT


def tile_index_path(n):
    """The spec's N: groups of three digits, all but the last prefixed with x (1234067 -> x001/x234/067)."""
    digits = f"{n:03d}"
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


def tile_path(level, n, width):
    """tile/<L>/<N>[.p/<W>] (level "entries" for entry bundles)."""
    return f"tile/{level}/{tile_index_path(n)}" + (f".p/{width}" if width < TILE_WIDTH else "")


class Tiles:
    """Reads tiles from a base URL (urllib) or a directory. A partial tile that is gone is read from its full tile."""

    def __init__(self, base, keep=True):
        self.base = base.rstrip("/")
        self.keep = keep  # keep the hash tiles read (a proof reads some twice); not when reading them all
        self.remote = base.startswith(("http://", "https://"))
        self.cache = {}
        self.fetched = 0

    def _get(self, path):
        """The bytes at path, or None if it does not exist."""
        if self.remote:
            import urllib.error  # here: importing urllib costs 0.1 s that only a fetch needs
            import urllib.request

            url = f"{self.base}/{path}"
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    self.fetched += 1
                    return response.read()
            except urllib.error.HTTPError as e:
                if e.code == 404:
                    return None
                raise Unusable(f"cannot fetch tile {url}: HTTP {e.code}")
            except (urllib.error.URLError, OSError) as e:
                raise Unusable(f"cannot fetch tile {url}: {getattr(e, 'reason', e)}")
        full = os.path.join(self.base, *path.split("/"))
        try:
            with open(full, "rb") as f:
                self.fetched += 1
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise Unusable(f"cannot read tile {full}: {e.strerror or e}")

    def raw(self, level, n, width):
        """(path, bytes, items) of tile (level, n) of `width` items: the partial tile, else its full tile."""
        path = tile_path(level, n, width)
        data = self._get(path)
        if data is None and width < TILE_WIDTH:
            full = tile_path(level, n, TILE_WIDTH)
            data = self._get(full)
            if data is not None:
                return full, data, TILE_WIDTH
        if data is None:
            raise Unusable(f"tile {path} is missing from {self.base}")
        return path, data, width

    def hashes(self, level, n, width):
        """The first `width` hashes of hash tile (level, n)."""
        cached = self.cache.get((level, n))
        if cached is not None and len(cached) >= width:
            return cached[:width]
        path, data, items = self.raw(level, n, width)
        if len(data) != items * 32:
            raise Bad(f"BAD tile {path}: {len(data)} bytes, not {items} hashes of 32 bytes")
        result = [data[i : i + 32] for i in range(0, len(data), 32)]
        if self.keep:
            self.cache[(level, n)] = result
        return result[:width]

    def entries(self, n, width):
        """The first `width` entries of entry bundle n (a big-endian uint16 length before each)."""
        path, data, items = self.raw("entries", n, width)
        result, offset = [], 0
        while offset < len(data):
            if offset + 2 > len(data):
                raise Bad(f"BAD tile {path}: it ends inside an entry's length")
            length = int.from_bytes(data[offset : offset + 2], "big")
            offset += 2
            if offset + length > len(data):
                raise Bad(f"BAD tile {path}: entry {n * TILE_WIDTH + len(result)} is cut short")
            result.append(data[offset : offset + length])
            offset += length
        if len(result) != items:
            raise Bad(f"BAD tile {path}: it holds {len(result)} entries, not {items}")
        return path, result[:width]


def _tile_entry(i):
    return f"entry {i} (in {tile_path('entries', i // TILE_WIDTH, TILE_WIDTH)}[.p/...])"


def _level_width(tree_size, level):
    """Hashes at tile level `level` of a tree of tree_size leaves."""
    return tree_size >> (TILE_HEIGHT * level)


def _tile_node_getter(tiles, tree_size):
    """get_node(height, index) of a perfect subtree, from the tile level that holds it."""

    def get_node(height, index):
        level, rest = divmod(height, TILE_HEIGHT)
        span = 1 << rest  # hashes of that level under the node
        first = index * span
        n, offset = divmod(first, TILE_WIDTH)
        available = _level_width(tree_size, level)
        width = min(TILE_WIDTH, available - n * TILE_WIDTH)
        return _fold_perfect(tiles.hashes(level, n, width)[offset : offset + span])

    return get_node


def verify_tiles(base, checkpoint_path, key, entry_index=None):
    """The whole log from its tiles, or with entry_index only the tiles that prove that entry."""
    cp = load_checkpoint(checkpoint_path, key, "checkpoint")
    if entry_index is not None:
        return _verify_tile_inclusion(Tiles(base), cp, key, entry_index)
    tiles = Tiles(base, keep=False)
    size = cp.tree_size
    # Every entry checked as in ledger.jsonl; every hash tile compared with the hashes the level below makes,
    # tile by tile, keeping at most one tile's hashes a level (a ten-million-entry log in a few MB).
    pending, compared = [], []

    def add(level, digest):
        if len(pending) == level:
            pending.append([])
            compared.append(0)
        pending[level].append(digest)
        if len(pending[level]) == TILE_WIDTH:
            full, pending[level] = pending[level], []
            _compare_tile(tiles, level, compared[level], full)
            compared[level] += 1
            add(level + 1, _fold_perfect(full))

    expected_prev = GENESIS_PREV
    frontier = Frontier()
    for n in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
        _path, bundle = tiles.entries(n, min(TILE_WIDTH, size - n * TILE_WIDTH))
        for offset, body in enumerate(bundle):
            digest = check_entry(n * TILE_WIDTH + offset, body, expected_prev, name=_tile_entry)
            expected_prev = digest.hex()
            frontier.append(digest)
            add(0, digest)
    if frontier.root() != cp.root:
        raise Bad(f"BAD tiles: the entries in the entry bundles do not make the signed root of {cp.label}")
    for level, partial in enumerate(pending):
        if partial:
            _compare_tile(tiles, level, compared[level], partial)
    return [
        _ok_line(f"the {_n(size)} entries and every hash tile of {tiles.base} match {cp.label}", cp, key)
        + f"; {tiles.fetched} tiles read"
    ], cp


def _compare_tile(tiles, level, n, expected):
    got = tiles.hashes(level, n, len(expected))
    if got != expected:
        bad = next(j for j in range(len(expected)) if got[j] != expected[j])
        raise Bad(
            f"BAD tile {tile_path(level, n, len(expected))}: hash {bad} is not the "
            + (f"leaf hash of entry {n * TILE_WIDTH + bad}" if level == 0 else "root of the tile below it")
        )


def _fold_perfect(hashes):
    frontier = Frontier()
    for h in hashes:
        frontier.append(h)
    return frontier.root()


def _verify_tile_inclusion(tiles, cp, key, index):
    size = cp.tree_size
    if not 0 <= index < size:
        raise Unusable(f"--entry {index} is not in the {_n(size)} entries of {cp.label}")
    n, offset = divmod(index, TILE_WIDTH)
    path, bundle = tiles.entries(n, min(TILE_WIDTH, size - n * TILE_WIDTH))
    body = bundle[offset]
    try:
        entry = _DECODER.decode(body.decode("utf-8"))
        same = isinstance(entry, dict) and canonical(entry) == body
    except (UnicodeDecodeError, ValueError, UnicodeEncodeError):
        same = False
    if not same or entry.get("index") != index:
        raise Bad(f"BAD entry {index} (in {path}): not a canonical entry with index {index}")
    get_node = _tile_node_getter(tiles, size)
    proof = audit_path(index, size, get_node)
    if not verify_inclusion(leaf_hash(body), index, size, proof, cp.root):
        raise Bad(
            f"BAD tiles: entry {index} (in {path}) is NOT in the tree signed by {cp.label} — "
            f"the entry or a hash tile was altered"
        )
    return [
        _ok_line(f"entry {index} is included in the {_n(size)} entries of {cp.label}", cp, key)
        + f"; {tiles.fetched} tiles read",
        f"Entry: {body.decode('utf-8')}",
    ], cp


# --- Inclusion proofs ---------------------------------------------------------------------


def verify_proof(proof_path, key):
    proof = _load_json_file(proof_path, "inclusion proof")
    if proof.get("format") != INCLUSION_FORMAT:
        raise Bad(f"BAD inclusion proof: format is {proof.get('format')!r}, expected {INCLUSION_FORMAT!r}")
    cp_json = proof.get("checkpoint")
    if not isinstance(cp_json, dict):
        raise Bad("BAD inclusion proof: it holds no checkpoint")
    cp = _check_json_checkpoint(cp_json, key, "checkpoint")
    text, index, size, path = (proof.get(k) for k in ("entry", "leaf_index", "tree_size", "audit_path"))
    if not isinstance(text, str) or not _is_int(index) or not _is_int(size) or not isinstance(path, list):
        raise Bad("BAD inclusion proof: entry, leaf_index, tree_size or audit_path is missing or of the wrong type")
    if not all(isinstance(h, str) and _HEX64.match(h) for h in path):
        raise Bad("BAD inclusion proof: audit_path must be a list of 64-hex-digit hashes")
    if size != cp.tree_size:
        raise Bad(
            f"BAD inclusion proof: it is for a tree of {_n(size)} entries but {cp.label} covers {_n(cp.tree_size)}"
        )
    try:
        entry = _DECODER.decode(text)
        body = text.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        raise Bad("BAD inclusion proof: the entry is not valid JSON")
    try:
        same = isinstance(entry, dict) and canonical(entry) == body
    except (ValueError, UnicodeEncodeError):
        same = False
    if not same:
        raise Bad("BAD inclusion proof: the entry is not in canonical form — it was edited")
    if entry.get("index") != index or not _is_int(entry.get("index")):
        raise Bad(f"BAD inclusion proof: the entry's index ({entry.get('index')!r}) is not leaf_index {index}")
    if not verify_inclusion(leaf_hash(body), index, size, [bytes.fromhex(h) for h in path], cp.root):
        raise Bad(
            f"BAD inclusion proof: {_entry(index)} is NOT in the ledger signed by {cp.label} "
            f"(root {_short(cp.root.hex())}) — the entry or the proof was altered"
        )
    return [
        _ok_line(f"{_entry(index)} is included in the {_n(size)} entries signed by {cp.label}", cp, key),
        f"Entry: {text}",
    ], cp


# --- Command line -------------------------------------------------------------------------

EPILOG = """exit status:
  0  all checks passed
  1  BAD: the first problem found is named (an entry, a line after the checkpoint's
     entries, a signature, a key hash, a consistency proof, a tile)
  2  usage error, or a file, URL or tile could not be read
  3  NOT CHECKED: no key (give --public-key once; it is pinned in ledger-key.pin
     beside the checkpoint), or the key given is not the pinned one
"""


def main(argv=None):
    try:
        sys.stdout.reconfigure(errors="replace")
        sys.stderr.reconfigure(errors="replace")
    except AttributeError:
        pass
    parser = argparse.ArgumentParser(
        prog="verify_ledger.py",
        description="Verify the Sun Commune public fund-usage ledger against a signed checkpoint.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="LEDGER.jsonl CHECKPOINT; or only CHECKPOINT with --consistency or --tiles "
        "(a checkpoint is the signed note or checkpoint.json)",
    )
    parser.add_argument("--previous", metavar="OLDER_CHECKPOINT", help="an older checkpoint you kept")
    parser.add_argument(
        "--public-key",
        metavar="KEY",
        help="the commune's key: verifier key (name+hash+base64), 64 hex digits, or a file; pinned on first success",
    )
    parser.add_argument(
        "--pin-file", metavar="FILE", help=f"where the key is pinned (default: {PIN_NAME} beside the checkpoint)"
    )
    parser.add_argument(
        "--prefix",
        action="store_true",
        help="check only the entries the checkpoint covers; lines after them are allowed (and not checked)",
    )
    parser.add_argument(
        "--consistency", metavar="PROOF", help="check a consistency proof from --previous to CHECKPOINT (no ledger)"
    )
    parser.add_argument("--tiles", metavar="URL_OR_DIR", help="check the log's tiles against CHECKPOINT (no ledger)")
    parser.add_argument("--entry", metavar="N", type=int, help="with --tiles: check only that entry N is included")
    parser.add_argument("--inclusion", metavar="PROOF", help="check an inclusion proof instead of a ledger")
    args = parser.parse_args(argv)
    files = args.files
    if sum(bool(x) for x in (args.inclusion, args.consistency, args.tiles)) > 1:
        parser.error("give one of --inclusion, --consistency, --tiles")
    if args.inclusion:
        if files or args.previous:
            parser.error("--inclusion takes only the proof file (and optionally --public-key)")
        anchor = args.inclusion
    elif args.consistency:
        if len(files) != 1 or not args.previous:
            parser.error("--consistency PROOF takes --previous OLDER_CHECKPOINT and one CHECKPOINT (no ledger)")
        anchor = files[0]
    elif args.tiles:
        if len(files) != 1 or args.previous:
            parser.error("--tiles URL_OR_DIR takes one CHECKPOINT (no ledger, no --previous)")
        anchor = files[0]
    elif len(files) != 2:
        parser.error("give LEDGER.jsonl and CHECKPOINT, or --inclusion PROOF.json")
    else:
        anchor = files[1]
    if args.entry is not None and not args.tiles:
        parser.error("--entry works with --tiles")
    if args.prefix and (args.inclusion or args.consistency or args.tiles):
        parser.error("--prefix works when checking a ledger file")
    pin_path = args.pin_file or os.path.join(os.path.dirname(os.path.abspath(anchor)), PIN_NAME)
    try:
        given = parse_key(args.public_key) if args.public_key is not None else None
        key, to_pin = resolve_key(given, pin_path)
        if args.inclusion:
            lines, cp = verify_proof(args.inclusion, key)
        elif args.consistency:
            lines, cp = verify_consistency_file(args.consistency, args.previous, files[0], key)
        elif args.tiles:
            lines, cp = verify_tiles(args.tiles, files[0], key, args.entry)
        else:
            lines, cp = verify_ledger(files[0], files[1], args.previous, key, prefix=args.prefix)
    except Unusable as e:
        print(f"verify_ledger.py: error: {e}", file=sys.stderr)
        return 2
    except Untrusted as e:
        print(e)
        return 3
    except Bad as e:
        print(e)
        return 1
    if to_pin is not None:
        lines.append(write_pin(to_pin, pin_path, to_pin.name or cp.origin))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
