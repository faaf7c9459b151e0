"""tools/verify_ledger.py: the citizen's stand-alone verifier.

The CLI runs as a subprocess under `python -I -S`: no site-packages at all
(not even the venv's), proving the downloaded file needs only the standard
library. Fixtures are built with donations.merkle and signed with the
`cryptography` package, so the verifier's own hashing and Ed25519 code are
checked against independent implementations."""

import ast
import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

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
