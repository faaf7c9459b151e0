"""donations.merkle: RFC 6962 hashing, the incremental frontier, and proofs from stored nodes.

No database: pure computation, cross-checked against certificate-transparency
test vectors and a naive recursive transcription of RFC 6962 §2.1."""

import hashlib
import json
import math
import random

import pytest

from donations import merkle
from donations.merkle import (
    EMPTY_ROOT,
    Frontier,
    audit_path,
    canonical,
    checkpoint_message,
    leaf_hash,
    node_hash,
    root,
    root_at,
    verify_inclusion,
)

# --- Naive RFC 6962 §2.1, straight from the text ---------------------------------------


def naive_mth(leaves):
    """MTH over leaf *hashes*."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(naive_mth(leaves[:k]), naive_mth(leaves[k:]))


def naive_path(m, leaves):
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return naive_path(m, leaves[:k]) + [naive_mth(leaves[k:])]
    return naive_path(m - k, leaves[k:]) + [naive_mth(leaves[:k])]


def leaves_for(n, seed=0):
    return [leaf_hash(f"leaf {seed}-{i}".encode()) for i in range(n)]


def build(leaves):
    """Frontier plus the dict of every completed perfect-subtree node, as a publisher would store them."""
    frontier = Frontier()
    nodes = {}
    for leaf in leaves:
        for height, index, digest in frontier.append(leaf):
            assert (height, index) not in nodes
            nodes[(height, index)] = digest
    return frontier, nodes


# --- certificate-transparency test vectors (merkle_tree_test.cc) --------------------------

CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PATHS = [  # (leaf_index, tree_size, path)
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def test_empty_tree_hash():
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root([]) == EMPTY_ROOT
    assert Frontier().root() == EMPTY_ROOT
    assert root_at(0, lambda h, i: pytest.fail("no lookup for the empty tree")) == EMPTY_ROOT


def test_hash_domain_separation():
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()


@pytest.mark.parametrize("size", range(1, 9))
def test_ct_roots(size):
    leaves = [leaf_hash(data) for data in CT_LEAVES[:size]]
    assert root(leaves).hex() == CT_ROOTS[size - 1]
    assert naive_mth(leaves).hex() == CT_ROOTS[size - 1]


@pytest.mark.parametrize("leaf_index,tree_size,expected", CT_PATHS)
def test_ct_audit_paths(leaf_index, tree_size, expected):
    _, nodes = build([leaf_hash(data) for data in CT_LEAVES])
    path = audit_path(leaf_index, tree_size, lambda h, i: nodes[(h, i)])
    assert [p.hex() for p in path] == expected
    assert verify_inclusion(
        leaf_hash(CT_LEAVES[leaf_index]), leaf_index, tree_size, path, bytes.fromhex(CT_ROOTS[tree_size - 1])
    )


def test_canonical_form():
    entry = {"prev": "0" * 64, "index": 0, "purpose": "修缮村小学", "amount": "12.50", "legs": [{"b": 1, "a": 2}]}
    data = canonical(entry)
    assert data == '{"amount":"12.50","index":0,"legs":[{"a":2,"b":1}],"prev":"{}","purpose":"修缮村小学"}'.replace(
        "{}", "0" * 64
    ).encode("utf-8")
    assert data == json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert b"\n" not in canonical({"text": "line1\nline2\u2028"})
    with pytest.raises(ValueError):
        canonical({"amount": float("nan")})


def test_checkpoint_message():
    assert checkpoint_message(7, 1234, "ab" * 32, "2026-11-29T03:00:00Z") == (
        b"sun-commune-checkpoint/v1\nbatch 7\ntree_size 1234\nroot " + b"ab" * 32 + b"\ntime 2026-11-29T03:00:00Z\n"
    )


def test_frontier_root_matches_naive_for_every_small_size():
    leaves = leaves_for(70)
    frontier = Frontier()
    assert frontier.root() == naive_mth([])
    for n in range(1, 71):
        frontier.append(leaves[n - 1])
        assert frontier.size == n
        assert frontier.root() == naive_mth(leaves[:n]), n
        assert root(leaves[:n]) == naive_mth(leaves[:n])
        # one perfect subtree per binary digit of n, largest first
        assert [h for h, _ in frontier.nodes] == [b for b in reversed(range(n.bit_length())) if n >> b & 1]


def test_frontier_root_matches_naive_for_random_large_sizes():
    rng = random.Random(6962)
    for n in [1024, 1025, 2047, rng.randrange(3000, 5000), rng.randrange(5000, 9000)]:
        leaves = leaves_for(n, seed=n)
        frontier = Frontier()
        frontier.extend(leaves)
        assert frontier.root() == naive_mth(leaves), n


def test_append_reports_every_perfect_subtree_once():
    n = 77
    leaves = leaves_for(n)
    frontier, nodes = build(leaves)
    # 2n - popcount(n) perfect subtrees exist within n leaves
    assert len(nodes) == 2 * n - bin(n).count("1")
    for (height, index), digest in nodes.items():
        start = index << height
        assert start + (1 << height) <= n
        assert digest == naive_mth(leaves[start : start + (1 << height)])
    assert nodes[(0, 5)] == leaves[5]
    # appending leaf 7 completes leaves 7, [6,8), [4,8), [0,8), in that order
    f = Frontier()
    f.extend(leaves[:7])
    assert [(h, i) for h, i, _ in f.append(leaves[7])] == [(0, 7), (1, 3), (2, 1), (3, 0)]


def test_frontier_json_round_trip_continues_correctly():
    leaves = leaves_for(300, seed=3)
    for cut in [0, 1, 2, 3, 64, 100, 255, 256, 257]:
        frontier = Frontier()
        frontier.extend(leaves[:cut])
        stored = json.loads(json.dumps(frontier.to_json()))
        assert all(isinstance(h, int) and len(x) == 64 for h, x in stored)
        restored = Frontier.from_json(stored)
        assert restored.size == cut
        assert restored.root() == frontier.root()
        restored_nodes = {}
        for leaf in leaves[cut:]:
            for height, index, digest in restored.append(leaf):
                restored_nodes[(height, index)] = digest
        assert restored.root() == naive_mth(leaves)
        # the nodes reported after the restore are the same as without it
        _, all_nodes = build(leaves)
        for key, digest in restored_nodes.items():
            assert all_nodes[key] == digest


@pytest.mark.parametrize(
    "bad",
    [
        [[0, "00" * 32], [1, "00" * 32]],  # heights must decrease
        [[2, "00" * 32], [2, "00" * 32]],
        [[-1, "00" * 32]],
        [[True, "00" * 32]],
        [[0, "00" * 31]],
        [[0, "zz" * 32]],
        [[0]],
        ["00" * 32],
    ],
)
def test_frontier_from_json_rejects_garbage(bad):
    with pytest.raises(ValueError):
        Frontier.from_json(bad)


def test_append_rejects_non_hash():
    with pytest.raises(ValueError):
        Frontier().append(b"not a hash")


@pytest.mark.parametrize("tree_size", range(1, 41))
def test_audit_path_verifies_every_leaf(tree_size):
    leaves = leaves_for(tree_size, seed=tree_size)
    frontier, nodes = build(leaves)
    tree_root = frontier.root()
    other = leaf_hash(b"someone else")
    for m in range(tree_size):
        path = audit_path(m, tree_size, lambda h, i: nodes[(h, i)])
        assert path == naive_path(m, leaves)
        assert verify_inclusion(leaves[m], m, tree_size, path, tree_root)
        # wrong leaf, index, root, size, path
        assert not verify_inclusion(other, m, tree_size, path, tree_root)
        assert not verify_inclusion(leaves[m], m, tree_size, path, other)
        if tree_size > 1:
            assert not verify_inclusion(leaves[m], (m + 1) % tree_size, tree_size, path, tree_root)
            assert not verify_inclusion(leaves[m], m, tree_size, path[:-1], tree_root)
            flipped = list(path)
            flipped[0] = bytes([flipped[0][0] ^ 1]) + flipped[0][1:]
            assert not verify_inclusion(leaves[m], m, tree_size, flipped, tree_root)
        assert not verify_inclusion(leaves[m], m, tree_size, path + [other], tree_root)
        # (A wrong tree_size is not always detectable from the path alone -- leaf 0 of 3 and of 4 have
        # the same shape -- which is why the checkpoint signs tree_size together with the root.)
        assert not verify_inclusion(leaves[m], tree_size, tree_size, path, tree_root)
        assert not verify_inclusion(leaves[m], -1, tree_size, path, tree_root)


def test_audit_path_for_older_tree_sizes_from_the_same_node_table():
    leaves = leaves_for(90, seed=9)
    _, nodes = build(leaves)  # the table has grown to 90 leaves
    for tree_size in [1, 5, 33, 64, 89]:
        old_root = naive_mth(leaves[:tree_size])
        assert root_at(tree_size, lambda h, i: nodes[(h, i)]) == old_root
        for m in range(0, tree_size, 3):
            path = audit_path(m, tree_size, lambda h, i: nodes[(h, i)])
            assert verify_inclusion(leaves[m], m, tree_size, path, old_root)


def test_audit_path_lookups_are_logarithmic():
    n = 5000
    leaves = leaves_for(n, seed=5)
    _, nodes = build(leaves)
    rng = random.Random(1)
    for tree_size in [n, 4097, 4095, 2**12, 3001]:
        bound = 2 * math.ceil(math.log2(tree_size))
        for m in [0, tree_size - 1, tree_size // 2, *rng.sample(range(tree_size), 20)]:
            lookups = []

            def get_node(h, i, lookups=lookups):
                lookups.append((h, i))
                return nodes[(h, i)]

            path = audit_path(m, tree_size, get_node)
            assert len(lookups) <= bound, (tree_size, m, len(lookups))
            assert verify_inclusion(leaves[m], m, tree_size, path, naive_mth(leaves[:tree_size]))


def test_audit_path_accepts_memoryview_from_the_database():
    leaves = leaves_for(11)
    frontier, nodes = build(leaves)
    path = audit_path(3, 11, lambda h, i: memoryview(nodes[(h, i)]))
    assert verify_inclusion(leaves[3], 3, 11, path, frontier.root())


def test_audit_path_rejects_out_of_range():
    for m, n in [(0, 0), (5, 5), (-1, 3)]:
        with pytest.raises(ValueError):
            audit_path(m, n, lambda h, i: b"\x00" * 32)


def test_module_is_standard_library_only():
    import ast
    import sys

    tree = ast.parse(open(merkle.__file__, encoding="utf-8").read())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names), imported
