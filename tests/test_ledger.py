"""The fund-usage ledger (issue 3), on the real PostgreSQL: append-only in
the database itself, money and goods in through the services, no fund ever
overspent however many staff spend at once, allocation / reversal / return to
the pool, and the ledger check."""

import re

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import translation

from donations import ledger, publication, tasks
from donations.models import (
    LedgerAccount,
    LedgerBatch,
    LedgerCheck,
    LedgerLeg,
    LedgerOutbox,
    LedgerTransaction,
    MerkleNode,
    Need,
    Pledge,
    PublishedEntry,
)
from donations.services import money, needs
from donations.services import pledges as pledge_services
from sun_commune.errors import ActionRefused

from . import factories
from .ledger_support import (
    D,
    bulk_goods_in,
    check_ok,
    fund_of,
    legs_of,
    legs_total,
    pool_of,
    receive_money,
    run_together,
    spend_kwargs,
    yesterday,
)

Kind = LedgerTransaction.Kind


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


# --- 1. Append-only, in the database ------------------------------------------------------


@pytest.fixture
def published_ledger(areas, county_reviewer):
    """A few transactions, published (16+ so that a Merkle node is stored)."""
    money.record_gift(by=county_reviewer, area=areas.yanting, amount="500", reference="GIFT-1", occurred_on=yesterday())
    bulk_goods_in(16, areas.village_a)
    publication.publish_all()
    assert MerkleNode.objects.exists()
    return LedgerTransaction.objects.get(reference="GIFT-1")


CHANGES = {
    "donations_ledgertransaction": "UPDATE donations_ledgertransaction SET amount = amount + 1",
    "donations_ledgerleg": "UPDATE donations_ledgerleg SET amount = amount * 2",
    "donations_publishedentry": "UPDATE donations_publishedentry SET line = line || ' '",
    "donations_ledgerbatch": "UPDATE donations_ledgerbatch SET root_hash = repeat('0', 64)",
    "donations_merklenode": "UPDATE donations_merklenode SET hash = repeat('0', 64)",
}


def _snapshot():
    return (
        list(LedgerTransaction.objects.order_by("pk").values_list("pk", "amount")),
        list(LedgerLeg.objects.order_by("pk").values_list("pk", "amount")),
        list(PublishedEntry.objects.order_by("index").values_list("index", "line")),
        list(LedgerBatch.objects.order_by("number").values_list("number", "root_hash")),
        list(MerkleNode.objects.order_by("pk").values_list("pk", "hash")),
    )


@pytest.mark.parametrize("table", sorted(CHANGES))
def test_the_database_refuses_to_update_or_delete_ledger_rows(published_ledger, table):
    before = _snapshot()

    for sql in (CHANGES[table], f"DELETE FROM {table}"):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql)

    assert _snapshot() == before


def test_one_row_at_a_time_is_refused_too(published_ledger):
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM donations_ledgertransaction WHERE id = %s", [published_ledger.pk])
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE donations_publishedentry SET amount = 1 WHERE transaction_id = %s", [published_ledger.pk]
            )
    assert LedgerTransaction.objects.filter(pk=published_ledger.pk, amount=D("500.00")).exists()


def _raw_transaction(cursor, area, legs) -> int:
    cursor.execute(
        """INSERT INTO donations_ledgertransaction
               (kind, amount, occurred_on, recorded_at, purpose, category, payee, voucher_sha256, area_id)
           VALUES ('goods_in', 10, CURRENT_DATE, now(), 'raw', '', '', '', %s) RETURNING id""",
        [area.pk],
    )
    txn_id = cursor.fetchone()[0]
    for account, amount in legs:
        cursor.execute(
            "INSERT INTO donations_ledgerleg (transaction_id, account_id, amount) VALUES (%s, %s, %s)",
            [txn_id, account.pk, amount],
        )
    return txn_id


@pytest.mark.django_db(transaction=True)
def test_an_unbalanced_transaction_is_refused_at_commit(areas):
    delivered, income = ledger.goods_delivered(), ledger.income_goods()

    with pytest.raises(IntegrityError, match="does not balance"):
        with transaction.atomic(), connection.cursor() as cursor:
            txn_id = _raw_transaction(cursor, areas.village_a, [(delivered, D("10.00")), (income, D("-9.00"))])
            # Legs are inserted one by one: the check waits for COMMIT.
            assert LedgerLeg.objects.filter(transaction_id=txn_id).count() == 2

    assert not LedgerTransaction.objects.exists()
    assert not LedgerLeg.objects.exists()

    with transaction.atomic(), connection.cursor() as cursor:  # the balanced one commits
        _raw_transaction(cursor, areas.village_a, [(delivered, D("10.00")), (income, D("-10.00"))])
    assert LedgerLeg.objects.count() == 2


# --- 2. Money and goods in ------------------------------------------------------------------


def test_money_received_writes_one_money_in_transaction_in_the_same_transaction(money_need_a, donor, county_reviewer):
    p = factories.pledge(money_need_a, donor, D("300.00"))

    pledge_services.record_money_received(pledge_id=p.pk, by=county_reviewer, amount="300.00", reference="BANK-001")

    txn = LedgerTransaction.objects.get()
    assert (txn.kind, txn.amount, txn.pledge_id, txn.need_id, txn.reference) == (
        Kind.MONEY_IN,
        D("300.00"),
        p.pk,
        money_need_a.pk,
        "BANK-001",
    )
    assert txn.area_id == money_need_a.village_id
    assert legs_of(txn) == {f"need:{money_need_a.pk}": D("300.00"), "income:money": D("-300.00")}
    assert fund_of(money_need_a).balance == D("300.00") == legs_total(fund_of(money_need_a))
    assert LedgerOutbox.objects.filter(transaction=txn).exists()  # queued for publication, same transaction


def test_money_received_rolls_back_with_its_ledger_entry(money_need_a, donor, county_reviewer, monkeypatch):
    p = factories.pledge(money_need_a, donor, D("300.00"))

    def broken_audit(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("donations.services.pledges.audit.record", broken_audit)
    with pytest.raises(RuntimeError):
        pledge_services.record_money_received(pledge_id=p.pk, by=county_reviewer, amount="300.00", reference="BANK-001")

    p.refresh_from_db()
    assert p.status == Pledge.Status.PLEDGED
    assert not LedgerTransaction.objects.exists()
    assert not LedgerAccount.objects.filter(kind=LedgerAccount.Kind.NEED_FUND, balance__gt=0).exists()


def test_the_same_reference_again_on_the_same_pledge_is_a_no_op(money_need_a, donor, county_reviewer):
    p = factories.pledge(money_need_a, donor, D("300.00"))
    pledge_services.record_money_received(pledge_id=p.pk, by=county_reviewer, amount="300.00", reference="BANK-001")

    again = pledge_services.record_money_received(
        pledge_id=p.pk, by=county_reviewer, amount="300.00", reference="BANK-001"
    )

    assert again.pk == p.pk
    assert LedgerTransaction.objects.count() == 1
    assert fund_of(money_need_a).balance == D("300.00")
    money_need_a.refresh_from_db()
    assert money_need_a.received_amount == D("300.00")


def test_the_same_reference_on_another_pledge_or_as_a_gift_is_refused(
    areas, money_need_a, donor, other_donor, county_reviewer
):
    first = factories.pledge(money_need_a, donor, D("300.00"))
    second = factories.pledge(money_need_a, other_donor, D("200.00"))
    pledge_services.record_money_received(pledge_id=first.pk, by=county_reviewer, amount="300.00", reference="BANK-001")

    with pytest.raises(ActionRefused) as refused:
        pledge_services.record_money_received(
            pledge_id=second.pk, by=county_reviewer, amount="200.00", reference="BANK-001"
        )
    assert refused.value.field == "reference" and "another pledge" in refused.value.message

    with pytest.raises(ActionRefused) as refused:
        money.record_gift(
            by=county_reviewer, area=areas.yanting, amount="50", reference="BANK-001", occurred_on=yesterday()
        )
    assert refused.value.field == "reference" and "already been recorded" in refused.value.message

    second.refresh_from_db()
    assert second.status == Pledge.Status.PLEDGED and second.transfer_reference is None
    assert LedgerTransaction.objects.count() == 1
    assert not LedgerAccount.objects.filter(code=f"pool:{areas.yanting.code}", balance__gt=0).exists()
    assert fund_of(money_need_a).balance == D("300.00")


def test_a_gifts_reference_used_for_a_pledge_is_refused_with_a_message(areas, money_need_a, donor, county_reviewer):
    money.record_gift(
        by=county_reviewer, area=areas.yanting, amount="50", reference="BANK-777", occurred_on=yesterday()
    )
    p = factories.pledge(money_need_a, donor, D("300.00"))

    with pytest.raises(ActionRefused) as refused:
        pledge_services.record_money_received(pledge_id=p.pk, by=county_reviewer, amount="300.00", reference="BANK-777")

    assert refused.value.field == "reference" and "already been recorded" in refused.value.message
    assert LedgerTransaction.objects.count() == 1
    p.refresh_from_db()
    assert p.status == Pledge.Status.PLEDGED and p.transfer_reference is None


def test_goods_confirmed_enter_the_ledger_at_declared_value(need_a, donor, secretary_a):
    p = factories.pledge(need_a, donor, 4)  # 4 × 80.00

    pledge_services.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=4)

    txn = LedgerTransaction.objects.get()
    assert (txn.kind, txn.amount, txn.pledge_id, txn.need_id, txn.donor_id) == (
        Kind.GOODS_IN,
        D("320.00"),
        p.pk,
        need_a.pk,
        p.donor_id,
    )
    assert legs_of(txn) == {"goods:delivered": D("320.00"), "income:goods": D("-320.00")}
    assert not LedgerAccount.objects.filter(kind__in=LedgerAccount.FUNDS).exists()  # goods are no fund money


@pytest.mark.parametrize(
    ("unit_price", "pledged", "arrived", "value"),
    [
        ("80.00", 3, 2, "160.00"),
        ("33.33", 3, 1, "33.33"),
        ("0.07", 7, 3, "0.21"),
        ("19.99", 9, 4, "79.96"),
    ],
)
def test_a_partial_arrival_enters_its_share_of_the_declared_value_to_the_fen(
    areas, secretary_a, county_reviewer, donor, unit_price, pledged, arrived, value
):
    need = factories.published_need(
        village=areas.village_a, by=secretary_a, reviewer=county_reviewer, unit_price=D(unit_price), quantity=10
    )
    p = factories.pledge(need, donor, pledged)

    pledge_services.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=arrived)

    txn = LedgerTransaction.objects.get()
    assert txn.amount == D(value)
    assert txn.amount.as_tuple().exponent == -2
    assert pledge_services.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=arrived)  # twice: no second entry
    assert LedgerTransaction.objects.count() == 1


def test_a_service_or_goods_without_a_price_write_nothing(areas, secretary_a, county_reviewer, donor):
    service = factories.published_need(
        village=areas.village_a, by=secretary_a, reviewer=county_reviewer, kind="service"
    )
    unpriced = factories.published_need(
        village=areas.village_a, by=secretary_a, reviewer=county_reviewer, unit_price=None, title="旧衣服"
    )
    for need in (service, unpriced):
        p = factories.pledge(need, donor, 2)
        pledge_services.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=2)

    assert Pledge.objects.filter(status__in=[Pledge.Status.DONE, Pledge.Status.RECEIVED]).count() == 2
    assert not LedgerTransaction.objects.exists()
    assert not LedgerOutbox.objects.exists()
    check_ok()


# --- 3. No overspending, however many spend at once --------------------------------------------


def _split(results):
    made = [r for r in results if isinstance(r, LedgerTransaction)]
    refused = [r for r in results if isinstance(r, ActionRefused)]
    assert len(made) + len(refused) == len(results), [
        r for r in results if not isinstance(r, LedgerTransaction | ActionRefused)
    ]
    return made, refused


@pytest.mark.django_db(transaction=True)
def test_ten_staff_spending_30_from_a_need_fund_of_100_at_once(money_need_a, donor, county_reviewer):
    receive_money(money_need_a, donor, "100.00", reference="RACE-1", by=county_reviewer)

    results = run_together(
        10, lambda i: money.spend(by=county_reviewer, amount="30", need_id=money_need_a.pk, **spend_kwargs())
    )

    made, refused = _split(results)
    assert (len(made), len(refused)) == (3, 7)
    assert all(r.field == "amount" for r in refused)
    fund = fund_of(money_need_a)
    assert fund.balance == D("10.00") == legs_total(fund)
    assert LedgerTransaction.objects.filter(kind=Kind.SPEND).count() == 3
    check_ok()


@pytest.mark.django_db(transaction=True)
def test_ten_staff_spending_30_from_a_pool_of_100_at_once(areas, county_reviewer):
    money.record_gift(by=county_reviewer, area=areas.yanting, amount="100", reference="RACE-2", occurred_on=yesterday())

    results = run_together(
        10, lambda i: money.spend(by=county_reviewer, amount="30", pool_area=areas.yanting, **spend_kwargs())
    )

    made, refused = _split(results)
    assert (len(made), len(refused)) == (3, 7)
    pool = pool_of(areas.yanting)
    assert pool.balance == D("10.00") == legs_total(pool)
    check_ok()


@pytest.mark.django_db(transaction=True)
def test_allocating_and_spending_at_once_never_overdraw_the_pool(areas, money_need_a, county_reviewer):
    """Allocations out of a pool race with spends out of the same pool."""
    money.record_gift(by=county_reviewer, area=areas.yanting, amount="100", reference="RACE-3", occurred_on=yesterday())

    def act(i):
        if i % 2:
            return money.allocate(by=county_reviewer, pool_area=areas.yanting, need_id=money_need_a.pk, amount="30")
        return money.spend(by=county_reviewer, amount="30", pool_area=areas.yanting, **spend_kwargs())

    made, refused = _split(run_together(10, act))

    assert (len(made), len(refused)) == (3, 7)
    pool = pool_of(areas.yanting)
    assert pool.balance == D("10.00") == legs_total(pool)
    check_ok()


# --- 4. Allocate, reverse, close ---------------------------------------------------------------


@pytest.fixture
def pool_500(areas, county_reviewer):
    return money.record_gift(
        by=county_reviewer, area=areas.yanting, amount="500.00", reference="POOL-500", occurred_on=yesterday()
    )


def test_a_gift_goes_to_the_pool_of_the_area(areas, pool_500):
    assert pool_500.kind == Kind.GIFT_IN and pool_500.area_id == areas.yanting.pk
    assert legs_of(pool_500) == {f"pool:{areas.yanting.code}": D("500.00"), "income:money": D("-500.00")}
    with pytest.raises(ActionRefused):  # a village has no pool
        ledger.pool(areas.village_a)


def test_allocation_moves_money_from_the_pool_to_the_need_fund(areas, pool_500, money_need_a, county_reviewer):
    txn = money.allocate(by=county_reviewer, pool_area=areas.yanting, need_id=money_need_a.pk, amount="200")

    assert txn.kind == Kind.ALLOCATION and txn.need_id == money_need_a.pk and txn.area_id == areas.village_a.pk
    assert legs_of(txn) == {f"pool:{areas.yanting.code}": D("-200.00"), f"need:{money_need_a.pk}": D("200.00")}
    assert pool_of(areas.yanting).balance == D("300.00")
    assert fund_of(money_need_a).balance == D("200.00")


def test_allocation_outside_the_pools_area_or_beyond_its_balance_is_refused(
    areas, pool_500, money_need_a, secretary_a, county_reviewer, other_county_reviewer
):
    secretary_c = factories.make_secretary(areas.village_c, username="secretary_c")
    need_c = factories.published_need(
        village=areas.village_c, by=secretary_c, reviewer=other_county_reviewer, kind="money"
    )
    draft = factories.make_need(village=areas.village_a, by=secretary_a, kind="money")

    with pytest.raises(ActionRefused) as refused:  # Zitong's need, Yanting's pool
        money.allocate(by=county_reviewer, pool_area=areas.yanting, need_id=need_c.pk, amount="10")
    assert refused.value.field == "need"
    with pytest.raises(ActionRefused) as refused:  # not published
        money.allocate(by=county_reviewer, pool_area=areas.yanting, need_id=draft.pk, amount="10")
    assert refused.value.field == "need"
    with pytest.raises(ActionRefused) as refused:  # more than the pool holds
        money.allocate(by=county_reviewer, pool_area=areas.yanting, need_id=money_need_a.pk, amount="500.01")
    assert refused.value.field == "amount"
    with pytest.raises(ActionRefused) as refused:  # the township's own pool is empty
        money.allocate(by=county_reviewer, pool_area=areas.huangxi, need_id=money_need_a.pk, amount="1")
    assert refused.value.field == "amount"

    assert LedgerTransaction.objects.count() == 1
    assert pool_of(areas.yanting).balance == D("500.00")
    assert not LedgerAccount.objects.filter(kind=LedgerAccount.Kind.NEED_FUND, balance__gt=0).exists()


def test_reversal_negates_every_leg_and_points_at_the_original(areas, pool_500, money_need_a, county_reviewer):
    allocation = money.allocate(by=county_reviewer, pool_area=areas.yanting, need_id=money_need_a.pk, amount="200")

    reversal = money.reverse_transaction(by=county_reviewer, transaction_id=allocation.pk, reason="wrong need")

    assert reversal.kind == Kind.REVERSAL and reversal.reverses_id == allocation.pk
    assert reversal.amount == allocation.amount and reversal.purpose == "wrong need"
    assert legs_of(reversal) == {code: -amount for code, amount in legs_of(allocation).items()}
    assert pool_of(areas.yanting).balance == D("500.00")
    assert fund_of(money_need_a).balance == D("0.00")
    allocation.refresh_from_db()
    assert allocation.amount == D("200.00")  # the original is untouched

    with pytest.raises(ActionRefused, match="already been reversed"):
        money.reverse_transaction(by=county_reviewer, transaction_id=allocation.pk, reason="again")
    with pytest.raises(ActionRefused):
        money.reverse_transaction(by=county_reviewer, transaction_id=reversal.pk, reason="undo the undo")
    with pytest.raises(ActionRefused) as refused:
        money.reverse_transaction(by=county_reviewer, transaction_id=pool_500.pk, reason="   ")
    assert refused.value.field == "reason"
    assert LedgerTransaction.objects.count() == 3
    check_ok()


def test_reversing_a_spend_puts_the_money_back(areas, pool_500, money_need_a, county_reviewer):
    money.allocate(by=county_reviewer, pool_area=areas.yanting, need_id=money_need_a.pk, amount="200")
    spent = money.spend(by=county_reviewer, amount="150", need_id=money_need_a.pk, **spend_kwargs())
    assert fund_of(money_need_a).balance == D("50.00")

    money.reverse_transaction(by=county_reviewer, transaction_id=spent.pk, reason="entered twice")

    fund = fund_of(money_need_a)
    assert fund.balance == D("200.00") == legs_total(fund)
    assert legs_total(LedgerAccount.objects.get(code="expense:purchase")) == D("0.00")


def test_reversing_a_gift_already_allocated_or_spent_is_refused(areas, pool_500, money_need_a, county_reviewer):
    money.allocate(by=county_reviewer, pool_area=areas.yanting, need_id=money_need_a.pk, amount="200")
    money.spend(by=county_reviewer, amount="250", pool_area=areas.yanting, **spend_kwargs())
    count = LedgerTransaction.objects.count()

    with pytest.raises(ActionRefused, match="Not enough money"):
        money.reverse_transaction(by=county_reviewer, transaction_id=pool_500.pk, reason="bounced")

    assert LedgerTransaction.objects.count() == count
    assert not LedgerTransaction.objects.filter(reverses=pool_500).exists()
    assert pool_of(areas.yanting).balance == D("50.00")


def test_a_pledges_receipt_is_not_reversed_in_the_ledger(money_need_a, donor, county_reviewer):
    money_in = receive_money(money_need_a, donor, "100", reference="BANK-9", by=county_reviewer)

    with pytest.raises(ActionRefused, match="on the pledge"):
        money.reverse_transaction(by=county_reviewer, transaction_id=money_in.pk, reason="typo")


def test_closing_a_need_returns_what_is_left_to_the_county_pool_visibly(areas, money_need_a, donor, county_reviewer):
    receive_money(money_need_a, donor, "1000.00", reference="BANK-FULL", by=county_reviewer)
    money_need_a.refresh_from_db()
    assert money_need_a.status == Need.Status.FULFILLED
    money.spend(by=county_reviewer, amount="600", need_id=money_need_a.pk, **spend_kwargs())

    needs.close_need(need_id=money_need_a.pk, by=county_reviewer)

    returned = LedgerTransaction.objects.get(kind=Kind.RETURN)
    assert returned.amount == D("400.00") and returned.need_id == money_need_a.pk
    assert legs_of(returned) == {f"need:{money_need_a.pk}": D("-400.00"), f"pool:{areas.yanting.code}": D("400.00")}
    assert fund_of(money_need_a).balance == D("0.00")
    assert pool_of(areas.yanting).balance == D("400.00")
    needs.close_need(need_id=money_need_a.pk, by=county_reviewer)  # twice: nothing more
    assert LedgerTransaction.objects.filter(kind=Kind.RETURN).count() == 1

    publication.publish_all()
    line = PublishedEntry.objects.get(kind=Kind.RETURN).line
    assert '"kind":"return"' in line and f'"need":{money_need_a.pk}' in line
    check_ok()


def test_closing_a_need_with_an_empty_fund_writes_nothing(need_a, donor, secretary_a, county_reviewer):
    p = factories.pledge(need_a, donor, 10)
    pledge_services.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=10)

    needs.close_need(need_id=need_a.pk, by=county_reviewer)

    assert list(LedgerTransaction.objects.values_list("kind", flat=True)) == [Kind.GOODS_IN]


# --- 9. The ledger check -----------------------------------------------------------------------


@pytest.fixture
def healthy_ledger(areas, money_need_a, need_a, donor, secretary_a, county_reviewer):
    receive_money(money_need_a, donor, "300", reference="BANK-H1", by=county_reviewer)
    money.spend(by=county_reviewer, amount="120.50", need_id=money_need_a.pk, **spend_kwargs())
    money.record_gift(by=county_reviewer, area=areas.yanting, amount="80", reference="BANK-H2", occurred_on=yesterday())
    p = factories.pledge(need_a, donor, 2)
    pledge_services.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=2)
    publication.publish_all()
    return fund_of(money_need_a)


def test_check_ledger_passes_on_a_healthy_ledger_and_records_it(healthy_ledger, capsys):
    call_command("check_ledger")

    check = LedgerCheck.objects.get()
    assert check.ok and check.problems == [] and check.tree_size == 4
    assert "OK: 4 published entries" in capsys.readouterr().out


def test_check_ledger_names_a_fund_whose_balance_does_not_match_its_entries(healthy_ledger):
    with connection.cursor() as cursor:  # accounts are not append-only; their legs are
        cursor.execute("UPDATE donations_ledgeraccount SET balance = balance + 1 WHERE id = %s", [healthy_ledger.pk])

    check = publication.run_check()

    assert not check.ok
    assert check.problems == [f"fund {healthy_ledger.code}: balance 180.50 but its entries add up to 179.50"]
    with pytest.raises(CommandError, match="1 problem"):
        call_command("check_ledger")
    assert LedgerCheck.objects.filter(ok=False).count() == 2


def test_check_ledger_names_a_received_pledge_without_its_ledger_entry(areas, money_need_a, donor, healthy_ledger):
    p = factories.pledge(money_need_a, donor, "50")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE donations_pledge SET status = 'received', received_amount = amount WHERE id = %s", [p.pk]
        )
        cursor.execute(
            "UPDATE donations_need SET received_amount = received_amount + 50 WHERE id = %s", [money_need_a.pk]
        )

    problems = publication.run_check().problems

    assert f"pledge {p.pk} was received but has no money_in entry" in problems
    assert f"need {money_need_a.pk}: 350.00 yuan received by pledges, 300.00 in the ledger" in problems


def test_the_nightly_task_mails_every_staff_user_when_the_check_fails(
    areas, healthy_ledger, county_reviewer, other_county_reviewer, secretary_a, client_of
):
    retired = factories.make_staff(areas.city, username="retired_staff")
    retired.is_active = False
    retired.save()
    assert tasks.check_ledger.delay().get() is True
    assert mail.outbox == []

    with connection.cursor() as cursor:
        cursor.execute("UPDATE donations_ledgeraccount SET balance = balance + 1 WHERE id = %s", [healthy_ledger.pk])
    assert tasks.check_ledger.delay().get() is False

    assert sorted(m.to[0] for m in mail.outbox) == sorted([county_reviewer.email, other_county_reviewer.email])
    assert all(healthy_ledger.code in m.body for m in mail.outbox)

    page = client_of(county_reviewer).get("/bureau/ledger/").content.decode()
    status = re.search(r'<p[^>]*id="check-status"[^>]*>(.*?)</p>\s*<ul[^>]*>(.*?)</ul>', page, re.S)
    assert status and "text-danger" in page[page.index('id="check-status"') - 80 : page.index('id="check-status"')]
    assert "✘" in status.group(1)
    assert healthy_ledger.code in status.group(2)


def test_the_staff_dashboard_shows_a_passed_check(healthy_ledger, county_reviewer, client_of):
    publication.run_check()

    page = client_of(county_reviewer).get("/bureau/ledger/").content.decode()

    assert 'class="text-success mb-1" id="check-status">✔' in page


@pytest.mark.django_db(transaction=True)
def test_one_transfer_reference_recorded_at_once_as_gifts_and_pledges_is_taken_once(
    areas, money_need_a, county_reviewer
):
    donors = [factories.make_donor(username=f"ref_racer{i}") for i in range(5)]
    pledges = [factories.pledge(money_need_a, d, D("100")) for d in donors]
    ledger.pool(areas.yanting), ledger.need_fund(money_need_a), ledger.income_money()  # accounts exist beforehand

    def act(i):
        if i % 2:
            return money.record_gift(
                by=county_reviewer, area=areas.yanting, amount="10", reference="SAME-REF", occurred_on=yesterday()
            )
        return pledge_services.record_money_received(
            pledge_id=pledges[i // 2].pk, by=county_reviewer, amount="100", reference="SAME-REF"
        )

    results = run_together(10, act)

    others = [r for r in results if isinstance(r, Exception) and not isinstance(r, ActionRefused)]
    assert others == []
    assert len([r for r in results if not isinstance(r, Exception)]) == 1
    assert LedgerTransaction.objects.filter(reference="SAME-REF").count() == 1
    assert Pledge.objects.filter(transfer_reference="SAME-REF").count() <= 1
    check_ok()


@pytest.mark.django_db(transaction=True)
def test_the_same_entry_reversed_by_five_staff_at_once_is_reversed_once(areas, money_need_a, donor, county_reviewer):
    receive_money(money_need_a, donor, "100", reference="REV-RACE", by=county_reviewer)
    spent = money.spend(by=county_reviewer, amount="40", need_id=money_need_a.pk, **spend_kwargs())
    gift = money.record_gift(
        by=county_reviewer, area=areas.yanting, amount="10", reference="REV-RACE-2", occurred_on=yesterday()
    )

    for original in (spent, gift):
        results = run_together(
            5,
            lambda i, original=original: money.reverse_transaction(
                by=county_reviewer, transaction_id=original.pk, reason="twice"
            ),
        )
        made, refused = _split(results)
        assert (len(made), len(refused)) == (1, 4), original.kind

    assert fund_of(money_need_a).balance == D("100.00")
    assert pool_of(areas.yanting).balance == D("0.00")
    check_ok()


def test_check_ledger_notices_a_transaction_that_will_never_be_published(areas, healthy_ledger, county_reviewer):
    """Outbox rows are not append-only: a transaction whose row is lost is
    neither published nor waiting, and nothing else would ever say so."""
    lost = money.record_gift(
        by=county_reviewer, area=areas.yanting, amount="5", reference="LOST", occurred_on=yesterday()
    )
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM donations_ledgeroutbox WHERE transaction_id = %s", [lost.pk])
    assert publication.publish_pending() is None

    check = publication.run_check()

    assert not check.ok
    assert any(str(lost.pk) in problem for problem in check.problems)
