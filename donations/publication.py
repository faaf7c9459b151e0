"""Publishing the ledger, proving inclusion, and checking it all.

Publication takes every committed, unpublished ledger transaction (the
outbox) in id order, turns each into a public entry — canonical JSON with no
private data — appends its leaf to the RFC 6962 Merkle tree, and writes the
entries, the tree's new perfect subtrees and a signed checkpoint as the next
numbered batch, all in one database transaction under an advisory lock:
two publishers at once queue, a publisher killed half-way leaves nothing,
and the outbox row of each transaction is deleted by the batch that
publishes it, so each is published exactly once.

One connection does it all, in order: it takes the lock, reads the batch,
and writes it with COPY, rendering and hashing each entry as COPY asks for
it. Nothing is read before the lock is held, so what it read is the
outbox's head until it commits.
"""

import base64
import queue
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from json.encoder import encode_basestring as _json_string
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.db import connection, transaction

from households.models import Area
from sun_commune import audit

from . import merkle, transparency
from .models import (
    LedgerBatch,
    LedgerCheck,
    LedgerTransaction,
    PublishedEntry,
)

ADVISORY_LOCK = 0x5C0_1ED6  # "sun ledger": one publisher at a time, across every machine
STORED_HEIGHT = 4  # subtrees of 16 leaves and up are stored; below, recomputed from leaves
ZERO_HASH = "0" * 64
ANONYMOUS = "anonymous donor"
Kind = LedgerTransaction.Kind


# --- Keys and checkpoints -------------------------------------------------------


def _private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(settings.LEDGER_SIGNING_KEY))


def verifier_key() -> str:
    """The checkpoint notes' verifier key, in the signed-note format."""
    return transparency.verifier_key(_private_key())


def public_key_hex() -> str:
    return _private_key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def signature_valid(checkpoint: dict) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(checkpoint["public_key"]))
        key.verify(
            bytes.fromhex(checkpoint["signature"]),
            merkle.checkpoint_message(
                batch=checkpoint["batch"],
                tree_size=checkpoint["tree_size"],
                root_hash=checkpoint["root_hash"],
                timestamp=checkpoint["timestamp"],
            ),
        )
        return True
    except Exception:  # noqa: BLE001 - any failure is "not valid"
        return False


def note_of(batch: LedgerBatch) -> str:
    """A batch's signed note (C2SP checkpoint): the one written when it was
    published; for a batch published before notes were, signed now with the
    same key (deterministic, so the same bytes every time)."""
    return batch.note or transparency.signed_note(_private_key(), batch.tree_size, batch.root_hash)


def note_valid(batch: LedgerBatch) -> bool:
    """Whether the stored note is the batch's tree, signed by the batch's key."""
    try:
        body, signature_line = batch.note.split("\n\n", 1)
        name = body.split("\n", 1)[0]
        if body + "\n" != transparency.checkpoint_body(name, batch.tree_size, batch.root_hash):
            return False
        key_name, encoded = signature_line.removeprefix(transparency.SIGNATURE_PREFIX).rstrip("\n").split(" ")
        signature = base64.b64decode(encoded, validate=True)
        public_key = bytes.fromhex(batch.public_key)
        if key_name != name or signature[:4] != transparency.key_hash(name, public_key):
            return False
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature[4:], (body + "\n").encode())
        return True
    except Exception:  # noqa: BLE001 - any failure is "not valid"
        return False


# --- Entries ----------------------------------------------------------------------

# Everything an entry says, read in one query for a whole batch (the legs
# aggregated in order), because building 50,000 ORM objects with their legs
# was most of the publisher's time. The query is written so that its plan
# does not depend on statistics: the outbox is a queue whose statistics are
# soon out of date (half a million dead rows, 250,000 live ones estimated for
# 50,000), and PostgreSQL then walked all ten million transactions in a merge
# join (4 s), or read all 480,000 needs into a hash for 5,000 lookups (0.5 s).
# So the batch's outbox ids come first (at most ``limit`` of them, in order),
# and the need, donor and reversed transaction of each are looked up by
# their key (LIMIT 1 keeps each lookup a lookup): rows come out in the
# outbox's order as they are found.
PENDING_SQL = """
SELECT t.id, t.kind, t.occurred_on::text, to_char(t.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       t.amount::text, t.need_id, n.title, n.public_id,
       a.code, a.name, a.path, d.name, d.show_name, t.purpose, t.category, t.payee, t.voucher_sha256,
       t.reverses_id, r.kind,
       ARRAY(SELECT acc.code || ' ' || l.amount::text
               FROM donations_ledgerleg l JOIN donations_ledgeraccount acc ON acc.id = l.account_id
              WHERE l.transaction_id = t.id ORDER BY l.id)
  FROM (SELECT transaction_id FROM donations_ledgeroutbox ORDER BY transaction_id LIMIT %s) o
  JOIN donations_ledgertransaction t ON t.id = o.transaction_id
  JOIN households_area a ON a.id = t.area_id
  LEFT JOIN LATERAL (
      SELECT n.title, h.public_id FROM donations_need n LEFT JOIN households_household h ON h.id = n.household_id
       WHERE n.id = t.need_id LIMIT 1
  ) n ON true
  LEFT JOIN LATERAL (SELECT d.name, d.show_name FROM donations_donor d WHERE d.id = t.donor_id LIMIT 1) d ON true
  LEFT JOIN LATERAL (SELECT r.kind FROM donations_ledgertransaction r WHERE r.id = t.reverses_id LIMIT 1) r ON true
 ORDER BY o.transaction_id
"""


class Pending(NamedTuple):
    id: int
    kind: str
    occurred_on: str  # ISO date, formatted by PostgreSQL
    recorded_at: str  # ISO UTC time, formatted by PostgreSQL
    amount: str
    need_id: int | None
    need_title: str | None
    household: str | None
    area_code: str
    area_name: str
    area_path: str
    donor_name: str | None
    donor_named: bool | None
    purpose: str
    category: str
    payee: str
    voucher_sha256: str
    reverses_id: int | None
    reverses_kind: str | None
    legs: list[str]  # "account amount", in leg order


def public_entry(row: Pending, *, index: int, prev: str) -> dict:
    """What the public may know of a transaction: amounts, accounts, the need
    and its village, a household only by its public id, a donor only if they
    chose to be named."""
    donor = None
    if row.donor_name is not None:
        donor = row.donor_name if row.donor_named else ANONYMOUS
    return {
        "index": index,
        "prev": prev,
        "id": row.id,
        "kind": row.kind,
        "date": row.occurred_on,
        "recorded_at": row.recorded_at,
        "amount": row.amount,
        "currency": "CNY",
        "legs": [dict(zip(("account", "amount"), leg.split(" "), strict=True)) for leg in row.legs],
        "need": row.need_id,
        "need_title": row.need_title,
        "household": row.household,
        "area": row.area_code,
        "area_name": row.area_name,
        "donor": donor,
        "purpose": row.purpose,
        "category": row.category or None,
        "payee": row.payee or None,
        "voucher_sha256": row.voucher_sha256 or None,
        "reverses": row.reverses_id,
    }


def _string(value: str | None) -> str:
    return "null" if value is None else _json_string(value)


def _number(value: int | None) -> str:
    return "null" if value is None else int.__repr__(value)


def entry_line(row: Pending, *, index: int, prev: str) -> str:
    """``merkle.canonical(public_entry(row, …))``, decoded, written out key by
    key in their sorted order: the same characters (the tests compare the
    two on every kind of value), in a third of the time json.dumps took to
    sort and walk a dict for each of a batch's entries. The strings are
    escaped by json's own function for ``ensure_ascii=False``."""
    donor = None
    if row.donor_name is not None:
        donor = row.donor_name if row.donor_named else ANONYMOUS
    legs = []
    for leg in row.legs:
        account, amount = leg.split(" ")
        legs.append(f'{{"account":{_json_string(account)},"amount":{_json_string(amount)}}}')
    return (
        f'{{"amount":{_json_string(row.amount)},"area":{_json_string(row.area_code)},'
        f'"area_name":{_json_string(row.area_name)},"category":{_string(row.category or None)},'
        f'"currency":"CNY","date":{_json_string(row.occurred_on)},"donor":{_string(donor)},'
        f'"household":{_string(row.household)},"id":{_number(row.id)},"index":{_number(index)},'
        f'"kind":{_json_string(row.kind)},"legs":[{",".join(legs)}],"need":{_number(row.need_id)},'
        f'"need_title":{_string(row.need_title)},"payee":{_string(row.payee or None)},"prev":{_json_string(prev)},'
        f'"purpose":{_json_string(row.purpose)},"recorded_at":{_json_string(row.recorded_at)},'
        f'"reverses":{_number(row.reverses_id)},"voucher_sha256":{_string(row.voucher_sha256 or None)}}}'
    )


ZERO = Decimal("0.00")


def effect(kind: str, amount: Decimal, reversed_kind: str | None = None) -> tuple[Decimal, Decimal, Decimal]:
    """(money in, goods in, money out) that a transaction adds to the totals;
    a reversal takes away what the transaction it reverses added."""
    if kind == Kind.REVERSAL:
        money_in, goods_in, money_out = effect(reversed_kind, amount)
        return -money_in, -goods_in, -money_out
    return (
        amount if kind in (Kind.MONEY_IN, Kind.GIFT_IN) else ZERO,
        amount if kind == Kind.GOODS_IN else ZERO,
        amount if kind == Kind.SPEND else ZERO,
    )


class _Totals:
    """What a batch adds to one area path's totals."""

    __slots__ = ("money_in", "goods_in", "money_out", "entries")

    def __init__(self):
        self.money_in = self.goods_in = self.money_out = ZERO
        self.entries = 0

    def add(self, row: Pending) -> None:
        money_in, goods_in, money_out = effect(row.kind, Decimal(row.amount), row.reverses_kind)
        self.money_in += money_in
        self.goods_in += goods_in
        self.money_out += money_out
        self.entries += 1


def _by_area(path_totals: dict[str, _Totals]) -> dict[str, dict]:
    """Each area's totals: those of every path it is on (summed per path as
    the entries come, then once per area for each of a batch's few thousand
    paths, not five times for each entry)."""
    totals: dict[str, dict] = defaultdict(lambda: {"money_in": ZERO, "goods_in": ZERO, "money_out": ZERO, "entries": 0})
    for path, added in path_totals.items():
        for code in path.rstrip(".").split("."):
            t = totals[code]
            t["money_in"] += added.money_in
            t["goods_in"] += added.goods_in
            t["money_out"] += added.money_out
            t["entries"] += added.entries
    return totals


def _add_totals(totals: dict[str, dict[str, Decimal]]) -> None:
    """Add a batch's totals to each area's, in one statement."""
    areas = dict(Area.objects.filter(code__in=totals).values_list("code", "pk"))
    rows = [(areas[code], t) for code, t in totals.items() if code in areas]
    if not rows:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO donations_arealedgertotal (area_id, money_in, goods_in, money_out, entries)
            SELECT * FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[], %s::numeric[], %s::bigint[])
            ON CONFLICT (area_id) DO UPDATE SET
                money_in = donations_arealedgertotal.money_in + EXCLUDED.money_in,
                goods_in = donations_arealedgertotal.goods_in + EXCLUDED.goods_in,
                money_out = donations_arealedgertotal.money_out + EXCLUDED.money_out,
                entries = donations_arealedgertotal.entries + EXCLUDED.entries
            """,
            [
                [area for area, _t in rows],
                [t["money_in"] for _a, t in rows],
                [t["goods_in"] for _a, t in rows],
                [t["money_out"] for _a, t in rows],
                [t["entries"] for _a, t in rows],
            ],
        )


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


NULL = "\\N"


def _copy_value(value) -> str:
    if value is None:
        return NULL
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.translate(_COPY_ESCAPES)
    return text


class _Rendered:
    """A file for COPY whose lines are rendered in a thread of their own,
    a bounded queue of chunks ahead of what COPY has sent.

    Why a thread: rendering and hashing the entries is Python (one core),
    taking in the COPY is PostgreSQL (the other core). Done one after the
    other on one connection, publication ran at 7,900 entries/s on the
    2-core machine, against 18,400 for the earlier two-thread publisher
    (``tools/bench_publication.py 100000 --published 100000``); the target
    is 20,000. The thread touches no connection: the batch is read before
    it starts. An error while rendering fails the COPY; a COPY that fails
    stops the thread (``close``), so none is left behind."""

    CHUNK = 1 << 18

    def __init__(self, lines):
        self._queue = queue.Queue(maxsize=8)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._render, args=(lines,), daemon=True)
        self._thread.start()

    def _render(self, lines) -> None:
        try:
            parts, length = [], 0
            for line in lines:
                parts.append(line)
                length += len(line)
                if length >= self.CHUNK:
                    if not self._put("".join(parts)):
                        return
                    parts, length = [], 0
            if parts and not self._put("".join(parts)):
                return
            self._put(None)
        except BaseException as error:  # handed to COPY, which fails with it
            self._put(error)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read(self, size: int = -1) -> str:
        if self._done:
            return ""
        item = self._queue.get()
        if item is None or isinstance(item, BaseException):
            self._done = True
            if item is not None:
                raise item
            return ""
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _copy(cursor, table: str, columns: tuple[str, ...], rows) -> None:
    """Write rows (any iterable of tuples, or of lines already in COPY's
    format, consumed as it is sent) with COPY, in its text format (a third
    of the time the csv module took to quote the entries' JSON)."""
    lines = (row if isinstance(row, str) else "\t".join(map(_copy_value, row)) + "\n" for row in rows)
    source = _Rendered(lines)
    try:
        cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", source, 1 << 18)
    finally:
        source.close()


# --- Publication -----------------------------------------------------------------

# How the publisher reads a batch. Parallel workers made the outbox query
# slower (their start-up and the merge cost more than the per-row lookups
# they share). PostgreSQL compiled the query with JIT on every batch (its
# cost is far above jit_above_cost), which took about half of its time.
# Its sort of 50,000 rows spilled to disk at the default work_mem, as would
# the 50,000 rows the entries' check (migration 0009) reads back after the COPY.
READ_SETTINGS = "SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL jit = off; SET LOCAL work_mem = '64MB'"


def publish_pending(*, limit: int | None = None) -> LedgerBatch | None:
    """Publish the next batch (at most ``limit`` transactions, by default
    ``LEDGER_BATCH_MAX``) of committed, unpublished transactions, or do
    nothing (None) when there are none. Safe to run twice at once and to kill."""
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK])
        cursor.execute(READ_SETTINGS)
        cursor.execute(PENDING_SQL, [limit or settings.LEDGER_BATCH_MAX])
        pending = [Pending._make(row) for row in cursor.fetchall()]
        if not pending:
            return None
        last = LedgerBatch.objects.order_by("-number").first()
        number = last.number + 1 if last else 1
        frontier = merkle.Frontier.from_json(last.frontier) if last else merkle.Frontier()
        first = last.tree_size if last else 0
        prev = PublishedEntry.objects.get(index=first - 1).leaf_hash if first else ZERO_HASH
        nodes = []
        path_totals: dict[str, _Totals] = defaultdict(_Totals)

        def entries():
            """Each entry, chained and hashed into the tree, as COPY takes it."""
            nonlocal prev
            for index, row in enumerate(pending, start=first):
                text = entry_line(row, index=index, prev=prev)
                leaf = merkle.leaf_hash(text.encode())
                for height, position, digest in frontier.append(leaf):
                    if height >= STORED_HEIGHT:
                        nodes.append((height, position, digest.hex()))
                prev = leaf.hex()
                path_totals[row.area_path].add(row)
                # One COPY line, written out: canonical JSON has no raw tab,
                # newline or carriage return (json escapes them), so only its
                # backslashes need escaping; the other columns are numbers,
                # hex, dates, codes.
                yield (
                    f"{index}\t{row.id}\t{text.replace(chr(92), chr(92) * 2) if chr(92) in text else text}"
                    f"\t{prev}\t{row.kind}\t{row.amount}\t{row.occurred_on}"
                    f"\t{NULL if row.need_id is None else row.need_id}\t{_copy_value(row.area_path)}\n"
                )

        columns = ("index", "transaction_id", "line", "leaf_hash")
        columns += ("kind", "amount", "occurred_on", "need_id", "area_path")
        _copy(cursor, "donations_publishedentry", columns, entries())
        tree_size = first + len(pending)
        root = frontier.root().hex()
        timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        signature = _private_key().sign(
            merkle.checkpoint_message(batch=number, tree_size=tree_size, root_hash=root, timestamp=timestamp)
        )
        batch = LedgerBatch.objects.create(
            number=number,
            first_index=first,
            tree_size=tree_size,
            root_hash=root,
            timestamp=timestamp,
            public_key=public_key_hex(),
            signature=signature.hex(),
            frontier=frontier.to_json(),
            note=transparency.signed_note(_private_key(), tree_size, root),
        )
        if nodes:
            _copy(cursor, "donations_merklenode", ("height", "position", "hash"), nodes)
        cursor.execute(
            "DELETE FROM donations_ledgeroutbox WHERE transaction_id = ANY(%s)", [[row.id for row in pending]]
        )
        _add_totals(_by_area(path_totals))
        audit.record(
            actor=None,
            action="ledger.published",
            obj=batch,
            changes={"first_index": first, "tree_size": tree_size, "root_hash": root},
        )
    return batch


def publish_all() -> list[LedgerBatch]:
    """Publish batch after batch until the outbox is empty."""
    batches = []
    while (batch := publish_pending()) is not None:
        batches.append(batch)
    return batches


# --- Inclusion proofs ------------------------------------------------------------------


def with_stored_nodes(compute):
    """``compute(get_node)`` — a proof or a root from merkle — with every node
    it reads fetched in two queries, whatever the tree's size: which nodes a
    proof reads depends only on the sizes and indices, never on the hashes,
    so a first run with blank hashes lists them. Nodes of 16 leaves and up
    are stored; smaller ones are folded from their (at most 16) leaves."""
    wanted: set[tuple[int, int]] = set()

    def record(height: int, position: int) -> bytes:
        wanted.add((height, position))
        return bytes(merkle.HASH_SIZE)

    compute(record)
    stored = [(h, p) for h, p in wanted if h >= STORED_HEIGHT]
    small = [(h, p) for h, p in wanted if h < STORED_HEIGHT]
    found: dict[tuple[int, int], bytes] = {}
    if stored:
        with connection.cursor() as cursor:
            cursor.execute(
                """SELECT n.height, n.position, n.hash FROM donations_merklenode n
                   JOIN unnest(%s::int[], %s::bigint[]) AS w(height, position)
                     ON n.height = w.height AND n.position = w.position""",
                [[h for h, _p in stored], [p for _h, p in stored]],
            )
            found.update(((h, p), bytes.fromhex(digest)) for h, p, digest in cursor.fetchall())
    if small:
        indices = sorted({i for h, p in small for i in range(p << h, (p + 1) << h)})
        leaves = dict(PublishedEntry.objects.filter(index__in=indices).values_list("index", "leaf_hash"))
        for h, p in small:
            found[(h, p)] = merkle.root(bytes.fromhex(leaves[i]) for i in range(p << h, (p + 1) << h))
    return compute(lambda height, position: found[(height, position)])


def inclusion_proof(entry: PublishedEntry, batch: LedgerBatch | None = None) -> dict:
    """The audit path of ``entry`` in the tree of ``batch`` (the latest by
    default), in the format the verifier and the pledge page check."""
    batch = batch or LedgerBatch.objects.order_by("-number").first()
    path = with_stored_nodes(lambda get_node: merkle.audit_path(entry.index, batch.tree_size, get_node))
    return {
        "format": "sun-commune-inclusion/v1",
        "entry": entry.line,
        "leaf_index": entry.index,
        "tree_size": batch.tree_size,
        "audit_path": [h.hex() for h in path],
        "checkpoint": batch.checkpoint(),
    }


# --- The check --------------------------------------------------------------------------


def _rows(sql: str, params=()) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def run_check() -> LedgerCheck:
    """Everything an auditor would check, from the database's own rows:
    transactions balance, funds are not negative and match their legs, each
    need's received pledges match its ledger entries, and the published
    tree recomputes to every signed checkpoint. Records the result."""
    started = time.monotonic()
    problems: list[str] = []
    for txn_id, total in _rows(
        "SELECT transaction_id, SUM(amount) FROM donations_ledgerleg GROUP BY transaction_id HAVING SUM(amount) <> 0"
    ):
        problems.append(f"transaction {txn_id} does not balance ({total})")
    for code, balance, legs in _rows(
        """SELECT a.code, a.balance, COALESCE(SUM(l.amount), 0) FROM donations_ledgeraccount a
           LEFT JOIN donations_ledgerleg l ON l.account_id = a.id
           WHERE a.kind IN ('pool', 'need_fund') GROUP BY a.id
           HAVING a.balance < 0 OR a.balance <> COALESCE(SUM(l.amount), 0)"""
    ):
        problems.append(f"fund {code}: balance {balance} but its entries add up to {legs}")
    for pledge_id, kind in _rows(
        """SELECT p.id, CASE WHEN p.amount IS NULL THEN 'goods_in' ELSE 'money_in' END FROM donations_pledge p
           WHERE p.status IN ('received', 'done', 'thanked')
             AND (p.amount IS NOT NULL OR p.declared_value > 0)
             AND NOT EXISTS (SELECT 1 FROM donations_ledgertransaction t
                             WHERE t.pledge_id = p.id AND t.kind IN ('money_in', 'goods_in'))"""
    ):
        problems.append(f"pledge {pledge_id} was received but has no {kind} entry")
    for need_id, received, booked in _rows(
        """SELECT n.id, n.received_amount, COALESCE(SUM(t.amount), 0) FROM donations_need n
           LEFT JOIN donations_ledgertransaction t ON t.need_id = n.id AND t.kind = 'money_in'
           WHERE n.kind = 'money' GROUP BY n.id HAVING n.received_amount <> COALESCE(SUM(t.amount), 0)"""
    ):
        problems.append(f"need {need_id}: {received} yuan received by pledges, {booked} in the ledger")
    for (txn_id,) in _rows(
        """SELECT t.id FROM donations_ledgertransaction t
           WHERE NOT EXISTS (SELECT 1 FROM donations_publishedentry e WHERE e.transaction_id = t.id)
             AND NOT EXISTS (SELECT 1 FROM donations_ledgeroutbox o WHERE o.transaction_id = t.id)
           LIMIT 100"""
    ):
        problems.append(f"transaction {txn_id} is neither published nor waiting to be published")
    tree_size = _check_tree(problems)
    check = LedgerCheck.objects.create(
        ok=not problems, problems=problems[:200], tree_size=tree_size, seconds=time.monotonic() - started
    )
    return check


def _check_tree(problems: list[str]) -> int:
    """Recompute every leaf from its published line and the tree at each
    batch's size; compare with the signed checkpoints."""
    batches = list(LedgerBatch.objects.order_by("number"))
    if not batches:
        return 0
    pending = iter(batches)
    batch = next(pending)
    frontier = merkle.Frontier()
    expected = 0
    prev = ZERO_HASH
    with transaction.atomic():
        rows = (
            PublishedEntry.objects.order_by("index")
            .values_list("index", "line", "leaf_hash")
            .iterator(chunk_size=10000)
        )
        for index, line, stored in rows:
            if index != expected:
                problems.append(f"published entry {expected} is missing")
                return expected
            leaf = merkle.leaf_hash(line.encode())
            if leaf.hex() != stored or f'"prev":"{prev}"' not in line:
                problems.append(f"published entry {index} does not match its hash or its predecessor")
                return expected
            frontier.append(leaf)
            prev = stored
            expected += 1
            while batch is not None and frontier.size == batch.tree_size:
                _compare(batch, frontier, problems)
                batch = next(pending, None)
    if batch is not None:
        problems.append(f"batch {batch.number} claims {batch.tree_size} entries but only {expected} are published")
    elif expected > batches[-1].tree_size:
        problems.append(
            f"{expected - batches[-1].tree_size} published entries are not covered by any signed checkpoint"
        )
    return expected


def _compare(batch: LedgerBatch, frontier, problems: list[str]) -> None:
    if frontier.root().hex() != batch.root_hash:
        problems.append(f"batch {batch.number}: the tree does not recompute to its signed root")
    if not signature_valid(batch.checkpoint()):
        problems.append(f"batch {batch.number}: the checkpoint's signature is not valid")
    if batch.note and not note_valid(batch):
        problems.append(f"batch {batch.number}: the signed note does not say its tree or is not signed")
