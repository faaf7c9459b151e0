"""Poverty-alleviation loans: the repayment schedule, the loan capital it
brings into the register, installments repaid, reminded of and flagged
overdue. A loan is locked before its installments.
"""

import calendar
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from sun_commune import audit, outbox
from sun_commune.errors import ActionRefused
from sun_commune.money import quantize_yuan

from .. import tasks
from ..models import (
    Loan,
    LoanInstallment,
    ShareEvent,
)
from .register import _event, _exact_yuan, _lock_member, _not_in_future, _year_open


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def loan_schedule(
    *, principal: Decimal, annual_rate_percent: Decimal, term_months: int, period_months: int, started_on: date
) -> list[tuple[int, date, Decimal, Decimal]]:
    """(number, due date, principal, interest) of each installment: equal
    principal each period — the fen that do not divide evenly go to the
    first installments — and interest on the balance outstanding during the
    period (balance × rate × months / 12, half up to the fen)."""
    period = term_months if period_months == 0 else period_months
    if period <= 0 or term_months % period:
        raise ActionRefused(_("The term must be a whole number of repayment periods."), field="period_months")
    count = term_months // period
    principal_fen = int(quantize_yuan(principal) * 100)
    base, odd = divmod(principal_fen, count)
    balance = principal_fen
    rate = Decimal(annual_rate_percent)
    rows = []
    for number in range(1, count + 1):
        part = base + (1 if number <= odd else 0)
        interest = (Decimal(balance) * rate * period / 1200).quantize(Decimal("1"), rounding=ROUND_HALF_UP)
        rows.append((number, add_months(started_on, number * period), Decimal(part) / 100, interest / 100))
        balance -= part
    return [(n, d, quantize_yuan(p), quantize_yuan(i)) for n, d, p, i in rows]


@transaction.atomic
def create_loan(
    *,
    by,
    member_id: int,
    lender: str,
    principal,
    annual_rate_percent,
    term_months: int,
    period_months: int,
    started_on: date,
    note: str = "",
) -> Loan:
    """Record a member's poverty-alleviation loan, its repayment schedule,
    and the loan capital it puts into the cooperative (a share event)."""
    member = _lock_member(member_id)
    if not member.is_active:
        raise ActionRefused(_("This member has left the cooperative."))
    lender = (lender or "").strip()
    if not lender:
        raise ActionRefused(_("Name the lender."), field="lender")
    principal = _exact_yuan(principal, field="principal")
    if principal <= 0:
        raise ActionRefused(_("Enter an amount of at least 0.01 yuan."), field="principal")
    rate = Decimal(annual_rate_percent)
    if not 0 <= rate <= 100:
        raise ActionRefused(_("Enter a rate between 0% and 100%."), field="annual_rate_percent")
    if not term_months or term_months <= 0:
        raise ActionRefused(_("Enter the term in months."), field="term_months")
    if started_on < member.joined_on:
        raise ActionRefused(_("The date is before the member joined."), field="started_on")
    _not_in_future(started_on, field="started_on")
    _year_open(member.cooperative_id, started_on, field="started_on")
    schedule = loan_schedule(
        principal=principal,
        annual_rate_percent=rate,
        term_months=term_months,
        period_months=period_months,
        started_on=started_on,
    )
    loan = Loan.objects.create(
        cooperative_id=member.cooperative_id,
        member=member,
        lender=lender,
        principal=principal,
        annual_rate_percent=rate,
        term_months=term_months,
        period_months=period_months,
        started_on=started_on,
        created_by=by if getattr(by, "pk", None) else None,
    )
    LoanInstallment.objects.bulk_create(
        LoanInstallment(loan=loan, number=n, due_on=d, principal=p, interest=i) for n, d, p, i in schedule
    )
    first = not ShareEvent.objects.filter(member=member).exists()
    _event(
        member,
        by=by,
        kind=ShareEvent.Kind.JOIN if first else ShareEvent.Kind.INCREASE,
        holding=ShareEvent.Holding.LOAN,
        quantity=principal,
        occurred_on=started_on,
        loan=loan,
        note=note,
    )
    audit.record(
        actor=by,
        action="cooperative.loan_created",
        obj=loan,
        changes={
            "member": member.pk,
            "lender": lender,
            "principal": principal,
            "rate": rate,
            "term_months": term_months,
            "installments": len(schedule),
        },
    )
    return loan


def _settle_loan_status(loan: Loan, today: date) -> list[str]:
    open_installments = loan.installments.filter(paid_on__isnull=True)
    if not open_installments.exists():
        new = Loan.Status.REPAID
    elif open_installments.filter(due_on__lt=today).exists():
        new = Loan.Status.OVERDUE
    else:
        new = Loan.Status.ACTIVE
    if new != loan.status:
        loan.status = new
        return ["status"]
    return []


@transaction.atomic
def record_installment_paid(*, by, installment_id: int, paid_on: date) -> LoanInstallment:
    """Record that an installment was repaid; the loan becomes repaid with its
    last one. Recording it again changes nothing."""
    loan_id = LoanInstallment.objects.values_list("loan_id", flat=True).get(pk=installment_id)
    loan = Loan.objects.select_for_update().get(pk=loan_id)
    installment = LoanInstallment.objects.select_for_update().get(pk=installment_id)
    if installment.paid_on:
        return installment
    _not_in_future(paid_on, field="paid_on")
    installment.paid_on = paid_on
    installment.paid_by = by if getattr(by, "pk", None) else None
    installment.save(update_fields=["paid_on", "paid_by"])
    old = loan.status
    changed = _settle_loan_status(loan, timezone.localdate())
    if changed:
        loan.save(update_fields=changed)
    audit.record(
        actor=by,
        action="cooperative.installment_paid",
        obj=loan,
        changes={
            "installment": installment.number,
            "paid_on": paid_on,
            "amount": installment.amount,
            "status": [old, loan.status],
        },
    )
    return installment


@transaction.atomic
def remind_installment(*, installment_id: int) -> bool:
    """Mark an installment as reminded and mail the cooperative's managers
    after commit — once: the conditional update lets only the first caller
    through, however many beat runs or workers race."""
    marked = LoanInstallment.objects.filter(pk=installment_id, reminded_at__isnull=True, paid_on__isnull=True).update(
        reminded_at=timezone.now()
    )
    if not marked:
        return False
    installment = LoanInstallment.objects.select_related("loan").get(pk=installment_id)
    audit.record(
        actor=None,
        action="cooperative.installment_reminded",
        obj=installment.loan,
        changes={"installment": installment.number, "due_on": installment.due_on},
    )
    outbox.enqueue(tasks.notify_installment, installment_id=installment_id, overdue=False)
    return True


@transaction.atomic
def flag_overdue(*, installment_id: int) -> bool:
    """Flag an unpaid installment past its due date (and its loan as overdue),
    and mail the managers after commit — once, like the reminder."""
    today = timezone.localdate()
    marked = LoanInstallment.objects.filter(
        pk=installment_id, flagged_at__isnull=True, paid_on__isnull=True, due_on__lt=today
    ).update(flagged_at=timezone.now())
    if not marked:
        return False
    loan_id = LoanInstallment.objects.values_list("loan_id", flat=True).get(pk=installment_id)
    loan = Loan.objects.select_for_update().get(pk=loan_id)
    installment = LoanInstallment.objects.get(pk=installment_id)
    old = loan.status
    changed = _settle_loan_status(loan, today)
    if changed:
        loan.save(update_fields=changed)
    audit.record(
        actor=None,
        action="cooperative.installment_overdue",
        obj=loan,
        changes={"installment": installment.number, "due_on": installment.due_on, "status": [old, loan.status]},
    )
    outbox.enqueue(tasks.notify_installment, installment_id=installment_id, overdue=True)
    return True
