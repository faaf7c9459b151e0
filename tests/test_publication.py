"""Publishing the ledger (issue 3): numbered batches, a Merkle tree that
recomputes to every signed checkpoint, a transaction that commits late still
published, two publishers at once, a publisher killed with SIGKILL leaving
nothing behind — and the published totals per area."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import translation

from donations import ledger, merkle, publication, tasks
from donations.models import (
    AreaLedgerTotal,
    LedgerBatch,
    LedgerOutbox,
    LedgerTransaction,
    MerkleNode,
    PublishedEntry,
)
from donations.services import money, pledges
from households.models import Area
from sun_commune.celery import app

from . import factories
from .ledger_support import (
    D,
    assert_published_exactly_once,
    bulk_goods_in,
    check_ok,
    published_lines,
    receive_money,
    run_together,
    spend_kwargs,
    yesterday,
)

ROOT = Path(__file__).resolve().parent.parent
Kind = LedgerTransaction.Kind


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def gift(by, area, amount, reference):
    return money.record_gift(by=by, area=area, amount=amount, reference=reference, occurred_on=yesterday())


def leaves() -> list[bytes]:
    return [bytes.fromhex(h) for h in PublishedEntry.objects.order_by("index").values_list("leaf_hash", flat=True)]


# --- 5. Batches, tree, signatures -------------------------------------------------------------


def test_publishing_makes_numbered_batches_that_continue_the_indices(areas, money_need_a, donor, county_reviewer):
    first = [
        receive_money(money_need_a, donor, "100", reference="P-1", by=county_reviewer),
        gift(county_reviewer, areas.yanting, "50", "P-2"),
        money.spend(by=county_reviewer, amount="30", need_id=money_need_a.pk, **spend_kwargs()),
    ]

    batch1 = publication.publish_pending()

    assert (batch1.number, batch1.first_index, batch1.tree_size) == (1, 0, 3)
    entries = list(PublishedEntry.objects.order_by("index"))
    assert [(e.index, e.transaction_id) for e in entries] == [(i, t.pk) for i, t in enumerate(first)]
    assert not LedgerOutbox.objects.exists()
    assert publication.publish_pending() is None
    assert publication.publish_all() == []

    second = [
        gift(county_reviewer, areas.yanting, "20", "P-3"),
        money.allocate(by=county_reviewer, pool_area=areas.yanting, need_id=money_need_a.pk, amount="60"),
    ]
    batch2 = publication.publish_pending()

    assert (batch2.number, batch2.first_index, batch2.tree_size) == (2, 3, 5)
    assert list(batch2.entries().order_by("index").values_list("index", "transaction_id")) == [
        (3, second[0].pk),
        (4, second[1].pk),
    ]
    assert list(batch1.entries().order_by("index").values_list("index", flat=True)) == [0, 1, 2]
    assert_published_exactly_once()
    check_ok()


def test_a_batch_holds_at_most_the_limit_and_publish_all_drains_the_outbox(areas, settings):
    bulk_goods_in(23, areas.village_a)
    settings.LEDGER_BATCH_MAX = 10

    batches = publication.publish_all()

    assert [(b.number, b.first_index, b.tree_size) for b in batches] == [(1, 0, 10), (2, 10, 20), (3, 20, 23)]
    assert_published_exactly_once()


def test_the_published_tree_recomputes_to_every_signed_checkpoint(areas, money_need_a, donor, county_reviewer):
    receive_money(money_need_a, donor, "100", reference="T-1", by=county_reviewer)
    bulk_goods_in(20, areas.village_b)
    publication.publish_pending(limit=7)
    publication.publish_all()
    bulk_goods_in(15, areas.village_c)
    publication.publish_all()

    lines = list(PublishedEntry.objects.order_by("index").values_list("line", "leaf_hash"))
    prev = merkle.GENESIS_PREV
    for index, (line, stored) in enumerate(lines):
        data = json.loads(line)
        assert merkle.canonical(data) == line.encode()
        assert (data["index"], data["prev"]) == (index, prev)
        assert merkle.leaf_hash(line.encode()).hex() == stored
        prev = stored
    all_leaves = leaves()
    batches = list(LedgerBatch.objects.order_by("number"))
    assert [b.tree_size for b in batches] == [7, 21, 36]
    for batch in batches:
        assert merkle.root(all_leaves[: batch.tree_size]).hex() == batch.root_hash
        assert publication.signature_valid(batch.checkpoint())
        assert batch.public_key == publication.public_key_hex()
        assert merkle.Frontier.from_json(batch.frontier).root().hex() == batch.root_hash
    forged = {**batches[0].checkpoint(), "tree_size": 6}
    assert not publication.signature_valid(forged)
    # Every stored perfect subtree is the hash of the leaves it covers.
    nodes = list(MerkleNode.objects.all())
    assert {(n.height, n.position) for n in nodes} == {(4, 0), (4, 1), (5, 0)}
    for node in nodes:
        start = node.position << node.height
        assert merkle.root(all_leaves[start : start + (1 << node.height)]).hex() == node.hash


def test_every_entry_has_an_inclusion_proof_in_every_later_checkpoint(areas):
    bulk_goods_in(19, areas.village_a)
    publication.publish_pending(limit=5)
    publication.publish_all()
    batches = list(LedgerBatch.objects.order_by("number"))

    for entry in PublishedEntry.objects.order_by("index"):
        for batch in batches:
            if entry.index >= batch.tree_size:
                continue
            proof = publication.inclusion_proof(entry, batch)
            assert proof["checkpoint"] == batch.checkpoint()
            assert merkle.verify_inclusion(
                merkle.leaf_hash(proof["entry"].encode()),
                proof["leaf_index"],
                proof["tree_size"],
                [bytes.fromhex(h) for h in proof["audit_path"]],
                bytes.fromhex(batch.root_hash),
            )


@pytest.mark.django_db(transaction=True)
def test_a_transaction_that_commits_late_is_published_in_the_next_batch(areas, county_reviewer, other_county_reviewer):
    # Accounts exist beforehand, so the two transactions share no row to lock.
    ledger.pool(areas.yanting), ledger.pool(areas.zitong), ledger.income_money()
    posted, release = threading.Event(), threading.Event()
    late = {}

    def post_and_wait():
        try:
            with transaction.atomic():
                late["txn"] = gift(county_reviewer, areas.yanting, "10", "LATE")
                posted.set()
                assert release.wait(30)
        except Exception as exc:  # noqa: BLE001
            late["error"] = exc
        finally:
            posted.set()
            connection.close()

    thread = threading.Thread(target=post_and_wait)
    thread.start()
    try:
        assert posted.wait(30) and "error" not in late
        early = gift(other_county_reviewer, areas.zitong, "20", "EARLY")
        assert early.pk > late["txn"].pk

        batch1 = publication.publish_pending()

        assert list(PublishedEntry.objects.values_list("transaction_id", flat=True)) == [early.pk]
        assert (batch1.number, batch1.tree_size) == (1, 1)
    finally:
        release.set()
        thread.join(30)
    assert "error" not in late, late.get("error")

    batch2 = publication.publish_pending()

    assert (batch2.number, batch2.first_index, batch2.tree_size) == (2, 1, 2)
    assert PublishedEntry.objects.get(index=1).transaction_id == late["txn"].pk
    assert publication.publish_pending() is None
    assert_published_exactly_once()
    check_ok()


@pytest.mark.django_db(transaction=True)
def test_two_publishers_at_once_publish_each_transaction_exactly_once(
    areas, money_need_a, donor, county_reviewer, settings
):
    receive_money(money_need_a, donor, "500", reference="TWO-1", by=county_reviewer)
    with transaction.atomic():
        for i in range(40):
            money.spend(by=county_reviewer, amount="1.25", need_id=money_need_a.pk, **spend_kwargs(purpose=f"#{i}"))
    bulk_goods_in(2000, areas.village_b)
    settings.LEDGER_BATCH_MAX = 150  # many batches, so the two publishers really interleave

    results = run_together(2, lambda i: publication.publish_all())

    assert not [r for r in results if isinstance(r, Exception)], results
    numbers = [b.number for r in results for b in r]
    assert sorted(numbers) == list(range(1, LedgerBatch.objects.count() + 1))  # each batch made by one of them
    assert assert_published_exactly_once() == 2041
    check_ok()


def test_each_batch_is_read_under_the_lock_on_the_publishers_own_connection(areas, settings):
    """No reading ahead: each batch is read by the publisher's connection
    after it took the lock, then written; no thread is left behind."""
    from django.test.utils import CaptureQueriesContext

    bulk_goods_in(25, areas.village_a)
    settings.LEDGER_BATCH_MAX = 10
    threads = threading.active_count()
    with CaptureQueriesContext(connection) as ctx:
        batches = publication.publish_all()
    assert [(b.first_index, b.tree_size) for b in batches] == [(0, 10), (10, 20), (20, 25)]
    sql = [q["sql"].lstrip() for q in ctx.captured_queries]
    reads = [i for i, q in enumerate(sql) if q.startswith("SELECT t.id, t.kind")]
    locks = [i for i, q in enumerate(sql) if q.startswith("SELECT pg_advisory_xact_lock")]
    assert len(reads) == len(locks) == 4  # three batches, then the look that finds the outbox empty
    assert all(lock < read for lock, read in zip(locks, reads, strict=True))
    assert threading.active_count() == threads
    assert assert_published_exactly_once() == 25
    check_ok()


# --- Kill -9 in the middle of a publication ---------------------------------------------------


def _db_rows(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _forget_unacked(queue: str) -> None:
    """The task was taken (acks_late) by the worker we killed: drop its
    unacknowledged copy and the queue from Redis, so no later worker restores it."""
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    for tag, payload in client.hscan_iter("unacked"):
        try:
            routing_key = json.loads(payload)[2]
        except (ValueError, IndexError, TypeError):
            continue
        if routing_key == queue:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)
    client.delete(queue)


@pytest.fixture
def publisher_worker(django_db_setup, tmp_path):
    """A real Celery worker (solo pool: the main process runs the task) on a
    queue of its own, on the test database, in a process group of its own."""
    queue = f"sun_commune_test_pub_{uuid.uuid4().hex[:12]}"
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CELERY_QUEUE": queue,
        "DATABASE_URL": f"postgres:///{settings.DATABASES['default']['NAME']}",
        "DB_CONN_MAX_AGE": "0",
        "PYTHONPATH": str(ROOT),
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("celery")),
                "-A",
                "sun_commune",
                "worker",
                "--pool=solo",
                "--concurrency=1",
                "-Q",
                queue,
                "--without-heartbeat",
                "--without-mingle",
                "--without-gossip",
                "--loglevel=INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    old = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield SimpleNamespace(queue=queue, process=process, log_path=log_path)
    finally:
        app.conf.task_always_eager = old
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        _forget_unacked(queue)


def _wait_for(what: str, predicate, deadline: float, worker=None):
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None:
            assert worker.process.poll() is None, worker.log_path.read_text(errors="replace")[-3000:]
        time.sleep(0.05)
    log = worker.log_path.read_text(errors="replace")[-3000:] if worker else ""
    raise AssertionError(f"timed out waiting for {what}\n{log}")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_publisher_killed_with_sigkill_leaves_nothing_and_the_next_run_publishes_everything(
    areas, money_need_a, donor, county_reviewer, publisher_worker
):
    deadline = time.monotonic() + 50
    receive_money(money_need_a, donor, "100", reference="KILL-1", by=county_reviewer)
    total = 1 + bulk_goods_in(12_000, areas.village_a)

    # A gate: while this transaction holds the table, the publisher can take
    # its lock and read the outbox, but then waits to insert the entries —
    # so the kill lands in the middle of its transaction, however fast it is.
    with transaction.atomic():
        _db_rows("LOCK TABLE donations_publishedentry IN EXCLUSIVE MODE")
        tasks.publish_ledger.apply_async(queue=publisher_worker.queue)

        (backend,) = _wait_for(
            "the publisher's advisory lock",
            lambda: _db_rows(
                """SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = %s
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND pid <> pg_backend_pid()""",
                [publication.ADVISORY_LOCK],
            ),
            deadline,
            publisher_worker,
        )[0]
        _wait_for(
            "the publisher to reach the entries",
            lambda: _db_rows(
                "SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted AND relation = 'donations_publishedentry'::regclass",
                [backend],
            ),
            deadline,
            publisher_worker,
        )
        assert _db_rows(  # mid-transaction: it holds the publisher's lock and waits for the entries
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state = 'active' AND xact_start IS NOT NULL",
            [backend],
        )

        os.killpg(publisher_worker.process.pid, signal.SIGKILL)
        assert publisher_worker.process.wait(timeout=10) == -signal.SIGKILL

    # PostgreSQL rolls the dead connection's transaction back once the backend
    # notices its client is gone.
    _wait_for(
        "the dead worker's backend to end",
        lambda: not _db_rows("SELECT pg_stat_clear_snapshot(), 1 FROM pg_stat_activity WHERE pid = %s", [backend]),
        deadline,
    )
    assert not LedgerBatch.objects.exists()
    assert not PublishedEntry.objects.exists()
    assert not MerkleNode.objects.exists()
    assert not AreaLedgerTotal.objects.exists()
    assert LedgerOutbox.objects.count() == LedgerTransaction.objects.count() == total
    assert not _db_rows(  # advisory locks belong to one database: a publisher of another is not this one's
        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = %s"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        [publication.ADVISORY_LOCK],
    )

    batches = publication.publish_all()

    assert [b.number for b in batches] == [1]
    assert assert_published_exactly_once() == total
    assert AreaLedgerTotal.objects.get(area=areas.village_a).entries == total
    check_ok()
    assert time.monotonic() < deadline


# --- 8. Published totals per area ----------------------------------------------------------------


def _expected_totals(area: Area) -> dict:
    """Sum the published entries themselves, in the area and below."""
    by_id = {d["id"]: d for d in published_lines()}
    totals = {"money_in": D("0"), "goods_in": D("0"), "money_out": D("0"), "entries": 0}
    for e in PublishedEntry.objects.filter(area_path__startswith=area.path):
        data = json.loads(e.line)
        sign, kind = 1, data["kind"]
        if kind == "reversal":
            sign, kind = -1, by_id[data["reverses"]]["kind"]
        amount = sign * Decimal(data["amount"])
        if kind in ("money_in", "gift_in"):
            totals["money_in"] += amount
        elif kind == "goods_in":
            totals["goods_in"] += amount
        elif kind == "spend":
            totals["money_out"] += amount
        totals["entries"] += 1
    return totals


def _stored_totals(area: Area) -> dict:
    t = AreaLedgerTotal.objects.get(area=area)
    return {"money_in": t.money_in, "goods_in": t.goods_in, "money_out": t.money_out, "entries": t.entries}


def test_area_totals_are_the_sums_of_the_published_entries(
    areas, money_need_a, need_a, donor, secretary_a, county_reviewer, other_county_reviewer, anonymous
):
    secretary_c = factories.make_secretary(areas.village_c, username="secretary_c")
    need_c = factories.published_need(
        village=areas.village_c, by=secretary_c, reviewer=other_county_reviewer, kind="money"
    )
    receive_money(money_need_a, donor, "300.00", reference="TOT-1", by=county_reviewer)
    goods = factories.pledge(need_a, donor, 3)
    pledges.confirm_receipt(pledge_id=goods.pk, by=secretary_a, quantity=2)  # 160.00 of 240.00
    money.spend(by=county_reviewer, amount="100.10", need_id=money_need_a.pk, **spend_kwargs())
    publication.publish_all()  # batch 1; the totals must add up across batches
    gift(county_reviewer, areas.yanting, "500.00", "TOT-2")
    pool_spend = money.spend(by=county_reviewer, amount="50.00", pool_area=areas.yanting, **spend_kwargs())
    money.reverse_transaction(by=county_reviewer, transaction_id=pool_spend.pk, reason="paid twice")
    money.allocate(by=county_reviewer, pool_area=areas.yanting, need_id=money_need_a.pk, amount="70.00")
    receive_money(need_c, donor, "70.00", reference="TOT-3", by=other_county_reviewer)
    unpublished = gift(county_reviewer, areas.yanting, "999.00", "TOT-4")
    publication.publish_all()
    gift(county_reviewer, areas.yanting, "1.00", "TOT-5")  # not yet published: not counted

    expected = {
        areas.village_a: ("300.00", "160.00", "100.10", 4),
        areas.huangxi: ("300.00", "160.00", "100.10", 4),
        areas.yanting: ("1799.00", "160.00", "100.10", 8),
        areas.zitong: ("70.00", "0.00", "0.00", 1),
        areas.city: ("1869.00", "160.00", "100.10", 9),
    }
    assert unpublished.published
    for area, (money_in, goods_in, money_out, entries) in expected.items():
        stored = _stored_totals(area)
        assert stored == _expected_totals(area), area
        assert stored == {
            "money_in": D(money_in),
            "goods_in": D(goods_in),
            "money_out": D(money_out),
            "entries": entries,
        }
    assert not AreaLedgerTotal.objects.filter(area=areas.village_b).exists()

    page = anonymous.get("/ledger/totals/", {"area": areas.yanting.pk}, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<div class="stat" id="total-in">¥1,959.00</div>' in page
    for figure in ("¥1,799.00", "¥160.00", "¥100.10"):
        assert figure in page
    village_row = page[page.index("Huangxi") :]
    assert "¥300.00" in village_row and "¥460.00" in village_row
    city_page = anonymous.get("/ledger/totals/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "¥2,029.00" in city_page and "Zitong" in city_page and "¥70.00" in city_page


def test_copy_writes_any_text_back_exactly(db):
    """The publisher writes entries with COPY's text format: backslashes,
    tabs, newlines and empty values come back exactly as they were."""
    from django.db import connection

    from donations.publication import _copy

    rows = [("a\\b\tc\nd\re", None), ('{"t":"引号\\"\\\\"}', ""), ("\\N", "plain")]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE copy_probe (n serial, a text, b text)")
        _copy(cursor, "copy_probe", ("a", "b"), rows)
        cursor.execute("SELECT a, b FROM copy_probe ORDER BY n")
        assert cursor.fetchall() == rows


def test_copy_passes_on_what_rendering_raised_and_stops_its_renderer(db):
    """The rows are rendered as COPY reads them: an error while rendering
    fails the COPY with that error and writes nothing; an error from
    PostgreSQL half-way stops the rendering too, and no thread is left."""
    import psycopg2

    from donations.publication import _copy

    def rows(fail_at):
        for n in range(5000):
            if n == fail_at:
                raise ValueError("entry 1234 cannot be rendered")
            yield (str(n),)

    before = threading.active_count()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE copy_probe (n integer)")
        with pytest.raises(psycopg2.errors.QueryCanceled, match="entry 1234 cannot be rendered"), transaction.atomic():
            _copy(cursor, "copy_probe", ("n",), rows(1234))
        assert threading.active_count() == before
        with pytest.raises(psycopg2.DataError), transaction.atomic():
            _copy(cursor, "copy_probe", ("n",), [("1",), ("not a number",), *rows(None)])
        assert threading.active_count() == before
        _copy(cursor, "copy_probe", ("n",), rows(None))
        cursor.execute("SELECT count(*), sum(n) FROM copy_probe")
        assert cursor.fetchone() == (5000, sum(range(5000)))


def test_entry_lines_are_written_out_exactly_as_canonical_json():
    """The publisher writes each entry's line key by key instead of through
    json.dumps: for every kind of value (absent ones, empty strings that
    become null, quotes, backslashes, control characters, Chinese, emoji,
    an anonymous donor, a reversal) the characters are the canonical ones."""
    strings = ["", "plain", '引号"\\', "tab\there\nnew\rline\x01\x1f", "电视机 🎁", "\u2028\u2029", "ü/é</script>"]
    base = publication.Pending(
        id=1, kind="money_in", occurred_on="2026-11-03", recorded_at="2026-11-03T10:11:12Z", amount="12.50",
        need_id=None, need_title=None, household=None, area_code="510703001001", area_name="金兰村",
        area_path="51.5107.", donor_name=None, donor_named=None, purpose="", category="", payee="",
        voucher_sha256="", reverses_id=None, reverses_kind=None, legs=[],
    )  # fmt: skip
    variants = [base]
    for n, text in enumerate(strings):
        variants.append(
            base._replace(
                id=10**12 + n, need_id=n, need_title=text, household=text or None, area_name=text, purpose=text,
                category=text, payee=text, voucher_sha256=text, donor_name=text, donor_named=n % 2 == 0,
                reverses_id=n or None, reverses_kind="spend", kind="reversal", amount=text,
                legs=[f"pool:{n} -{n}.00", f"need:{n} {n}.00"], area_code=text, occurred_on=text,
            )
        )  # fmt: skip
    for n, row in enumerate(variants):
        prev = f"{n:064x}"
        assert publication.entry_line(row, index=n, prev=prev).encode() == merkle.canonical(
            publication.public_entry(row, index=n, prev=prev)
        )
    with pytest.raises(ValueError):
        publication.entry_line(base._replace(legs=["account with a space 1.00"]), index=0, prev=prev)


def test_the_database_refuses_an_entry_that_does_not_say_what_its_transaction_says(
    areas, money_need_a, county_reviewer
):
    """Entries hold no foreign keys (checked row by row, they slowed the
    publisher's writing); a statement trigger checks every entry a
    statement writes against its transaction instead: that it exists, and
    that the need, kind, amount, date and area path are the transaction's."""
    from django.db import IntegrityError

    txn = gift(county_reviewer, areas.yanting, "20", "P-9")
    right = {
        "index": 0,
        "transaction_id": txn.pk,
        "line": "{}",
        "leaf_hash": publication.ZERO_HASH,
        "kind": txn.kind,
        "amount": txn.amount,
        "occurred_on": txn.occurred_on,
        "need_id": txn.need_id,
        "area_path": txn.area.path,
    }
    wrongs = [
        {"transaction_id": txn.pk + 1000},
        {"need_id": money_need_a.pk},
        {"kind": Kind.SPEND},
        {"amount": D("20.01")},
        {"occurred_on": txn.occurred_on.replace(year=2001)},
        {"area_path": areas.city.path},
    ]
    for wrong in wrongs:
        with pytest.raises(IntegrityError, match="does not say what ledger transaction"), transaction.atomic():
            PublishedEntry.objects.create(**{**right, **wrong})
    assert not PublishedEntry.objects.exists()
    PublishedEntry.objects.create(**right)
    assert PublishedEntry.objects.get().transaction_id == txn.pk
