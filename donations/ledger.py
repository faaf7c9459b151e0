"""Posting to the double-entry ledger.

``post`` is the only code that writes ledger transactions. It runs inside
the caller's database transaction (the change that caused the movement), so
the movement and its cause commit together or not at all. Fund and pool
rows are locked in primary-key order (after the need and pledge rows the
services lock first), their new balances checked, and the database's
CHECK constraint refuses a negative balance even if this code were wrong.
Income, delivery and expense accounts keep no running balance: nothing must
stop a gift coming in, and a hot row there would serialise every donation.
"""

from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from households.models import Area
from sun_commune import audit
from sun_commune.errors import ActionRefused

from .models import LedgerAccount, LedgerLeg, LedgerOutbox, LedgerTransaction, Need

Kind = LedgerAccount.Kind


def _account(code: str, kind: str, **fields) -> LedgerAccount:
    account, _created = LedgerAccount.objects.get_or_create(code=code, defaults={"kind": kind, **fields})
    return account


def income_money() -> LedgerAccount:
    return _account("income:money", Kind.INCOME_MONEY)


def income_goods() -> LedgerAccount:
    return _account("income:goods", Kind.INCOME_GOODS)


def goods_delivered() -> LedgerAccount:
    return _account("goods:delivered", Kind.GOODS_DELIVERED)


def expense(category: str) -> LedgerAccount:
    return _account(f"expense:{category}", Kind.EXPENSE, category=category)


def need_fund(need: Need) -> LedgerAccount:
    return _account(f"need:{need.pk}", Kind.NEED_FUND, need=need)


def pool(area: Area) -> LedgerAccount:
    if area.level == Area.Level.VILLAGE:
        raise ActionRefused(_("A pool belongs to a township, county, city or province."))
    return _account(f"pool:{area.code}", Kind.POOL, area=area)


def fund_balance(account: LedgerAccount | None) -> Decimal:
    return account.balance if account is not None else Decimal("0.00")


def post(
    *, kind: str, legs: list[tuple[LedgerAccount, Decimal]], area: Area, by, occurred_on=None, **fields
) -> LedgerTransaction:
    """Write one balanced transaction with its legs, keep fund balances, and
    queue it for publication. Raises ActionRefused (and so rolls the caller
    back) when a fund would go below zero."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("ledger.post must run inside the transaction of the change that caused it")
    total = sum((amount for _account, amount in legs), Decimal("0"))
    if total != 0 or len(legs) < 2 or any(amount == 0 for _account, amount in legs):
        raise ValueError(f"unbalanced ledger legs: {legs!r}")
    fund_ids = sorted({account.pk for account, _amount in legs if account.kind in LedgerAccount.FUNDS})
    funds = {a.pk: a for a in LedgerAccount.objects.select_for_update().filter(pk__in=fund_ids).order_by("pk")}
    for account, amount in legs:
        if account.pk in funds:
            fund = funds[account.pk]
            if fund.balance + amount < 0:
                raise ActionRefused(
                    _("Not enough money in %(fund)s: %(balance)s yuan available.")
                    % {"fund": fund.code, "balance": fund.balance},
                    field="amount",
                )
            fund.balance += amount
    for fund in funds.values():
        fund.save(update_fields=["balance"])
    txn = LedgerTransaction.objects.create(
        kind=kind,
        amount=sum((amount for _account, amount in legs if amount > 0), Decimal("0")),
        occurred_on=occurred_on or timezone.localdate(),
        recorded_by=by if getattr(by, "pk", None) else None,
        area=area,
        **fields,
    )
    LedgerLeg.objects.bulk_create(
        LedgerLeg(transaction=txn, account=account, amount=amount) for account, amount in legs
    )
    LedgerOutbox.objects.create(transaction=txn)
    audit.record(
        actor=by,
        action=f"ledger.{kind}",
        obj=txn,
        changes={"amount": txn.amount, "legs": [[account.code, amount] for account, amount in legs]},
    )
    return txn
