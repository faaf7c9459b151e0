"""Helpers for the ledger tests (issue 3): money in through the services,
fund balances, threads released together, and a fast raw-SQL bulk loader
for the publication tests."""

import json
import threading
from datetime import timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from donations import ledger, publication
from donations.models import LedgerAccount, LedgerLeg, LedgerTransaction, Need, PublishedEntry
from donations.services import pledges

from . import factories

D = Decimal
TODAY = timezone.localdate


def yesterday():
    return timezone.localdate() - timedelta(days=1)


def receive_money(need: Need, donor_user, amount, *, reference: str, by) -> LedgerTransaction:
    """A donor pledges ``amount`` to a money need and bureau staff record the
    transfer: the need's fund gets the money. Returns the MONEY_IN transaction."""
    p = factories.pledge(need, donor_user, D(amount))
    pledges.record_money_received(pledge_id=p.pk, by=by, amount=D(amount), reference=reference)
    return LedgerTransaction.objects.get(pledge=p, kind=LedgerTransaction.Kind.MONEY_IN)


def fund_of(need: Need) -> LedgerAccount:
    return LedgerAccount.objects.get(code=f"need:{need.pk}")


def pool_of(area) -> LedgerAccount:
    return LedgerAccount.objects.get(code=f"pool:{area.code}")


def legs_total(account: LedgerAccount) -> Decimal:
    return LedgerLeg.objects.filter(account=account).aggregate(s=Sum("amount"))["s"] or D("0.00")


def legs_of(txn: LedgerTransaction) -> dict:
    return {leg.account.code: leg.amount for leg in txn.legs.select_related("account")}


def spend_kwargs(**overrides) -> dict:
    kwargs = {
        "purpose": "购买水泥",
        "category": LedgerTransaction.Category.PURCHASE,
        "occurred_on": timezone.localdate(),
        "payee": "盐亭建材店",
    }
    kwargs.update(overrides)
    return kwargs


def run_together(n: int, action) -> list:
    """Call ``action(i)`` in ``n`` threads released at once by a barrier, each
    on its own PostgreSQL connection; return each result or exception."""
    barrier = threading.Barrier(n, timeout=30)
    results: list = [None] * n

    def work(i):
        try:
            connection.ensure_connection()  # connect first: the race is on the action itself
            barrier.wait()
            results[i] = action(i)
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread got
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


BULK_SQL = """
WITH t AS (
    INSERT INTO donations_ledgertransaction
        (kind, amount, occurred_on, recorded_at, purpose, category, payee, voucher_sha256, area_id)
    SELECT 'goods_in', (1 + i %% 997) + (i %% 100) / 100.0, CURRENT_DATE, now(), '批量物资 #' || i, '', '', '',
           %(area)s
    FROM generate_series(1, %(n)s) AS i
    RETURNING id, amount
),
legs AS (
    INSERT INTO donations_ledgerleg (transaction_id, account_id, amount)
    SELECT id, %(debit)s, amount FROM t UNION ALL SELECT id, %(credit)s, -amount FROM t
),
outbox AS (INSERT INTO donations_ledgeroutbox (transaction_id) SELECT id FROM t)
SELECT count(*) FROM t
"""


def bulk_goods_in(n: int, area) -> int:
    """Insert ``n`` balanced GOODS_IN transactions (goods delivered +, income
    goods −) with their legs and outbox rows in one statement — the
    append-only triggers allow INSERT. Runs in the caller's transaction (or
    autocommits). Returns how many were inserted."""
    debit, credit = ledger.goods_delivered(), ledger.income_goods()
    with connection.cursor() as cursor:
        cursor.execute(BULK_SQL, {"n": n, "area": area.pk, "debit": debit.pk, "credit": credit.pk})
        return cursor.fetchone()[0]


def assert_published_exactly_once() -> int:
    """Every ledger transaction is published once, at contiguous indices
    0..n-1, each batch continuing where the one before ended. Returns n."""
    n = LedgerTransaction.objects.count()
    rows = list(PublishedEntry.objects.order_by("index").values_list("index", "transaction_id"))
    assert len(rows) == n
    assert [index for index, _txn in rows] == list(range(n))
    assert len({txn for _index, txn in rows}) == n
    from donations.models import LedgerBatch, LedgerOutbox

    assert not LedgerOutbox.objects.exists()
    size = 0
    for number, batch in enumerate(LedgerBatch.objects.order_by("number"), start=1):
        assert batch.number == number
        assert batch.first_index == size
        assert batch.entries().count() == batch.tree_size - size
        size = batch.tree_size
    assert size == n
    return n


def check_ok():
    check = publication.run_check()
    assert check.ok, check.problems
    return check


def published_lines() -> list[dict]:
    return [json.loads(line) for line in PublishedEntry.objects.order_by("index").values_list("line", flat=True)]
