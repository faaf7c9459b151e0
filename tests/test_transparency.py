"""The ledger as a C2SP transparency log (issue 15): signed-note checkpoints,
tlog-tiles, RFC 9162 consistency proofs — checked here in Python against
the specs, and by Go's own golang.org/x/mod/sumdb/note and sumdb/tlog."""

import base64
import hashlib
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import connection
from django.test import Client, override_settings
from django.utils import translation

from donations import merkle, publication, transparency
from donations.models import LedgerBatch, PublishedEntry

from .ledger_support import bulk_goods_in, check_ok

INTEROP = Path(__file__).resolve().parent / "interop" / "tlogcheck"
GOPATH = Path("/usr/share/gocode")
IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def client() -> Client:
    return Client(HTTP_ACCEPT_LANGUAGE="en")


def publish(areas, sizes):
    """Batches whose tree sizes are ``sizes``."""
    bulk_goods_in(sizes[-1], areas.village_a)
    done = 0
    for size in sizes:
        publication.publish_pending(limit=size - done)
        done = size
    return list(LedgerBatch.objects.order_by("number"))


def rewrite_note(number: int, note: str) -> None:
    """What an attacker with the database could do: batches are append-only."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE donations_ledgerbatch DISABLE TRIGGER donations_ledgerbatch_append_only")
        cursor.execute("UPDATE donations_ledgerbatch SET note = %s WHERE number = %s", [note, number])
        cursor.execute("ALTER TABLE donations_ledgerbatch ENABLE TRIGGER donations_ledgerbatch_append_only")


def leaves() -> list[bytes]:
    return [bytes.fromhex(h) for h in PublishedEntry.objects.order_by("index").values_list("leaf_hash", flat=True)]


# --- Reference implementations, straight from RFC 9162 -------------------------------


def mth(hashes: list[bytes]) -> bytes:
    if not hashes:
        return merkle.EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return merkle.node_hash(mth(hashes[:k]), mth(hashes[k:]))


def subproof(m: int, hashes: list[bytes], whole: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if whole else [mth(hashes)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return subproof(m, hashes[:k], whole) + [mth(hashes[k:])]
    return subproof(m - k, hashes[k:], False) + [mth(hashes[:k])]


def getter(hashes):
    return lambda height, index: mth(hashes[index << height : (index + 1) << height])


def test_consistency_proofs_are_rfc_9162_for_every_pair_of_sizes():
    hashes = [merkle.leaf_hash(str(i).encode()) for i in range(70)]
    for n in range(1, 71):
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(m, n, getter(hashes))
            assert proof == subproof(m, hashes[:n], True), (m, n)
            assert merkle.verify_consistency(m, n, mth(hashes[:m]), mth(hashes[:n]), proof), (m, n)


def test_a_consistency_proof_fails_for_anything_changed():
    hashes = [merkle.leaf_hash(str(i).encode()) for i in range(40)]
    for m, n in [(1, 2), (3, 7), (4, 8), (13, 40), (16, 33)]:
        proof = merkle.consistency_proof(m, n, getter(hashes))
        old, new = mth(hashes[:m]), mth(hashes[:n])
        other = mth(hashes[: m - 1] + [merkle.leaf_hash(b"rewritten")])
        assert not merkle.verify_consistency(m, n, other, new, proof)
        assert not merkle.verify_consistency(m, n, old, other, proof)
        assert not merkle.verify_consistency(m, n, old, new, proof[:-1])
        assert not merkle.verify_consistency(m, n, old, new, proof + [old])
        for i in range(len(proof)):
            bad = list(proof)
            bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
            assert not merkle.verify_consistency(m, n, old, new, bad)
    with pytest.raises(ValueError):
        merkle.consistency_proof(0, 3, getter(hashes))
    with pytest.raises(ValueError):
        merkle.consistency_proof(4, 3, getter(hashes))


def test_tile_paths_are_the_specs():
    assert transparency.encode_index(0) == "000"
    assert transparency.encode_index(67) == "067"
    assert transparency.encode_index(1234067) == "x001/x234/067"
    assert transparency.tile_path(0, 1234067, 8) == "tile/0/x001/x234/067.p/8"
    assert transparency.tile_path(None, 5) == "tile/entries/005"
    for good, (level, index, width) in {
        "0/000": (0, 0, 256),
        "1/x001/x234/067": (1, 1234067, 256),
        "2/067.p/255": (2, 67, 255),
        "entries/x001/000.p/1": (None, 1000, 1),
    }.items():
        t = transparency.parse_tile_path(good)
        assert (t.level, t.index, t.width) == (level, index, width)
        assert transparency.tile_path(t.level, t.index, t.width) == "tile/" + good
    for bad in ["0", "0/0", "0/67", "0/0067", "0/x000/067", "01/000", "64/000", "a/000", "0/000.p/0",
                "0/000.p/256", "0/000.p/08", "0/000.p/", "0/x1/000", "0/000/", "entries", "0/٠٠٠", "0/067.q/3",
                "8/0/000", "data/000"]:  # fmt: skip
        assert transparency.parse_tile_path(bad) is None, bad


def test_the_verifier_key_and_note_are_c2sp(db, settings):
    settings.LEDGER_ORIGIN = ""
    settings.SITE_URL = "https://ledger.example.org:8443"
    key = publication._private_key()
    public = key.public_key().public_bytes_raw()
    name = "ledger.example.org:8443/ledger"
    vkey = transparency.verifier_key(key)
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]
    encoded = base64.b64encode(b"\x01" + public).decode()
    assert vkey == f"{name}+{key_id.hex()}+{encoded}"
    root = hashlib.sha256(b"root").hexdigest()
    note = transparency.signed_note(key, 12, root)
    body, signature_line = note.split("\n\n")
    assert body + "\n" == f"{name}\n12\n{base64.b64encode(bytes.fromhex(root)).decode()}\n"
    assert signature_line.startswith(f"\u2014 {name} ") and note.endswith("\n")
    signature = base64.b64decode(signature_line.split(" ")[2])
    assert signature[:4] == key_id and len(signature) == 68
    Ed25519PublicKey.from_public_bytes(public).verify(signature[4:], (body + "\n").encode())
    settings.LEDGER_ORIGIN = "sun.example/ledger"
    assert transparency.signed_note(key, 12, root).startswith("sun.example/ledger\n12\n")


def test_checkpoint_notes_say_the_json_checkpoints_tree(areas):
    batches = publish(areas, [3, 20])
    c = client()
    latest = json.loads(b"".join(c.get("/ledger/checkpoint.json").streaming_content))
    response = c.get("/ledger/checkpoint")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    lines = response.content.decode().split("\n")
    assert lines[:3] == ["127.0.0.1:8000/ledger", str(latest["tree_size"]),
                         base64.b64encode(bytes.fromhex(latest["root_hash"])).decode()]  # fmt: skip
    assert lines[3] == "" and lines[4].startswith("\u2014 127.0.0.1:8000/ledger ")
    first = c.get("/ledger/checkpoints/1")
    assert first.content.decode() == batches[0].note and first["Cache-Control"] == IMMUTABLE
    assert first.content.decode().split("\n")[1] == "3"
    assert c.get("/ledger/verifier-key.txt").content.decode() == publication.verifier_key() + "\n"
    for batch in batches:
        assert publication.note_valid(batch)
    check_ok()


def test_a_batch_from_before_notes_is_signed_the_same_way(areas):
    (batch,) = publish(areas, [5])
    stored = batch.note
    rewrite_note(batch.number, "")
    assert client().get("/ledger/checkpoints/1").content.decode() == stored


def test_the_check_refuses_a_note_that_lies(areas):
    (batch,) = publish(areas, [5])
    rewrite_note(batch.number, batch.note.replace("\n5\n", "\n6\n", 1))
    assert any("signed note" in p for p in publication.run_check().problems)


def test_tiles_hold_the_trees_hashes_and_entries(areas):
    publish(areas, [300, 600])
    c = client()
    hashes = leaves()
    full = c.get("/ledger/tile/0/001")
    assert full.status_code == 200 and full["Cache-Control"] == IMMUTABLE
    assert full.content == b"".join(hashes[256:512])
    partial = c.get("/ledger/tile/0/002.p/88")
    assert partial.content == b"".join(hashes[512:600]) and partial["Cache-Control"] != IMMUTABLE
    assert c.get("/ledger/tile/0/002.p/44").content == b"".join(hashes[512:556])
    level1 = c.get("/ledger/tile/1/000.p/2")
    assert level1.content == mth(hashes[:256]) + mth(hashes[256:512])
    bundle = c.get("/ledger/tile/entries/002.p/88").content
    lines = list(PublishedEntry.objects.order_by("index").values_list("line", flat=True)[512:600])
    offset, entries = 0, []
    while offset < len(bundle):
        (size,) = struct.unpack(">H", bundle[offset : offset + 2])
        entries.append(bundle[offset + 2 : offset + 2 + size])
        offset += 2 + size
    assert entries == [line.encode() for line in lines]
    assert [merkle.leaf_hash(e) for e in entries] == hashes[512:600]
    assert c.get("/ledger/tile/entries/000")["Cache-Control"] == IMMUTABLE


def test_consistency_proofs_between_published_sizes(areas, django_assert_max_num_queries):
    publish(areas, [7, 40, 100])
    hashes = leaves()
    c = client()
    for m, n in [(7, 40), (7, 100), (40, 100), (100, 100), (13, 77)]:
        response = c.get(f"/ledger/consistency/{m}/{n}.json")
        assert response.status_code == 200, response.content
        data = response.json()
        assert data["old_size"] == m and data["new_size"] == n
        assert data["old_root"] == mth(hashes[:m]).hex() and data["new_root"] == mth(hashes[:n]).hex()
        assert [bytes.fromhex(h) for h in data["proof"]] == subproof(m, hashes[:n], True)
    with django_assert_max_num_queries(3):  # the latest batch, stored nodes, small subtrees' leaves
        assert c.get("/ledger/consistency/13/77.json").status_code == 200
    with django_assert_max_num_queries(5):
        proof = c.get("/ledger/entries/45/proof.json").json()
    assert merkle.verify_inclusion(hashes[45], 45, 100, [bytes.fromhex(h) for h in proof["audit_path"]], mth(hashes))
    batches = {b.tree_size: b.root_hash for b in LedgerBatch.objects.all()}
    assert c.get("/ledger/consistency/7/100.json").json()["old_root"] == batches[7]


@pytest.mark.parametrize(
    ("url", "status", "says"),
    [
        ("/ledger/consistency/40/7.json", 400, "must not be larger"),
        ("/ledger/consistency/0/7.json", 400, "at least 1"),
        ("/ledger/consistency/x/7.json", 400, "digits"),
        ("/ledger/consistency/٣/7.json", 400, "digits"),
        ("/ledger/consistency/-1/7.json", 400, "digits"),
        ("/ledger/consistency/7/41.json", 404, "holds 40 entries"),
        ("/ledger/consistency/7/99999999999999999999999.json", 400, "digits"),
        ("/ledger/entries/40/proof.json", 404, "no entry"),
        ("/ledger/entries/99999999999999999999999/proof.json", 404, "no entry"),
    ],
)
def test_bad_proof_requests_get_a_clear_error(areas, url, status, says):
    publish(areas, [7, 40])
    response = client().get(url)
    assert response.status_code == status
    assert says in response.json()["error"]


@pytest.mark.parametrize(
    "path",
    ["0/000", "0/000.p/41", "1/000.p/1", "entries/001.p/1", "0/x001/000", "0/0", "9/000", "entries/000.p/41",
     "0/000.p/0", "nonsense", "0/000.p/256"],
)  # fmt: skip
def test_tiles_the_log_does_not_hold_are_404(areas, path):
    publish(areas, [40])
    response = client().get("/ledger/tile/" + path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/plain") and b"tile" in response.content


def test_errors_are_translated(areas):
    publish(areas, [7])
    c = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    with translation.override("zh-hans"):
        assert "不" in c.get("/ledger/consistency/7/3.json").json()["error"]
        assert "瓦片" in c.get("/ledger/tile/0/000").content.decode()
        assert "条目" in c.get("/ledger/entries/9/proof.json").json()["error"]


def test_no_checkpoint_before_the_first_batch(db):
    c = client()
    assert c.get("/ledger/checkpoint").status_code == 404
    assert c.get("/ledger/checkpoints/1").status_code == 404
    assert c.get("/ledger/checkpoints/99999999999").status_code == 404
    assert c.get("/ledger/consistency/1/1.json").status_code == 404


# --- Go's implementation against a live server ---------------------------------------------


@pytest.fixture(scope="module")
def go_client(tmp_path_factory) -> Path:
    """tests/interop/tlogcheck, built offline against Debian's golang.org/x/mod."""
    tmp_path = tmp_path_factory.mktemp("go")
    if shutil.which("go") is None:
        pytest.skip("Go is not installed (apt-get install golang-go golang-golang-x-mod-dev)")
    if not (GOPATH / "src/golang.org/x/mod/sumdb/note").is_dir():
        pytest.skip("golang.org/x/mod is not installed (apt-get install golang-golang-x-mod-dev)")
    binary = tmp_path / "tlogcheck"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOPATH), "GOCACHE": str(tmp_path / "gocache"),
           "GOFLAGS": "", "CGO_ENABLED": "0"}  # fmt: skip
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=INTEROP, env=env, check=True, timeout=300)
    return binary


@pytest.mark.django_db(transaction=True)
def test_go_opens_the_notes_and_proves_from_the_tiles(areas, live_server, go_client):
    binary = go_client
    publish(areas, [5, 300, 1000])
    result = subprocess.run(
        [str(binary), live_server.url, "2", "0", "4", "255", "256", "299", "767", "999"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    latest = LedgerBatch.objects.get(number=3)
    root = base64.b64encode(bytes.fromhex(latest.root_hash)).decode()
    assert 'note.Open(/ledger/checkpoint): ok, 1 verified signature(s) by "127.0.0.1:8000/ledger"' in result.stdout
    assert f"tlog.ParseTree: size 1000 hash {root}" in result.stdout
    assert "consistency of tree 300 with tree 1000: ok" in result.stdout
    assert result.stdout.endswith("OK\n")


@pytest.mark.django_db(transaction=True)
def test_go_refuses_a_note_signed_by_another_key(areas, live_server, go_client):
    binary = go_client
    publish(areas, [5, 10])
    with override_settings(LEDGER_SIGNING_KEY=hashlib.sha256(b"someone else").hexdigest()):
        other = transparency.signed_note(publication._private_key(), 10, LedgerBatch.objects.get(number=2).root_hash)
    rewrite_note(2, other)
    result = subprocess.run([str(binary), live_server.url, "1", "0"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "FAIL note.Open(/ledger/checkpoint): note has no verifiable signatures" in result.stdout, result.stdout
