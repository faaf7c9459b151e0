"""tools/verify_ledger.py: the citizen's stand-alone verifier.

The CLI runs as a subprocess under `python -I -S`: no site-packages at all
(not even the venv's), proving the downloaded file needs only the standard
library. Fixtures are built with donations.merkle and signed with the
`cryptography` package, so the verifier's own hashing and Ed25519 code are
checked against independent implementations."""

import ast
import base64
import functools
import hashlib
import importlib.util
import json
import re
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from donations.merkle import (
    CHECKPOINT_FORMAT,
    GENESIS_PREV,
    INCLUSION_FORMAT,
    Frontier,
    audit_path,
    canonical,
    checkpoint_message,
    leaf_hash,
)
from donations.merkle import root as merkle_root

SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "verify_ledger.py"
PURPOSES = ["修缮村小学教室屋顶", "五保户冬季棉被", "村道硬化工程材料款", "留守儿童营养午餐"]


def load_verifier():
    spec = importlib.util.spec_from_file_location("verify_ledger_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


vl = load_verifier()


def raw_public(key):
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


# --- Ed25519 ----------------------------------------------------------------------------

RFC8032_TEST1 = {
    "secret": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "public": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    "message": "",
    "signature": "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
}
L = 2**252 + 27742317777372353535851937790883648493


def flip(data, byte, bit=0):
    return data[:byte] + bytes([data[byte] ^ (1 << bit)]) + data[byte + 1 :]


def test_rfc8032_test1():
    public = bytes.fromhex(RFC8032_TEST1["public"])
    signature = bytes.fromhex(RFC8032_TEST1["signature"])
    # the vector itself, cross-checked with OpenSSL through `cryptography`
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(RFC8032_TEST1["secret"]))
    assert raw_public(key) == public
    assert key.sign(b"") == signature
    assert vl.ed25519_verify(public, b"", signature)
    assert not vl.ed25519_verify(public, b"\x00", signature)
    assert not vl.ed25519_verify(flip(public, 0), b"", signature)
    assert not vl.ed25519_verify(public, b"", flip(signature, 0))  # in R
    assert not vl.ed25519_verify(public, b"", flip(signature, 40))  # in S


def test_ed25519_agrees_with_cryptography_both_ways():
    for i in range(8):
        key = Ed25519PrivateKey.generate()
        public = raw_public(key)
        message = f"sun-commune-checkpoint/v1\nbatch {i}\n测试".encode() * i
        signature = key.sign(message)
        assert vl.ed25519_verify(public, message, signature)
        for bad_public, bad_message, bad_signature in [
            (flip(public, i * 3), message, signature),
            (public, message + b"x", signature),
            (public, message, flip(signature, i * 7, i % 8)),
            (public, message, flip(signature, 32 + i * 3, i % 8)),
        ]:
            ours = vl.ed25519_verify(bad_public, bad_message, bad_signature)
            try:
                Ed25519PublicKey.from_public_bytes(bad_public).verify(bad_signature, bad_message)
                theirs = True
            except (InvalidSignature, ValueError):
                theirs = False
            assert ours is theirs is False


def test_ed25519_rejects_s_not_below_l():
    public = bytes.fromhex(RFC8032_TEST1["public"])
    signature = bytes.fromhex(RFC8032_TEST1["signature"])
    s = int.from_bytes(signature[32:], "little")
    # S + L satisfies the group equation too (L * B is the identity): only the S < L check rejects it
    malleated = signature[:32] + (s + L).to_bytes(32, "little")
    assert not vl.ed25519_verify(public, b"", malleated)
    assert not vl.ed25519_verify(public, b"", signature[:32] + L.to_bytes(32, "little"))


def test_ed25519_rejects_malformed_inputs():
    public = bytes.fromhex(RFC8032_TEST1["public"])
    signature = bytes.fromhex(RFC8032_TEST1["signature"])
    assert not vl.ed25519_verify(public[:31], b"", signature)
    assert not vl.ed25519_verify(public, b"", signature[:63])
    assert not vl.ed25519_verify(b"\xff" * 31 + b"\x7f", b"", signature)  # y >= p: not a canonical encoding
    assert not vl.ed25519_verify(public, "", signature)


def test_verifier_hashes_match_the_app():
    leaves = [leaf_hash(f"x{i}".encode()) for i in range(37)]
    ours, theirs = vl.Frontier(), Frontier()
    for leaf in leaves:
        ours.append(leaf)
        theirs.append(leaf)
        assert ours.root() == theirs.root()
    entry = {"index": 3, "prev": "ab" * 32, "purpose": "修缮", "legs": [{"z": 1, "a": "2.00"}]}
    assert vl.canonical(entry) == canonical(entry)
    assert vl.leaf_hash(b"abc") == leaf_hash(b"abc")


def test_verifier_is_standard_library_only_and_python39_syntax():
    source = SCRIPT.read_text(encoding="utf-8")
    tree = ast.parse(source, feature_version=(3, 9))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names), imported


def test_isolated_interpreter_really_has_no_site_packages():
    """The flags the CLI tests use do hide the venv (plain -I would not)."""
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", "import cryptography"], capture_output=True)
    assert proc.returncode != 0 and b"ModuleNotFoundError" in proc.stderr


# --- Fixtures: a 100-entry ledger with checkpoints at 60 and 100 -----------------------


def make_entries(n, start=0, prev=GENESIS_PREV, tag=""):
    lines = []
    for i in range(start, start + n):
        entry = {
            "index": i,
            "prev": prev,
            "id": f"e{i:05d}{tag}",
            "kind": "disbursement" if i % 3 else "donation",
            "amount": f"{(i * 37) % 1000}.{i % 100:02d}",
            "legs": [{"account": f"donor:{i}", "amount": "-1.00"}, {"account": "fund:510723101201", "amount": "1.00"}],
            "need": 1000 + i,
            "village": "510723101201",
            "purpose": PURPOSES[i % len(PURPOSES)],
        }
        line = canonical(entry)
        lines.append(line)
        prev = leaf_hash(line).hex()
    return lines


def relink(lines, start):
    """Rewrite lines[start:] so that index and prev links are consistent again (a careful forger)."""
    out = list(lines[:start])
    prev = leaf_hash(out[-1]).hex() if out else GENESIS_PREV
    for i, line in enumerate(lines[start:], start):
        entry = json.loads(line)
        entry["index"], entry["prev"] = i, prev
        out.append(canonical(entry))
        prev = leaf_hash(out[-1]).hex()
    return out


def tree_root(lines):
    frontier = Frontier()
    for line in lines:
        frontier.append(leaf_hash(line))
    return frontier.root()


def sign(key, batch, tree_size, root, timestamp="2026-11-29T03:00:00Z"):
    return {
        "format": CHECKPOINT_FORMAT,
        "batch": batch,
        "tree_size": tree_size,
        "root_hash": root.hex(),
        "timestamp": timestamp,
        "public_key": raw_public(key).hex(),
        "signature": key.sign(checkpoint_message(batch, tree_size, root.hex(), timestamp)).hex(),
    }


class Ledger:
    def __init__(self, key, lines):
        self.key = key
        self.lines = lines
        self.public_hex = raw_public(key).hex()
        self.cp_old = sign(key, 5, 60, tree_root(lines[:60]), "2026-11-22T03:00:00Z")
        self.cp = sign(key, 7, 100, tree_root(lines))


@pytest.fixture(scope="module")
def genuine():
    return Ledger(Ed25519PrivateKey.generate(), make_entries(100))


def write(path, lines):
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def write_json(path, obj):
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def run(*args):
    proc = subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), *map(str, args)], capture_output=True, text=True, encoding="utf-8"
    )
    return proc.returncode, proc.stdout + proc.stderr


GENUINE = object()  # check(): the genuine key by default


def check(tmp_path, genuine, lines=None, cp=None, previous=None, key=GENUINE, *extra):
    ledger = write(tmp_path / "ledger.jsonl", genuine.lines if lines is None else lines)
    checkpoint = write_json(tmp_path / "checkpoint.json", genuine.cp if cp is None else cp)
    args = [ledger, checkpoint]
    if previous is not None:
        args += ["--previous", write_json(tmp_path / "checkpoint-5.json", previous)]
    if key is GENUINE:
        key = genuine.public_hex
    if key is not None:
        args += ["--public-key", key]
    return run(*args, *extra)


# --- Ledger checks ----------------------------------------------------------------------


def test_accepts_genuine_ledger_with_pinned_key(tmp_path, genuine):
    code, out = check(tmp_path, genuine, key=genuine.public_hex)
    assert code == 0, out
    assert out.startswith(f"OK: 100 entries match checkpoint batch 7 (root {genuine.cp['root_hash'][:16]}…)")
    assert f"signature valid (key {genuine.public_hex[:16]}…)" in out
    assert "not pinned" not in out


def test_without_key_or_pin_nothing_is_checked(tmp_path, genuine):
    code, out = check(tmp_path, genuine, key=None)
    assert code == 3, out
    assert out.startswith("NOT CHECKED: no key to check the signature against")
    assert "--public-key" in out and str(tmp_path / "ledger-key.pin") in out
    assert "OK" not in out
    assert not (tmp_path / "ledger-key.pin").exists()


def test_first_run_pins_the_key_and_later_runs_use_it(tmp_path, genuine):
    code, out = check(tmp_path, genuine)
    assert code == 0, out
    pin = tmp_path / "ledger-key.pin"
    assert f"Pinned key {genuine.public_hex[:16]}… in {pin}" in out
    assert pin.read_text() == genuine.public_hex + "\n"
    code, out = check(tmp_path, genuine, key=None)
    assert code == 0 and out.startswith("OK: 100 entries"), out
    assert "Pinned" not in out
    code, out = check(tmp_path, genuine, key=genuine.public_hex.upper())
    assert code == 0, out


def test_a_key_other_than_the_pinned_one_is_refused(tmp_path, genuine):
    assert check(tmp_path, genuine)[0] == 0
    forger = Ed25519PrivateKey.generate()
    lines = relink([canonical(dict(json.loads(genuine.lines[0]), amount="1000000.00"))] + genuine.lines[1:], 0)
    cp = sign(forger, 7, 100, tree_root(lines))
    code, out = check(tmp_path, genuine, lines=lines, cp=cp, key=raw_public(forger).hex())
    assert code == 3, out
    assert out.startswith(f"NOT CHECKED: the key given ({raw_public(forger).hex()[:16]}…) is not the key pinned in")
    assert (tmp_path / "ledger-key.pin").read_text() == genuine.public_hex + "\n"
    # without --public-key the pinned key is used, and the forger's checkpoint fails
    code, out = check(tmp_path, genuine, lines=lines, cp=cp, key=None)
    assert code == 1 and out.startswith("BAD signature on checkpoint batch 7: it names key"), out


def test_a_failed_run_pins_nothing(tmp_path, genuine):
    other = raw_public(Ed25519PrivateKey.generate()).hex()
    assert check(tmp_path, genuine, key=other)[0] == 1
    assert not (tmp_path / "ledger-key.pin").exists()


def test_pin_file_option(tmp_path, genuine):
    pin = tmp_path / "keys" / "mine.pin"
    pin.parent.mkdir()
    code, out = check(tmp_path, genuine, genuine.lines, None, None, GENUINE, "--pin-file", pin)
    assert code == 0 and pin.exists(), out
    code, out = check(tmp_path, genuine, genuine.lines, None, None, None, "--pin-file", pin)
    assert code == 0, out
    assert not (tmp_path / "ledger-key.pin").exists()


def test_an_unreadable_pin_is_a_usage_error(tmp_path, genuine):
    (tmp_path / "ledger-key.pin").write_text("not a key\n")
    code, out = check(tmp_path, genuine)
    assert code == 2 and "does not hold a key" in out


def test_public_key_from_hex_file_and_pem_file(tmp_path, genuine):
    (tmp_path / "key.hex").write_text(genuine.public_hex.upper() + "\n")
    pem = genuine.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "key.pem").write_bytes(pem)
    for key_file in ["key.hex", "key.pem"]:
        code, out = check(tmp_path, genuine, key=tmp_path / key_file)
        assert code == 0, out


def test_flipped_byte_in_an_entry_names_it(tmp_path, genuine):
    lines = list(genuine.lines)
    entry = json.loads(lines[37])
    entry["amount"] = "999.99"  # still valid, canonical JSON; only the content changed
    lines[37] = canonical(entry)
    code, out = check(tmp_path, genuine, lines=lines)
    assert code == 1
    assert out.startswith("BAD entry 37 (line 38): it was changed — entry 38 links to a different previous entry")


def test_flipped_byte_breaking_json(tmp_path, genuine):
    lines = list(genuine.lines)
    lines[12] = lines[12].replace(b'"kind"', b'"kind\x01', 1)
    code, out = check(tmp_path, genuine, lines=lines)
    assert (code, out.strip()) == (1, "BAD entry 12 (line 13): not valid JSON")


def test_non_canonical_entry(tmp_path, genuine):
    lines = list(genuine.lines)
    lines[3] = lines[3].replace(b'"index":3,', b'"index": 3,')
    code, out = check(tmp_path, genuine, lines=lines)
    assert code == 1 and out.startswith("BAD entry 3 (line 4): not in canonical form")


def test_deleted_line(tmp_path, genuine):
    lines = genuine.lines[:50] + genuine.lines[51:]
    code, out = check(tmp_path, genuine, lines=lines)
    assert code == 1
    assert out.startswith(
        "BAD entry 50 (line 51): its index says 51 — an entry was deleted, inserted or moved before it"
    )


def test_deleted_last_line(tmp_path, genuine):
    code, out = check(tmp_path, genuine, lines=genuine.lines[:99])
    assert code == 1 and out.startswith("BAD entry 99 (line 100): missing — the ledger ends after 99 entries")


def test_inserted_line(tmp_path, genuine):
    forged = make_entries(1, start=20, prev=leaf_hash(genuine.lines[19]).hex(), tag="-forged")[0]
    lines = genuine.lines[:20] + [forged] + genuine.lines[20:]
    code, out = check(tmp_path, genuine, lines=lines)
    assert code == 1 and out.startswith("BAD entry 21 (line 22): its index says 20")


def test_swapped_lines(tmp_path, genuine):
    lines = list(genuine.lines)
    lines[10], lines[11] = lines[11], lines[10]
    code, out = check(tmp_path, genuine, lines=lines)
    assert code == 1 and out.startswith("BAD entry 10 (line 11): its index says 11")


def test_rewritten_entry_with_relinked_chain_fails_on_the_root(tmp_path, genuine):
    lines = list(genuine.lines)
    entry = json.loads(lines[80])
    entry["amount"] = "0.01"
    lines[80] = canonical(entry)
    code, out = check(tmp_path, genuine, lines=relink(lines, 80))
    assert code == 1
    assert out.startswith("BAD entry 99 (line 100): the entries do not match the signed root")
    assert "rewritten together with the links" in out


def test_first_entry_prev_must_be_zeros(tmp_path, genuine):
    lines = list(genuine.lines)
    entry = json.loads(lines[0])
    entry["prev"] = "1" * 64
    lines[0] = canonical(entry)
    code, out = check(tmp_path, genuine, lines=lines)
    assert code == 1 and out.startswith("BAD entry 0 (line 1): its prev should be 64 zeros")


def test_missing_final_newline(tmp_path, genuine):
    ledger = tmp_path / "ledger.jsonl"
    write(ledger, genuine.lines)
    ledger.write_bytes(ledger.read_bytes()[:-1])
    code, out = run(ledger, write_json(tmp_path / "cp.json", genuine.cp), "--public-key", genuine.public_hex)
    assert code == 1 and out.startswith("BAD entry 99 (line 100): the line has no newline")


def test_lines_beyond_tree_size_fail(tmp_path, genuine):
    code, out = check(tmp_path, genuine, cp=genuine.cp_old)
    assert code == 1, out
    assert out.startswith(
        "BAD line 61: the ledger goes on after the 60 entries that checkpoint batch 5 covers (an entry not covered"
    )
    assert "--prefix" in out


def test_lines_beyond_tree_size_with_prefix(tmp_path, genuine):
    code, out = check(tmp_path, genuine, genuine.lines, genuine.cp_old, None, GENUINE, "--prefix")
    assert code == 0, out
    assert out.startswith("OK: 60 entries match checkpoint batch 5")
    assert "--prefix: 40 further lines (from line 61) are not covered by this checkpoint" in out


@pytest.mark.parametrize("tail", [b"\n", b"garbage\n", b'{"index":100}', b"\x00"])
def test_a_trailing_line_that_is_not_an_entry_fails(tmp_path, genuine, tail):
    ledger = write(tmp_path / "ledger.jsonl", genuine.lines)
    ledger.write_bytes(ledger.read_bytes() + tail)
    cp = write_json(tmp_path / "checkpoint.json", genuine.cp)
    code, out = run(ledger, cp, "--public-key", genuine.public_hex)
    assert code == 1, out
    assert out.startswith("BAD line 101: the ledger goes on after the 100 entries that checkpoint batch 7 covers")
    code, out = run(ledger, cp, "--public-key", genuine.public_hex, "--prefix")
    assert code == 0, out


def test_empty_ledger_with_empty_checkpoint(tmp_path, genuine):
    cp = sign(genuine.key, 0, 0, hashlib.sha256(b"").digest())
    code, out = check(tmp_path, genuine, lines=[], cp=cp)
    assert code == 0 and out.startswith("OK: 0 entries"), out


# --- Checkpoint checks ------------------------------------------------------------------


def test_bad_signature(tmp_path, genuine):
    cp = dict(genuine.cp)
    cp["signature"] = flip(bytes.fromhex(cp["signature"]), 5).hex()
    code, out = check(tmp_path, genuine, cp=cp)
    assert (code, out.strip()) == (1, "BAD signature on checkpoint batch 7")


def test_root_changed_without_resigning(tmp_path, genuine):
    cp = dict(genuine.cp, root_hash=tree_root(genuine.lines[:99]).hex())
    code, out = check(tmp_path, genuine, lines=genuine.lines[:99], cp=cp)
    assert (code, out.strip()) == (1, "BAD signature on checkpoint batch 7")


def test_wrong_public_key(tmp_path, genuine):
    other = raw_public(Ed25519PrivateKey.generate()).hex()
    code, out = check(tmp_path, genuine, key=other)
    assert code == 1 and out.startswith("BAD signature on checkpoint batch 7")


def test_forger_with_own_key_fails_against_the_commune_key(tmp_path, genuine):
    forger = Ed25519PrivateKey.generate()
    lines = relink([canonical(dict(json.loads(genuine.lines[0]), amount="1000000.00"))] + genuine.lines[1:], 0)
    cp = sign(forger, 7, 100, tree_root(lines))
    code, out = check(tmp_path, genuine, lines=lines, cp=cp, key=None)
    assert code == 3 and "OK" not in out
    code, out = check(tmp_path, genuine, lines=lines, cp=cp, key=genuine.public_hex)
    assert code == 1 and out.startswith("BAD signature on checkpoint batch 7")


def test_bad_checkpoint_format(tmp_path, genuine):
    code, out = check(tmp_path, genuine, cp=dict(genuine.cp, format="something/v2"))
    assert code == 1 and out.startswith("BAD checkpoint: format is")
    code, out = check(tmp_path, genuine, cp=dict(genuine.cp, tree_size="100"))
    assert code == 1 and "tree_size is not a non-negative integer" in out


# --- Older checkpoint ---------------------------------------------------------------------


def test_valid_previous(tmp_path, genuine):
    code, out = check(tmp_path, genuine, previous=genuine.cp_old, key=genuine.public_hex)
    assert code == 0, out
    assert out.startswith(
        f"OK: 100 entries match checkpoint batch 7 (root {genuine.cp['root_hash'][:16]}…), "
        f"signature valid (key {genuine.public_hex[:16]}…), older checkpoint batch 5 (60 entries) is a prefix"
    )


def test_previous_that_is_not_a_prefix(tmp_path, genuine):
    # The platform signed batch 5 over a history that differs from today's ledger (rewritten entry 30).
    forked = list(genuine.lines)
    forked[30] = canonical(dict(json.loads(forked[30]), amount="5.00"))
    forked = relink(forked, 30)
    old = sign(genuine.key, 5, 60, tree_root(forked[:60]))
    code, out = check(tmp_path, genuine, previous=old, key=genuine.public_hex)
    assert code == 1 and out.startswith("BAD older checkpoint batch 5: not a prefix of this ledger")


def test_previous_with_bad_signature(tmp_path, genuine):
    old = dict(genuine.cp_old, timestamp="2026-11-22T03:00:01Z")
    code, out = check(tmp_path, genuine, previous=old)
    assert (code, out.strip()) == (1, "BAD signature on older checkpoint batch 5")


def test_previous_larger_than_current(tmp_path, genuine):
    code, out = check(tmp_path, genuine, cp=genuine.cp_old, previous=genuine.cp)
    assert code == 1 and out.startswith("BAD older checkpoint batch 7: it is newer than checkpoint batch 5")
    bigger = sign(genuine.key, 4, 100, tree_root(genuine.lines))
    code, out = check(tmp_path, genuine, cp=genuine.cp_old, previous=bigger)
    assert code == 1 and out.startswith("BAD older checkpoint batch 4: it covered 100 entries, more than the 60")


# --- Inclusion proofs -------------------------------------------------------------------


def make_proof(genuine, leaf_index):
    frontier, nodes = Frontier(), {}
    for line in genuine.lines:
        for height, index, digest in frontier.append(leaf_hash(line)):
            nodes[(height, index)] = digest
    path = audit_path(leaf_index, 100, lambda h, i: nodes[(h, i)])
    return {
        "format": INCLUSION_FORMAT,
        "entry": genuine.lines[leaf_index].decode("utf-8"),
        "leaf_index": leaf_index,
        "tree_size": 100,
        "audit_path": [p.hex() for p in path],
        "checkpoint": genuine.cp,
    }


@pytest.mark.parametrize("leaf_index", [0, 41, 99])
def test_inclusion_ok(tmp_path, genuine, leaf_index):
    proof = write_json(tmp_path / "proof.json", make_proof(genuine, leaf_index))
    code, out = run("--inclusion", proof, "--public-key", genuine.public_hex)
    assert code == 0, out
    assert (tmp_path / "ledger-key.pin").exists()
    assert out.startswith(
        f"OK: entry {leaf_index} (line {leaf_index + 1}) is included in the 100 entries signed by checkpoint batch 7"
    )


def test_inclusion_tampered_entry(tmp_path, genuine):
    proof = make_proof(genuine, 41)
    proof["entry"] = canonical(dict(json.loads(proof["entry"]), amount="1.00")).decode("utf-8")
    code, out = run("--inclusion", write_json(tmp_path / "proof.json", proof), "--public-key", genuine.public_hex)
    assert code == 1 and out.startswith("BAD inclusion proof: entry 41 (line 42) is NOT in the ledger")


def test_inclusion_tampered_path_or_index(tmp_path, genuine):
    proof = make_proof(genuine, 41)
    proof["audit_path"][2] = "00" * 32
    code, out = run("--inclusion", write_json(tmp_path / "proof.json", proof), "--public-key", genuine.public_hex)
    assert code == 1 and "is NOT in the ledger" in out
    proof = make_proof(genuine, 41)
    proof["leaf_index"] = 40
    code, out = run("--inclusion", write_json(tmp_path / "proof.json", proof), "--public-key", genuine.public_hex)
    assert code == 1 and out.startswith("BAD inclusion proof: the entry's index (41) is not leaf_index 40")


def test_inclusion_wrong_key(tmp_path, genuine):
    proof = write_json(tmp_path / "proof.json", make_proof(genuine, 41))
    other = raw_public(Ed25519PrivateKey.generate()).hex()
    code, out = run("--inclusion", proof, "--public-key", other)
    assert code == 1 and out.startswith("BAD signature on checkpoint batch 7")


# --- Usage ------------------------------------------------------------------------------


def test_usage_errors_exit_2(tmp_path, genuine):
    assert run()[0] == 2
    key = ["--public-key", genuine.public_hex]
    assert run(tmp_path / "missing.jsonl", tmp_path / "missing.json", *key)[0] == 2
    ledger = write(tmp_path / "ledger.jsonl", genuine.lines)
    cp = write_json(tmp_path / "cp.json", genuine.cp)
    assert run(ledger, cp, "--public-key", "not-a-key")[0] == 2
    assert run(ledger, "--consistency", cp)[0] == 2  # no --previous
    assert run(ledger, cp, "--tiles", tmp_path)[0] == 2  # a ledger with --tiles
    assert run(ledger, cp, "--entry", "3")[0] == 2
    (tmp_path / "page.html").write_text("<html>404</html>")
    assert run(ledger, tmp_path / "page.html", *key)[0] == 2
    assert run("--inclusion", tmp_path / "proof.json", ledger)[0] == 2


# --- The C2SP signed note, the verifier key, consistency proofs and tiles -------------------
# Built here from the contract (the project's key, donations.merkle, `cryptography`), not from the
# server's code, so that the two are checked against each other.


def _project_key():
    from donations.publication import _private_key

    return _private_key()


def log_origin():
    from django.conf import settings

    return urlsplit(settings.SITE_URL).netloc + "/ledger"


def note_key_hash(name, public):
    return hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]


def vkey(name, public):
    encoded = base64.b64encode(b"\x01" + public).decode()
    return f"{name}+{note_key_hash(name, public).hex()}+{encoded}"


def signed_note(key, origin, size, root, name=None, extra_signatures=()):
    text = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n".encode()
    name = name or origin
    signature = base64.b64encode(note_key_hash(name, raw_public(key)) + key.sign(text)).decode()
    lines = [f"— {name} {signature}\n", *extra_signatures]
    return text + b"\n" + "".join(lines).encode()


def subproof(m, leaves, complete):
    """RFC 6962 §2.1.2 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if complete else [merkle_root(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return subproof(m, leaves[:k], complete) + [merkle_root(leaves[k:])]
    return subproof(m - k, leaves[k:], False) + [merkle_root(leaves[:k])]


def consistency(lines, m, n, old_lines=None):
    leaves = [leaf_hash(line) for line in lines[:n]]
    proof = subproof(m, leaves, True) if 0 < m < n else []
    return {
        "old_size": m,
        "new_size": n,
        "old_root": tree_root((old_lines or lines)[:m]).hex(),
        "new_root": tree_root(lines[:n]).hex(),
        "proof": [h.hex() for h in proof],
    }


def write_tiles(directory, lines, partial=True):
    """C2SP tlog-tiles, height 8: hash tiles per level and entry bundles, at their paths."""

    def index_path(n):
        digits = f"{n:03d}"
        digits = "0" * (-len(digits) % 3) + digits
        groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
        return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])

    def put(kind, n, items, encode):
        width = len(items)
        path = directory / "tile" / kind / (index_path(n) + ("" if width == 256 else f".p/{width}"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(map(encode, items)))

    size = len(lines)
    for n in range(0, size, 256):
        put("entries", n // 256, lines[n : n + 256], lambda e: len(e).to_bytes(2, "big") + e)
    level, hashes = 0, [leaf_hash(line) for line in lines]
    while hashes:
        for n in range(0, len(hashes), 256):
            put(str(level), n // 256, hashes[n : n + 256], bytes)
        hashes = [merkle_root(hashes[i : i + 256]) for i in range(0, len(hashes) - 255, 256)]
        level += 1


class NoteLog:
    def __init__(self, lines):
        self.key = _project_key()
        self.public = raw_public(self.key)
        self.origin = log_origin()
        self.vkey = vkey(self.origin, self.public)
        self.lines = lines
        self.note = signed_note(self.key, self.origin, len(lines), tree_root(lines))
        self.note_old = signed_note(self.key, self.origin, 60, tree_root(lines[:60]))


@pytest.fixture(scope="module")
def note_log():
    return NoteLog(make_entries(100))


def test_the_project_key_is_the_one_in_the_contract(note_log):
    """A note made here verifies with `cryptography` as Go's note.Open would check it."""
    body, _, signatures = note_log.note.partition(b"\n\n")
    name, signature = signatures.decode().rstrip("\n").split(" ")[1:]
    raw = base64.b64decode(signature)
    assert name == note_log.origin and raw[:4] == vl.key_hash(name, note_log.public)
    note_log.key.public_key().verify(raw[4:], body + b"\n")
    assert vl.ed25519_verify(note_log.public, body + b"\n", raw[4:])


def test_note_checkpoint_with_vkey(tmp_path, note_log):
    ledger = write(tmp_path / "ledger.jsonl", note_log.lines)
    (tmp_path / "checkpoint").write_bytes(note_log.note)
    code, out = run(ledger, tmp_path / "checkpoint", "--public-key", note_log.vkey)
    assert code == 0, out
    root = tree_root(note_log.lines).hex()
    assert out.startswith(f"OK: 100 entries match checkpoint {note_log.origin} size 100 (root {root[:16]}…)")
    assert f"signature valid (key {'+'.join(note_log.vkey.split('+')[:2])})" in out
    assert (tmp_path / "ledger-key.pin").read_text() == note_log.vkey + "\n"
    code, out = run(ledger, tmp_path / "checkpoint")  # the pin
    assert code == 0, out


def test_note_checkpoint_with_hex_key_and_a_vkey_file(tmp_path, note_log):
    ledger = write(tmp_path / "ledger.jsonl", note_log.lines)
    (tmp_path / "checkpoint").write_bytes(note_log.note)
    code, out = run(ledger, tmp_path / "checkpoint", "--public-key", note_log.public.hex())
    assert code == 0, out
    assert (tmp_path / "ledger-key.pin").read_text() == note_log.vkey + "\n"  # pinned with the log's name
    (tmp_path / "verifier-key.txt").write_text(note_log.vkey + "\n")
    code, out = run(ledger, tmp_path / "checkpoint", "--public-key", tmp_path / "verifier-key.txt")
    assert code == 0, out


def test_note_with_witness_cosignatures_is_accepted(tmp_path, note_log):
    witness = base64.b64encode(b"\x12\x34\x56\x78" + b"\x00" * 72).decode()
    note = signed_note(
        note_log.key,
        note_log.origin,
        100,
        tree_root(note_log.lines),
        extra_signatures=[f"— witness.example {witness}\n"],
    )
    ledger = write(tmp_path / "ledger.jsonl", note_log.lines)
    code, out = run(ledger, write_bytes(tmp_path / "checkpoint", note), "--public-key", note_log.vkey)
    assert code == 0, out


def write_bytes(path, data):
    path.write_bytes(data)
    return path


def test_note_with_wrong_key_hash(tmp_path, note_log):
    """Signed by another key under the log's name: the key hash is not the pinned key's."""
    other = Ed25519PrivateKey.generate()
    note = signed_note(other, note_log.origin, 100, tree_root(note_log.lines))
    ledger = write(tmp_path / "ledger.jsonl", note_log.lines)
    code, out = run(ledger, write_bytes(tmp_path / "checkpoint", note), "--public-key", note_log.vkey)
    assert code == 1, out
    expected = note_key_hash(note_log.origin, note_log.public).hex()
    assert out.startswith(
        f"BAD checkpoint {note_log.origin} size 100: its signature by '{note_log.origin}' carries key"
    )
    assert f"not {expected} of the pinned key — it was signed with a different key" in out


def test_note_with_right_key_hash_but_bad_signature(tmp_path, note_log):
    body, _, sig = note_log.note.partition(b"\n\n")
    name, signature = sig.decode().rstrip("\n").split(" ")[1:]
    raw = bytearray(base64.b64decode(signature))
    raw[10] ^= 1
    note = body + b"\n\n" + f"— {name} {base64.b64encode(bytes(raw)).decode()}\n".encode()
    ledger = write(tmp_path / "ledger.jsonl", note_log.lines)
    code, out = run(ledger, write_bytes(tmp_path / "checkpoint", note), "--public-key", note_log.vkey)
    assert (code, out.strip()) == (1, f"BAD signature on checkpoint {note_log.origin} size 100")


def test_note_of_another_origin_or_unsigned_or_edited(tmp_path, note_log):
    ledger = write(tmp_path / "ledger.jsonl", note_log.lines)
    cp = tmp_path / "checkpoint"
    other = signed_note(note_log.key, "elsewhere.example/log", 100, tree_root(note_log.lines))
    code, out = run(ledger, write_bytes(cp, other), "--public-key", note_log.vkey)
    assert code == 1 and "its origin is 'elsewhere.example/log', but the pinned key is the key of the log" in out
    body = note_log.note.partition(b"\n\n")[0] + b"\n"
    code, out = run(ledger, write_bytes(cp, body + b"\n"), "--public-key", note_log.vkey)
    assert code == 1 and out.startswith("BAD checkpoint: the note carries no signature"), out
    edited = note_log.note.replace(b"\n100\n", b"\n99\n", 1)
    code, out = run(ledger, write_bytes(cp, edited), "--public-key", note_log.vkey)
    assert code == 1 and out.startswith(f"BAD signature on checkpoint {note_log.origin} size 99"), out
    code, out = run(ledger, write_bytes(cp, note_log.note.replace(b"\n", b"\r\n")), "--public-key", note_log.vkey)
    assert code == 1 and "control character" in out


def test_vkey_with_altered_hash_is_refused(tmp_path, note_log):
    name, digest, key = note_log.vkey.split("+", 2)
    altered = f"{name}+{int(digest, 16) ^ 1:08x}+{key}"
    ledger = write(tmp_path / "ledger.jsonl", note_log.lines)
    code, out = run(ledger, write_bytes(tmp_path / "checkpoint", note_log.note), "--public-key", altered)
    assert code == 2 and "is not the hash of its name and key" in out


def test_note_extra_lines_fail_closed(tmp_path, note_log):
    ledger = write(tmp_path / "ledger.jsonl", note_log.lines)
    cp = write_bytes(tmp_path / "checkpoint", note_log.note_old)
    code, out = run(ledger, cp, "--public-key", note_log.vkey)
    assert code == 1 and out.startswith(
        f"BAD line 61: the ledger goes on after the 60 entries that checkpoint {note_log.origin} size 60"
    )
    code, out = run(ledger, cp, "--prefix")
    assert code == 3, out  # the failed run pinned nothing
    code, out = run(ledger, cp, "--prefix", "--public-key", note_log.vkey)
    assert code == 0, out


def test_note_previous_prefix(tmp_path, note_log):
    ledger = write(tmp_path / "ledger.jsonl", note_log.lines)
    cp = write_bytes(tmp_path / "checkpoint", note_log.note)
    old = write_bytes(tmp_path / "checkpoint-old", note_log.note_old)
    code, out = run(ledger, cp, "--previous", old, "--public-key", note_log.vkey)
    assert code == 0 and f"older checkpoint {note_log.origin} size 60 (60 entries) is a prefix" in out, out


# --- Consistency proofs ---------------------------------------------------------------------


def test_consistency_algorithm_on_every_pair():
    lines = make_entries(40)
    for n in range(0, 41):
        for m in range(0, n + 1):
            c = consistency(lines, m, n)
            proof = [bytes.fromhex(h) for h in c["proof"]]
            old, new = bytes.fromhex(c["old_root"]), bytes.fromhex(c["new_root"])
            assert vl.verify_consistency(m, n, old, new, proof), (m, n)
            if proof:
                assert not vl.verify_consistency(m, n, old, new, proof[:-1]), (m, n)
                assert not vl.verify_consistency(m, n, old, new, [flip(proof[0], 3)] + proof[1:]), (m, n)
                assert not vl.verify_consistency(m, n, old, new, proof + [proof[0]]), (m, n)
            if m and m < n:
                assert not vl.verify_consistency(m, n, tree_root(lines[: m - 1] + [b"x"]), new, proof)
            if m > 1 and m < n:
                assert not vl.verify_consistency(m - 1, n, old, new, proof), (m, n)


def consistency_run(tmp_path, note_log, proof, old_note=None, new_note=None, key=True):
    files = [
        "--consistency",
        write_json(tmp_path / "consistency.json", proof),
        "--previous",
        write_bytes(tmp_path / "checkpoint-kept", old_note or note_log.note_old),
        write_bytes(tmp_path / "checkpoint", new_note or note_log.note),
    ]
    return run(*files, *(["--public-key", note_log.vkey] if key else []))


def test_good_consistency_proof(tmp_path, note_log):
    code, out = consistency_run(tmp_path, note_log, consistency(note_log.lines, 60, 100))
    assert code == 0, out
    assert out.startswith(
        f"OK: older checkpoint {note_log.origin} size 60 (60 entries) is a prefix of checkpoint {note_log.origin} size 100"
    )
    assert re.search(r"consistency proof of \d+ hashes checked in [0-9.]+ ms", out)


def test_consistency_with_json_checkpoints(tmp_path, genuine):
    files = [
        "--consistency",
        write_json(tmp_path / "consistency.json", consistency(genuine.lines, 60, 100)),
        "--previous",
        write_json(tmp_path / "checkpoint-5.json", genuine.cp_old),
        write_json(tmp_path / "checkpoint.json", genuine.cp),
    ]
    code, out = run(*files, "--public-key", genuine.public_hex)
    assert code == 0 and out.startswith("OK: older checkpoint batch 5 (60 entries) is a prefix of checkpoint batch 7")


def test_consistency_proof_over_a_rewritten_history(tmp_path, note_log):
    """The platform signed the checkpoint you kept over a history it later rewrote (entry 30)."""
    forked = list(note_log.lines)
    forked[30] = canonical(dict(json.loads(forked[30]), amount="5.00"))
    forked = relink(forked, 30)
    kept = signed_note(note_log.key, note_log.origin, 60, tree_root(forked[:60]))
    # An honest proof of today's tree names today's old root: not the one you kept.
    code, out = consistency_run(tmp_path, note_log, consistency(note_log.lines, 60, 100), old_note=kept)
    assert code == 1 and out.startswith("BAD consistency proof: its old tree (60 entries, root"), out
    # A proof that claims your old root cannot join it to today's tree.
    code, out = consistency_run(tmp_path, note_log, consistency(note_log.lines, 60, 100, forked), old_note=kept)
    assert code == 1, out
    assert out.startswith(
        f"BAD consistency proof: older checkpoint {note_log.origin} size 60 is NOT a prefix of checkpoint"
    )


def test_bad_consistency_proofs(tmp_path, note_log):
    good = consistency(note_log.lines, 60, 100)
    tampered = dict(
        good, proof=[good["proof"][0][:-1] + "0" if good["proof"][0][-1] != "0" else "1"] + good["proof"][1:]
    )
    code, out = consistency_run(tmp_path, note_log, tampered)
    assert code == 1 and "is NOT a prefix" in out
    code, out = consistency_run(tmp_path, note_log, dict(good, proof=good["proof"][:-1]))
    assert code == 1 and "is NOT a prefix" in out
    code, out = consistency_run(tmp_path, note_log, dict(good, new_size=99))
    assert code == 1 and "its new tree (99 entries" in out
    code, out = consistency_run(tmp_path, note_log, dict(good, proof="00"))
    assert code == 1 and "missing or of the wrong type" in out
    # the sizes reversed: the newer checkpoint given as the one kept
    code, out = consistency_run(tmp_path, note_log, good, old_note=note_log.note, new_note=note_log.note_old)
    assert code == 1 and "it covered 100 entries, more than the 60" in out
    code, out = consistency_run(tmp_path, note_log, good, key=False)
    assert code == 3


# --- Tiles ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tile_log():
    return NoteLog(make_entries(70000 // 100))  # 700 entries: two full tiles and a partial one


def tiles_run(tmp_path, log, base, *extra):
    cp = write_bytes(tmp_path / "checkpoint", log.note)
    return run("--tiles", base, cp, "--public-key", log.vkey, *extra)


def test_tile_paths():
    assert vl.tile_index_path(0) == "000"
    assert vl.tile_index_path(67) == "067"
    assert vl.tile_index_path(1234067) == "x001/x234/067"
    assert vl.tile_path(0, 2, 188) == "tile/0/002.p/188"
    assert vl.tile_path("entries", 1000, 256) == "tile/entries/x001/000"


def test_tiles_whole_tree(tmp_path, tile_log):
    write_tiles(tmp_path / "log", tile_log.lines)
    code, out = tiles_run(tmp_path, tile_log, tmp_path / "log")
    assert code == 0, out
    assert out.startswith(f"OK: the 700 entries and every hash tile of {tmp_path / 'log'} match checkpoint")


def test_tiles_full_tile_instead_of_a_partial_one(tmp_path, tile_log):
    """A log may drop a partial tile once the full one exists: the verifier reads its prefix."""
    write_tiles(tmp_path / "log", make_entries(768)[:700])
    write_tiles(tmp_path / "log", make_entries(768))  # the log grew; its partial tiles of 700 may go
    for kind in ["0", "entries"]:
        (tmp_path / "log" / "tile" / kind / "002.p" / "188").unlink()
    note = signed_note(tile_log.key, tile_log.origin, 700, tree_root(make_entries(768)[:700]))
    code, out = run("--tiles", tmp_path / "log", write_bytes(tmp_path / "cp", note), "--public-key", tile_log.vkey)
    assert code == 0, out


@pytest.mark.parametrize("entry", [0, 300, 699])
def test_tiles_one_entry(tmp_path, tile_log, entry):
    write_tiles(tmp_path / "log", tile_log.lines)
    code, out = tiles_run(tmp_path, tile_log, tmp_path / "log", "--entry", entry)
    assert code == 0, out
    assert out.startswith(f"OK: entry {entry} is included in the 700 entries of checkpoint")


@pytest.mark.parametrize(
    "path, offset, expected",
    [
        ("tile/0/001", 5 * 32, "BAD tile tile/0/001: hash 5 is not the leaf hash of entry 261"),
        ("tile/1/000.p/2", 33, "BAD tile tile/1/000.p/2: hash 1 is not the root of the tile below it"),
        ("tile/entries/002.p/188", 2, "BAD entry 512 (in tile/entries/002[.p/...]): not valid JSON"),
    ],
)
def test_tiles_tampered(tmp_path, tile_log, path, offset, expected):
    write_tiles(tmp_path / "log", tile_log.lines)
    tile = tmp_path / "log" / path
    data = bytearray(tile.read_bytes())
    data[offset] ^= 0x40
    tile.write_bytes(bytes(data))
    code, out = tiles_run(tmp_path, tile_log, tmp_path / "log")
    assert code == 1, out
    assert out.startswith(expected), out


def test_tiles_rewritten_consistently_fail_on_the_root(tmp_path, tile_log):
    """Entry, leaf tile and upper tile all rewritten together: only the signed root catches it."""
    lines = list(tile_log.lines)
    lines[400] = canonical(dict(json.loads(lines[400]), amount="0.01"))
    write_tiles(tmp_path / "log", relink(lines, 400))
    code, out = tiles_run(tmp_path, tile_log, tmp_path / "log")
    assert code == 1 and out.startswith("BAD tiles: the entries in the entry bundles do not make the signed root"), out
    code, out = tiles_run(tmp_path, tile_log, tmp_path / "log", "--entry", 400)
    assert code == 1 and out.startswith("BAD tiles: entry 400 (in tile/entries/001) is NOT in the tree signed"), out


def test_tiles_missing_or_cut(tmp_path, tile_log):
    write_tiles(tmp_path / "log", tile_log.lines)
    (tmp_path / "log" / "tile" / "1" / "000.p" / "2").unlink()
    code, out = tiles_run(tmp_path, tile_log, tmp_path / "log")
    assert code == 2 and "tile tile/1/000.p/2 is missing" in out
    write_tiles(tmp_path / "log", tile_log.lines)
    bundle = tmp_path / "log" / "tile" / "entries" / "002.p" / "188"
    bundle.write_bytes(bundle.read_bytes()[:-3])
    code, out = tiles_run(tmp_path, tile_log, tmp_path / "log")
    assert code == 1 and out.startswith("BAD tile tile/entries/002.p/188: entry 699 is cut short"), out
    code, out = tiles_run(tmp_path, tile_log, tmp_path / "log", "--entry", 700)
    assert code == 2 and "--entry 700 is not in the 700 entries" in out


def test_tiles_over_http(tmp_path, tile_log):
    write_tiles(tmp_path / "log", tile_log.lines)
    handler = functools.partial(QuietHandler, directory=str(tmp_path / "log"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        code, out = tiles_run(tmp_path, tile_log, base, "--entry", 513)
        assert code == 0, out
        code, out = tiles_run(tmp_path, tile_log, base + "/nowhere")
        assert code == 2 and "is missing from" in out
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


# --- Help ----------------------------------------------------------------------------------


def test_help_documents_exit_codes():
    code, out = run("--help")
    assert code == 0
    for line in ["0  all checks passed", "1  BAD", "2  usage error", "3  NOT CHECKED", "--prefix", "--consistency"]:
        assert line in out
