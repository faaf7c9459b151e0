"""Publishing the ledger, proving inclusion, and checking it all.

Publication takes every committed, unpublished ledger transaction (the
outbox) in id order, turns each into a public entry — canonical JSON with no
private data — appends its leaf to the RFC 6962 Merkle tree, and writes the
entries, the tree's new perfect subtrees and a signed checkpoint as the next
numbered batch, all in one database transaction under an advisory lock:
two publishers at once queue, a publisher killed half-way leaves nothing,
and the outbox row of each transaction is deleted by the batch that
publishes it, so each is published exactly once.
"""

import queue
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from json.encoder import encode_basestring as _json_string
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.db import connection, transaction
from psycopg2.errors import UniqueViolation

from households.models import Area
from sun_commune import audit

from . import merkle
from .models import (
    LedgerBatch,
    LedgerCheck,
    LedgerTransaction,
    MerkleNode,
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
# outbox's order as they are found, with no sort at the end, so a reader
# can hand over the first ones while it reads the rest.
PENDING_SQL = """
SELECT t.id, t.kind, t.occurred_on::text, to_char(t.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       t.amount::text, t.need_id, n.title, n.public_id,
       a.code, a.name, a.path, d.name, d.show_name, t.purpose, t.category, t.payee, t.voucher_sha256,
       t.reverses_id, r.kind,
       ARRAY(SELECT acc.code || ' ' || l.amount::text
               FROM donations_ledgerleg l JOIN donations_ledgeraccount acc ON acc.id = l.account_id
              WHERE l.transaction_id = t.id ORDER BY l.id)
  FROM (SELECT transaction_id FROM donations_ledgeroutbox WHERE transaction_id > %s ORDER BY transaction_id LIMIT %s) o
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
# The outbox's first ``n`` transaction ids: rows read ahead are written
# only if they are exactly these.
NEXT_IDS_SQL = """
SELECT coalesce(array_agg(transaction_id ORDER BY transaction_id), '{}')
  FROM (SELECT transaction_id FROM donations_ledgeroutbox ORDER BY transaction_id LIMIT %s) o
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


class _Stream:
    """A file for COPY whose rows are rendered by a thread of their own, a
    few chunks ahead of PostgreSQL. Rendered as COPY asked for them, Python
    and PostgreSQL took turns: psycopg2 sends a chunk and waits while the
    socket's buffer (200 kB) drains, so PostgreSQL wrote one chunk while
    Python waited, then idled while Python rendered the next (5.4 s for
    50,000 entries, the sum of the two). With the rendering in a thread,
    which runs while psycopg2 waits for the socket without the GIL, Python
    renders on one core while PostgreSQL writes on the other."""

    CHUNK_LINES = 500
    AHEAD = 8  # chunks rendered and not yet sent

    def __init__(self, rows):
        self._chunks: queue.Queue = queue.Queue(self.AHEAD)
        self._stop = threading.Event()
        self._buffer = ""
        self._done = False
        self._thread = threading.Thread(target=self._render, args=(rows,), daemon=True)
        self._thread.start()

    def _render(self, rows):
        lines = (row if isinstance(row, str) else "\t".join(map(_copy_value, row)) + "\n" for row in rows)
        try:
            while not self._stop.is_set():
                chunk = "".join(islice(lines, self.CHUNK_LINES))
                self._put(chunk)
                if not chunk:
                    return
        except BaseException as exc:  # noqa: BLE001 - raised again by read(), in the caller's thread
            self._put(exc)

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._chunks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self, size: int = -1) -> str:
        while not self._done and (size < 0 or len(self._buffer) < size):
            item = self._chunks.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item
            if not item:
                self._done = True
            self._buffer += item
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def close(self):
        """Stop the renderer (COPY failed half-way) and wait for it: the
        rows' side effects (the tree, the totals) are complete, or unused."""
        self._stop.set()
        self._thread.join()


def _copy(cursor, table: str, columns: tuple[str, ...], rows) -> None:
    """Write rows (any iterable of tuples, or of lines already in COPY's
    format, consumed as it is sent) with COPY, in its text format (a third
    of the time the csv module took to quote the entries' JSON)."""
    stream = _Stream(rows)
    try:
        cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", stream, 1 << 18)
    finally:
        stream.close()


# --- Publication -----------------------------------------------------------------

# How the publisher's connections read a batch. Parallel workers made the
# outbox query slower (0.86 s against 0.72 s for 50,000 transactions: their
# start-up and the merge cost more than the per-row lookups they share).
# PostgreSQL compiled the query with JIT on every batch (its cost is far
# above jit_above_cost), which took 0.76 s of its 1.8 s. Its sort of 50,000
# rows spilled to disk at the default work_mem, as would the 50,000 rows
# the entries' check (migration 0009) reads back after the COPY.
READ_SETTINGS = "SET {scope} max_parallel_workers_per_gather = 0; SET {scope} jit = off; SET {scope} work_mem = '64MB'"


def _read_pending(cursor, limit: int, after: int = 0) -> list[Pending]:
    cursor.execute(PENDING_SQL, [after, limit])
    return [Pending._make(row) for row in cursor.fetchall()]


class _ReadAhead:
    """A batch's outbox rows, read on a connection of its own and handed
    over in chunks as they come, so that the publisher renders and writes
    the first entries while the last are still being read (the read was
    a tenth of a batch's time, spent before anything was written). Once
    followed (:meth:`follow`), a reader that read a whole batch starts
    reading the next one as soon as it is done.

    What it read is used only if, under the publisher's lock, its rows are
    still exactly the outbox's first ones (checked before the commit)."""

    CHUNK = 2000

    def __init__(self, limit: int, after: int):
        self.limit = limit
        self.next: _ReadAhead | None = None
        self.failed = False
        self._chunks: queue.Queue = queue.Queue()
        self._peeked: list | None = None
        self._lock = threading.Lock()
        self._following = self._finished = self._closed = False
        self._count, self._last = 0, None
        self._thread = threading.Thread(target=self._read, args=(limit, after), daemon=True)
        self._thread.start()

    def _read(self, limit, after):
        try:
            with transaction.atomic(), connection.cursor() as cursor:  # a cursor on the server lives in one
                cursor.execute(READ_SETTINGS.format(scope="LOCAL"))
                cursor.execute(f"DECLARE sun_publication_read NO SCROLL CURSOR FOR {PENDING_SQL}", [after, limit])
                while not self._closed:
                    cursor.execute(f"FETCH {self.CHUNK} FROM sun_publication_read")
                    chunk = [Pending._make(row) for row in cursor.fetchall()]
                    if not chunk:
                        break
                    self._count += len(chunk)
                    self._last = chunk[-1].id
                    self._chunks.put(chunk)
        except Exception:  # noqa: BLE001 - the publisher reads them itself
            self.failed = True
        finally:
            connection.close()
            with self._lock:
                self._finished = True
                self._start_next()
            self._chunks.put(None)

    def _start_next(self):
        if (
            self._following
            and self._finished
            and not self._closed
            and not self.failed
            and self._count == self.limit
            and self.next is None
        ):
            self.next = _ReadAhead(self.limit, self._last)

    def follow(self):
        """Read the next batch as soon as this one is read."""
        with self._lock:
            self._following = True
            self._start_next()

    def empty(self) -> bool:
        """Whether it found nothing (waits for the first chunk)."""
        if self._peeked is None:
            self._peeked = self._chunks.get() or []
        return not self._peeked

    def first_id(self) -> int:
        return self._peeked[0].id

    def rows(self, taken: list):
        """Its rows as they come, each also appended to ``taken``."""
        chunk = self._peeked if self._peeked is not None else self._chunks.get()
        while chunk:
            taken.extend(chunk)
            yield from chunk
            chunk = self._chunks.get()

    def close(self):
        """Stop reading (this one and the next) and wait until its connection is closed."""
        with self._lock:
            self._closed = True
        self._thread.join()
        if self.next is not None:
            self.next.close()


class _Unusable(Exception):
    """The rows read ahead are not the outbox's first ones any more."""


def publish_pending(*, limit: int | None = None, ahead: _ReadAhead | None = None, read_ahead: bool = False):
    """Publish the next batch of committed, unpublished transactions, or do
    nothing (None) when there are none. Safe to run twice at once and to kill.

    ``ahead`` (publish_all) is a reader of the batch, whose rows are
    written as they come; ``read_ahead`` has the batch after this one read
    while this one is written, and returns its reader beside the batch."""
    limit = ahead.limit if ahead is not None else (limit or settings.LEDGER_BATCH_MAX)
    try:
        return _publish(limit, ahead, read_ahead)
    except _Unusable:
        ahead.close()
        return _publish(limit, None, read_ahead)


def _publish(limit: int, ahead: _ReadAhead | None, read_ahead: bool):
    following = None
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK])
        cursor.execute(READ_SETTINGS.format(scope="LOCAL"))
        if ahead is not None and ahead.empty():
            ahead.close()  # nothing committed when it looked: look here
            ahead = None
        if ahead is not None:
            # Read before this publisher had the lock, its rows may have been
            # published by another in the meantime: then they no longer
            # start at the outbox's head.
            cursor.execute(NEXT_IDS_SQL, [1])
            if cursor.fetchone()[0] != [ahead.first_id()]:
                raise _Unusable
            pending = []  # filled as the rows are written
            rows = ahead.rows(pending)
            if read_ahead:
                ahead.follow()
        else:
            pending = rows = _read_pending(cursor, limit)
            if not pending:
                return (None, None) if read_ahead else None
            if read_ahead and len(pending) == limit:
                following = _ReadAhead(limit, pending[-1].id)
        last = LedgerBatch.objects.order_by("-number").first()
        number = last.number + 1 if last else 1
        frontier = merkle.Frontier.from_json(last.frontier) if last else merkle.Frontier()
        first = last.tree_size if last else 0
        chain = {"index": first, "prev": PublishedEntry.objects.get(index=first - 1).leaf_hash if first else ZERO_HASH}
        nodes = []
        path_totals: dict[str, _Totals] = defaultdict(_Totals)

        def entries():
            """Each entry, chained and hashed into the tree, as COPY takes it."""
            for row in rows:
                index = chain["index"]
                text = entry_line(row, index=index, prev=chain["prev"])
                leaf = merkle.leaf_hash(text.encode())
                for height, position, digest in frontier.append(leaf):
                    if height >= STORED_HEIGHT:
                        nodes.append((height, position, digest.hex()))
                chain["prev"] = leaf.hex()
                chain["index"] = index + 1
                path_totals[row.area_path].add(row)
                # One COPY line, written out: canonical JSON has no raw tab,
                # newline or carriage return (json escapes them), so only its
                # backslashes need escaping; the other columns are numbers,
                # hex, dates, codes.
                yield (
                    f"{index}\t{row.id}\t{text.replace(chr(92), chr(92) * 2) if chr(92) in text else text}"
                    f"\t{chain['prev']}\t{row.kind}\t{row.amount}\t{row.occurred_on}"
                    f"\t{NULL if row.need_id is None else row.need_id}\t{_copy_value(row.area_path)}\n"
                )

        columns = ("index", "transaction_id", "line", "leaf_hash")
        columns += ("kind", "amount", "occurred_on", "need_id", "area_path")
        try:
            _copy(cursor, "donations_publishedentry", columns, entries())
        except UniqueViolation:
            if ahead is None:
                raise
            # A row read ahead was published by another publisher between the
            # read and this one's lock (one that had not yet seen a
            # transaction committed late): the database refused it twice.
            raise _Unusable from None
        if ahead is not None:
            cursor.execute(NEXT_IDS_SQL, [len(pending)])
            if ahead.failed or cursor.fetchone()[0] != [row.id for row in pending]:
                raise _Unusable  # rolls this batch back; it is read again, here
        index = chain["index"]
        root = frontier.root().hex()
        timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        signature = _private_key().sign(
            merkle.checkpoint_message(batch=number, tree_size=index, root_hash=root, timestamp=timestamp)
        )
        batch = LedgerBatch.objects.create(
            number=number,
            first_index=first,
            tree_size=index,
            root_hash=root,
            timestamp=timestamp,
            public_key=public_key_hex(),
            signature=signature.hex(),
            frontier=frontier.to_json(),
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
            changes={"first_index": first, "tree_size": index, "root_hash": root},
        )
    if ahead is not None and read_ahead:
        # The batch after, being read by now if this one was whole.
        following, ahead.next = ahead.next, None
    return (batch, following) if read_ahead else batch


def publish_all() -> list[LedgerBatch]:
    batches, ahead = [], _ReadAhead(settings.LEDGER_BATCH_MAX, 0)
    try:
        while True:
            batch, ahead = publish_pending(ahead=ahead, read_ahead=True)
            if batch is None:
                return batches
            batches.append(batch)
    finally:
        if ahead is not None:
            ahead.close()  # its connection closed before this returns


# --- Inclusion proofs ------------------------------------------------------------------


def _node_getter():
    def get_node(height: int, position: int) -> bytes:
        if height >= STORED_HEIGHT:
            return bytes.fromhex(MerkleNode.objects.get(height=height, position=position).hash)
        start = position << height
        leaves = PublishedEntry.objects.filter(index__gte=start, index__lt=start + (1 << height)).order_by("index")
        hashes = [bytes.fromhex(h) for h in leaves.values_list("leaf_hash", flat=True)]
        return hashes[0] if height == 0 else merkle.root(hashes)

    return get_node


def inclusion_proof(entry: PublishedEntry, batch: LedgerBatch | None = None) -> dict:
    """The audit path of ``entry`` in the tree of ``batch`` (the latest by
    default), in the format the verifier and the pledge page check."""
    batch = batch or LedgerBatch.objects.order_by("-number").first()
    path = merkle.audit_path(entry.index, batch.tree_size, _node_getter())
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
