#!/usr/bin/env python3
"""Check the Sun Commune fund-usage ledger yourself, without trusting the platform.

This single file needs only Python 3.9 or newer: no packages, no network.
Download ledger.jsonl and checkpoint.json (and keep the checkpoints you
downloaded earlier), then run:

    python verify_ledger.py ledger.jsonl checkpoint.json
    python verify_ledger.py ledger.jsonl checkpoint.json --previous checkpoint-5.json
    python verify_ledger.py ledger.jsonl checkpoint.json --public-key <64 hex or key file>
    python verify_ledger.py --inclusion my-donation-proof.json --public-key <64 hex or key file>

What is checked:
  * the checkpoint is signed (Ed25519) by the platform's key. Pass the key
    with --public-key (published by the commune and in the press); without
    it the script can only check the signature against the key written in
    the checkpoint itself, which anyone could have made;
  * every entry is well-formed, carries its own position ("index") and the
    hash of the entry before it ("prev"), so a deleted, inserted, moved or
    edited entry is named;
  * the Merkle root (RFC 6962) of the first tree_size entries is the one the
    checkpoint signs;
  * with --previous: an older checkpoint (that you kept) is a prefix of this
    ledger, i.e. nothing it covered has been rewritten since;
  * with --inclusion: your entry is in the tree the checkpoint signs.

Exit status: 0 all checks passed, 1 something is wrong (the first problem is
named), 2 usage error or a file could not be read.
"""

import argparse
import base64
import hashlib
import json
import re
import sys

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


# --- Reporting ----------------------------------------------------------------------------


class Bad(Exception):
    """A verification failure: exit 1 with this message."""


class Unusable(Exception):
    """A file could not be read or an argument makes no sense: exit 2."""


def _n(number):
    return f"{number:,}"


def _short(hex_string):
    return hex_string[:16] + "…"


def _entry(i):
    return f"entry {i} (line {i + 1})"


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _load_json_file(path, what):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise Unusable(f"cannot read {what} {path}: {e.strerror or e}")
    try:
        data = _DECODER.decode(raw.decode("utf-8-sig"))  # tolerate a BOM added by an editor
    except (UnicodeDecodeError, ValueError):
        raise Unusable(f"cannot read {what} {path}: it is not a JSON file")
    if not isinstance(data, dict):
        raise Unusable(f"cannot read {what} {path}: it is not a JSON object")
    return data


def parse_public_key(value):
    """64 hex digits, or a file holding 64 hex digits, 32 raw bytes, or an Ed25519 PEM public key."""
    text = value.strip().lower()
    if _HEX64.match(text):
        return bytes.fromhex(text)
    try:
        with open(value, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise Unusable(f"--public-key {value!r} is neither 64 hex digits nor a readable file ({e.strerror or e})")
    if len(raw) == 32:
        return raw
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""
    if _HEX64.match(text.lower()):
        return bytes.fromhex(text.lower())
    if text.startswith("-----BEGIN PUBLIC KEY-----"):
        body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
        try:
            der = base64.b64decode(body, validate=True)
        except ValueError:
            der = b""
        prefix = bytes.fromhex("302a300506032b6570032100")  # SubjectPublicKeyInfo, id-Ed25519
        if len(der) == 44 and der.startswith(prefix):
            return der[12:]
    raise Unusable(f"--public-key file {value} does not hold an Ed25519 public key (64 hex digits, raw or PEM)")


def check_checkpoint(cp, pinned_key, label):
    """Format and signature. Returns (root bytes, key hex). Raises Bad."""
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
    key = bytes.fromhex(cp["public_key"])
    if pinned_key is not None and key != pinned_key:
        raise Bad(
            f"BAD signature on {name}: it names key {_short(cp['public_key'])}, "
            f"not the key you gave ({_short(pinned_key.hex())})"
        )
    message = (
        f"{CHECKPOINT_FORMAT}\nbatch {batch}\ntree_size {cp['tree_size']}\nroot {cp['root_hash']}\ntime {timestamp}\n"
    ).encode()
    if not ed25519_verify(key, message, bytes.fromhex(cp["signature"])):
        raise Bad(f"BAD signature on {name}")
    return bytes.fromhex(cp["root_hash"]), cp["public_key"]


def _key_note(pinned_key):
    if pinned_key is not None:
        return []
    return [
        "NOTE: the public key was not pinned (no --public-key): the signature only shows the checkpoint was "
        "signed by the key written inside it. Compare that key with the one the commune publishes."
    ]


def verify_ledger(ledger_path, checkpoint_path, previous_path=None, pinned_key=None):
    """Returns the lines to print on success; raises Bad or Unusable."""
    cp = _load_json_file(checkpoint_path, "checkpoint")
    old = _load_json_file(previous_path, "older checkpoint") if previous_path else None
    try:
        ledger = open(ledger_path, "rb")
    except OSError as e:
        raise Unusable(f"cannot read ledger {ledger_path}: {e.strerror or e}")

    with ledger:
        root, key_hex = check_checkpoint(cp, pinned_key, "checkpoint")
        tree_size, batch = cp["tree_size"], cp["batch"]
        old_size = old_root = old_name = None
        if old is not None:
            old_root, old_key_hex = check_checkpoint(old, pinned_key, "older checkpoint")
            old_size, old_name = old["tree_size"], f"older checkpoint batch {old['batch']}"
            if old_key_hex != key_hex:
                raise Bad(
                    f"BAD {old_name}: signed by a different key ({_short(old_key_hex)}) than checkpoint batch "
                    f"{batch} ({_short(key_hex)})"
                )
            if old["batch"] > batch:
                raise Bad(
                    f"BAD {old_name}: it is newer than checkpoint batch {batch} — give the older one as --previous"
                )
            if old_size > tree_size:
                raise Bad(
                    f"BAD {old_name}: it covered {_n(old_size)} entries, more than the {_n(tree_size)} of "
                    f"checkpoint batch {batch} — entries were removed since"
                )
        # The root at the older checkpoint's size is taken when the stream passes that point.
        old_root_seen = EMPTY_ROOT if old_size == 0 else None

        frontier = Frontier()
        expected_prev = GENESIS_PREV
        uncovered = 0
        i = 0
        for line in ledger:
            if i >= tree_size:
                uncovered += 1
                continue
            if not line.endswith(b"\n"):
                raise Bad(f"BAD {_entry(i)}: the line has no newline at its end — the file is cut short or edited")
            body = line[:-1]
            try:
                entry = _DECODER.decode(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise Bad(f"BAD {_entry(i)}: not valid JSON")
            if not isinstance(entry, dict):
                raise Bad(f"BAD {_entry(i)}: not a JSON object")
            try:
                same = canonical(entry) == body
            except (ValueError, UnicodeEncodeError):
                same = False
            if not same:
                raise Bad(
                    f"BAD {_entry(i)}: not in canonical form (re-serialising it gives different bytes) — it was edited"
                )
            index = entry.get("index")
            if not _is_int(index):
                raise Bad(f"BAD {_entry(i)}: it has no integer index")
            if index != i:
                raise Bad(
                    f"BAD {_entry(i)}: its index says {index} — an entry was deleted, inserted or moved before it"
                )
            prev = entry.get("prev")
            if prev != expected_prev:
                if i == 0:
                    raise Bad(f"BAD {_entry(0)}: its prev should be 64 zeros (it is the first entry)")
                raise Bad(f"BAD {_entry(i - 1)}: it was changed — entry {i} links to a different previous entry")
            digest = leaf_hash(body)
            expected_prev = digest.hex()
            frontier.append(digest)
            i += 1
            if i == old_size:
                old_root_seen = frontier.root()

        if i < tree_size:
            raise Bad(
                f"BAD {_entry(i)}: missing — the ledger ends after {_n(i)} entries "
                f"but checkpoint batch {batch} covers {_n(tree_size)}"
            )
        if frontier.root() != root:
            if tree_size == 0:
                raise Bad(f"BAD checkpoint batch {batch}: its root is not the root of an empty ledger")
            raise Bad(
                f"BAD {_entry(tree_size - 1)}: the entries do not match the signed root of checkpoint batch {batch}. "
                f"Every entry links correctly to the one before it, so an entry was probably rewritten together "
                f"with the links of all entries after it, up to this last entry covered by the checkpoint"
            )

    summary = (
        f"OK: {_n(tree_size)} entries match checkpoint batch {batch} (root {_short(cp['root_hash'])}), "
        f"signature valid (key {_short(key_hex)})"
    )
    if old is not None:
        if old_root_seen != old_root:
            raise Bad(
                f"BAD {old_name}: not a prefix of this ledger — its first {_n(old_size)} entries were "
                f"signed with a different root, so history was rewritten after it was published"
            )
        summary += f", {old_name} ({_n(old_size)} entries) is a prefix"
    lines = [summary]
    lines += _key_note(pinned_key)
    if uncovered:
        lines.append(
            f"NOTE: {_n(uncovered)} further entries (from line {_n(tree_size + 1)}) are not yet covered by this "
            f"checkpoint; they were not checked."
        )
    return lines


def verify_proof(proof_path, pinned_key=None):
    proof = _load_json_file(proof_path, "inclusion proof")
    if proof.get("format") != INCLUSION_FORMAT:
        raise Bad(f"BAD inclusion proof: format is {proof.get('format')!r}, expected {INCLUSION_FORMAT!r}")
    cp = proof.get("checkpoint")
    if not isinstance(cp, dict):
        raise Bad("BAD inclusion proof: it holds no checkpoint")
    root, key_hex = check_checkpoint(cp, pinned_key, "checkpoint")
    batch = cp["batch"]
    text, index, size, path = (proof.get(k) for k in ("entry", "leaf_index", "tree_size", "audit_path"))
    if not isinstance(text, str) or not _is_int(index) or not _is_int(size) or not isinstance(path, list):
        raise Bad("BAD inclusion proof: entry, leaf_index, tree_size or audit_path is missing or of the wrong type")
    if not all(isinstance(h, str) and _HEX64.match(h) for h in path):
        raise Bad("BAD inclusion proof: audit_path must be a list of 64-hex-digit hashes")
    if size != cp["tree_size"]:
        raise Bad(
            f"BAD inclusion proof: it is for a tree of {_n(size)} entries but checkpoint batch {batch} "
            f"covers {_n(cp['tree_size'])}"
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
    ok = verify_inclusion(leaf_hash(body), index, size, [bytes.fromhex(h) for h in path], root)
    if not ok:
        raise Bad(
            f"BAD inclusion proof: {_entry(index)} is NOT in the ledger signed by checkpoint batch {batch} "
            f"(root {_short(cp['root_hash'])}) — the entry or the proof was altered"
        )
    lines = [
        f"OK: {_entry(index)} is included in the {_n(size)} entries signed by checkpoint batch {batch} "
        f"(root {_short(cp['root_hash'])}), signature valid (key {_short(key_hex)})",
        f"Entry: {text}",
    ]
    return lines + _key_note(pinned_key)


def main(argv=None):
    try:
        sys.stdout.reconfigure(errors="replace")
        sys.stderr.reconfigure(errors="replace")
    except AttributeError:
        pass
    parser = argparse.ArgumentParser(
        prog="verify_ledger.py",
        description="Verify the Sun Commune public fund-usage ledger against a signed checkpoint.",
    )
    parser.add_argument("ledger", nargs="?", help="ledger.jsonl")
    parser.add_argument("checkpoint", nargs="?", help="checkpoint.json (or checkpoint-<batch>.json)")
    parser.add_argument("--previous", metavar="OLDER_CHECKPOINT", help="an older checkpoint you kept")
    parser.add_argument("--public-key", metavar="HEX_OR_FILE", help="the commune's Ed25519 public key")
    parser.add_argument("--inclusion", metavar="PROOF", help="check an inclusion proof instead of a ledger")
    args = parser.parse_args(argv)
    if args.inclusion:
        if args.ledger or args.checkpoint or args.previous:
            parser.error("--inclusion takes only the proof file (and optionally --public-key)")
    elif not (args.ledger and args.checkpoint):
        parser.error("give LEDGER.jsonl and CHECKPOINT.json, or --inclusion PROOF.json")
    try:
        pinned = parse_public_key(args.public_key) if args.public_key is not None else None
        if args.inclusion:
            lines = verify_proof(args.inclusion, pinned)
        else:
            lines = verify_ledger(args.ledger, args.checkpoint, args.previous, pinned)
    except Unusable as e:
        print(f"verify_ledger.py: error: {e}", file=sys.stderr)
        return 2
    except Bad as e:
        print(e)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
