"""Merkle tree for the public fund-usage ledger (RFC 6962 / RFC 9162).

Standard library only: this module is pure computation, with no Django and no
database. The publication job feeds it leaves and stores what it returns; the
citizen-side verifier (tools/verify_ledger.py) duplicates the few hash
functions so that it can be downloaded as a single self-contained file.

Definitions (fixed by the published spec; changing any byte here breaks every
checkpoint ever signed):

* canonical entry bytes: ``json.dumps(entry, sort_keys=True,
  separators=(",", ":"), ensure_ascii=False).encode("utf-8")``; ``ledger.jsonl``
  is one canonical entry per line, each terminated by ``"\\n"``, in leaf order.
  Each entry carries ``index`` (its 0-based leaf index) and ``prev`` (hex leaf
  hash of the previous entry, 64 zeros for index 0).
* leaf_hash(b) = SHA-256(0x00 || b); node_hash(l, r) = SHA-256(0x01 || l || r);
  MTH(empty) = SHA-256(""); MTH(D[n]) splits at k = largest power of two < n.
* An inclusion proof is RFC 6962 §2.1.1 PATH(m, D[n]), ordered from the leaf
  upwards; it is verified with the RFC 9162 §2.1.3.2 algorithm.
* A checkpoint signs (Ed25519, pure) the UTF-8 bytes of
  ``checkpoint_message(batch, tree_size, root_hash_hex, timestamp)``.

Storage model for proofs at scale: ``Frontier.append`` returns every perfect
subtree completed by the append, as ``(height, index_at_height, hash)``; a
node at (height h, index i) covers leaves [i * 2**h, (i + 1) * 2**h). Those
nodes never change once complete, so the publisher can store them (about 2n
rows for n leaves) and ``audit_path`` can build any proof, for any past tree
size, with at most 2 * log2(n) lookups.
"""

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
GENESIS_PREV = "0" * 64  # the "prev" of entry 0

CHECKPOINT_FORMAT = "sun-commune-checkpoint/v1"
INCLUSION_FORMAT = "sun-commune-inclusion/v1"

NodeGetter = Callable[[int, int], bytes]
CompletedNode = tuple[int, int, bytes]


def canonical(entry: dict) -> bytes:
    """The canonical bytes of a ledger entry (one ledger.jsonl line, without its "\\n").

    allow_nan=False only turns NaN/Infinity (which are not JSON) into a
    ValueError; for every valid entry the bytes are exactly the spec's."""
    if not isinstance(entry, dict):
        raise TypeError("a ledger entry must be a dict")
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def checkpoint_message(batch: int, tree_size: int, root_hash: str, timestamp: str) -> bytes:
    """The exact bytes a checkpoint's Ed25519 signature covers. root_hash is lowercase hex."""
    return (f"{CHECKPOINT_FORMAT}\nbatch {batch}\ntree_size {tree_size}\nroot {root_hash}\ntime {timestamp}\n").encode()


def _largest_power_of_two_below(n: int) -> int:
    """k such that k < n <= 2k (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The right edge of an append-only Merkle tree: the perfect subtrees whose
    sizes are the binary digits of the tree size, largest (leftmost) first.

    O(log n) memory; ``append`` is amortised O(1) hashes; ``root`` is O(log n)."""

    __slots__ = ("_nodes", "_size")

    def __init__(self, nodes: Iterable[tuple[int, bytes]] = ()):
        self._nodes: list[tuple[int, bytes]] = []
        size = 0
        for height, digest in nodes:
            if isinstance(height, bool) or not isinstance(height, int) or height < 0:
                raise ValueError(f"bad frontier height {height!r}")
            if self._nodes and height >= self._nodes[-1][0]:
                raise ValueError("frontier heights must strictly decrease from left to right")
            if not isinstance(digest, bytes) or len(digest) != HASH_SIZE:
                raise ValueError("frontier hashes must be 32 bytes")
            self._nodes.append((height, digest))
            size += 1 << height
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    @property
    def nodes(self) -> list[tuple[int, bytes]]:
        return list(self._nodes)

    def append(self, leaf: bytes) -> list[CompletedNode]:
        """Add one leaf hash (already leaf_hash()ed). Returns the perfect subtrees
        this append completed, as (height, index_at_height, hash): the leaf itself
        at height 0 first, then each merged parent upwards."""
        if not isinstance(leaf, bytes) or len(leaf) != HASH_SIZE:
            raise ValueError("append() takes a 32-byte leaf hash")
        position = self._size
        completed = [(0, position, leaf)]
        nodes = self._nodes
        height, digest = 0, leaf
        while nodes and nodes[-1][0] == height:
            left = nodes.pop()[1]
            digest = node_hash(left, digest)
            height += 1
            completed.append((height, position >> height, digest))
        nodes.append((height, digest))
        self._size = position + 1
        return completed

    def extend(self, leaves: Iterable[bytes]) -> list[CompletedNode]:
        completed: list[CompletedNode] = []
        for leaf in leaves:
            completed.extend(self.append(leaf))
        return completed

    def root(self) -> bytes:
        """MTH of all leaves so far: fold the perfect subtrees from the smallest up."""
        if not self._nodes:
            return EMPTY_ROOT
        result = self._nodes[-1][1]
        for _, digest in reversed(self._nodes[:-1]):
            result = node_hash(digest, result)
        return result

    def copy(self) -> "Frontier":
        clone = Frontier()
        clone._nodes = list(self._nodes)
        clone._size = self._size
        return clone

    def to_json(self) -> list[list]:
        """JSON-ready: [[height, hex], ...], largest subtree first."""
        return [[height, digest.hex()] for height, digest in self._nodes]

    @classmethod
    def from_json(cls, data: Sequence[Sequence]) -> "Frontier":
        nodes = []
        for item in data:
            if not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[1], str):
                raise ValueError(f"bad frontier item {item!r}")
            try:
                digest = bytes.fromhex(item[1])
            except ValueError:
                raise ValueError(f"bad frontier hash {item[1]!r}")
            nodes.append((item[0], digest))
        return cls(nodes)

    def __repr__(self) -> str:
        return f"<Frontier size={self._size} heights={[h for h, _ in self._nodes]}>"


def root(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH over a sequence of leaf hashes (iterative, O(log n) memory)."""
    frontier = Frontier()
    for leaf in leaf_hashes:
        frontier.append(leaf)
    return frontier.root()


def _perfect(start: int, size: int, get_node: NodeGetter) -> bytes:
    height = size.bit_length() - 1
    if size != 1 << height or start % size:
        raise AssertionError(f"[{start}, {start + size}) is not an aligned perfect subtree")
    digest = get_node(height, start >> height)
    if isinstance(digest, (bytearray, memoryview)):  # e.g. a BinaryField read back from PostgreSQL
        digest = bytes(digest)
    if not isinstance(digest, bytes) or len(digest) != HASH_SIZE:
        raise ValueError(f"get_node({height}, {start >> height}) did not return a 32-byte hash")
    return digest


def _range_hash(start: int, end: int, get_node: NodeGetter) -> bytes:
    """MTH(D[start:end]) for a range that RFC 6962's recursion produces: start is
    aligned to the largest power of two <= end - start. A non-perfect range is
    folded from its perfect parts (one lookup per binary digit of its size)."""
    parts = []
    position, remaining = start, end - start
    while remaining:
        size = 1 << (remaining.bit_length() - 1)
        parts.append(_perfect(position, size, get_node))
        position += size
        remaining -= size
    result = parts[-1]
    for digest in reversed(parts[:-1]):
        result = node_hash(digest, result)
    return result


def root_at(tree_size: int, get_node: NodeGetter) -> bytes:
    """MTH of the first tree_size leaves, from stored perfect-subtree nodes (<= log2 n lookups)."""
    if tree_size < 0:
        raise ValueError("tree_size must be >= 0")
    if tree_size == 0:
        return EMPTY_ROOT
    return _range_hash(0, tree_size, get_node)


def audit_path(leaf_index: int, tree_size: int, get_node: NodeGetter) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(leaf_index, D[tree_size]), leaf-side sibling first.

    get_node(height, index) must return the hash of the perfect subtree over
    leaves [index * 2**height, (index + 1) * 2**height) -- every such subtree
    inside the first tree_size leaves, as Frontier.append reported it.

    Descending from the root, every sibling is a perfect subtree (one lookup)
    except at most one: the first time the path turns left off the right edge,
    its sibling is the rest of the right edge, folded from at most log2 n
    perfect parts. So a proof costs at most 2 * log2(n) lookups."""
    if tree_size <= 0 or not 0 <= leaf_index < tree_size:
        raise ValueError(f"leaf_index {leaf_index} is not in a tree of size {tree_size}")
    path = []
    start, end = 0, tree_size
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        if leaf_index < start + k:
            path.append(_range_hash(start + k, end, get_node))
            end = start + k
        else:
            path.append(_perfect(start, k, get_node))
            start += k
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, get_node: NodeGetter) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(old_size, D[new_size]) for 0 < old_size <= new_size
    (empty when they are equal), from stored perfect-subtree nodes.

    Each step of SUBPROOF adds one sibling: a perfect left subtree (one
    lookup) or the right part of a range, which RFC 9162's recursion always
    starts at a multiple of its own largest power of two (at most log2 n
    lookups, once, as in audit_path)."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    proof: list[bytes] = []
    start, end, m, whole = 0, new_size, old_size, True
    while m != end - start:
        k = _largest_power_of_two_below(end - start)
        if m <= k:
            proof.append(_range_hash(start + k, end, get_node))
            end = start + k
        else:
            proof.append(_perfect(start, k, get_node))
            start, m, whole = start + k, m - k, False
    if not whole:
        proof.append(_range_hash(start, end, get_node))
    proof.reverse()
    return proof


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: does ``proof`` show the tree of ``old_size`` leaves with
    ``old_root`` is a prefix of the tree of ``new_size`` leaves with ``new_root``?"""
    if not 0 < old_size <= new_size:
        return False
    if any(not isinstance(h, bytes) or len(h) != HASH_SIZE for h in proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def verify_inclusion(leaf_hash: bytes, leaf_index: int, tree_size: int, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does `path` prove leaf `leaf_index` of a tree of `tree_size` has root `root`?"""
    if not 0 <= leaf_index < tree_size:
        return False
    fn, sn = leaf_index, tree_size - 1
    result = leaf_hash
    for sibling in path:
        if not isinstance(sibling, bytes) or len(sibling) != HASH_SIZE:
            return False
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
