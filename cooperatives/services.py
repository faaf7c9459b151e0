"""Every action that changes a cooperative, its members, shares, loans,
purchases or distributions.

Each function is one business action: atomic, locking what it changes,
writing its audit entry in the same transaction, and enqueueing mail only
after commit. Rows are locked in one order — the cooperative, then members
by id, then a loan before its installments, a distribution line before its
distribution — so that concurrent actions cannot deadlock.

Access (role and area) is checked by the views through ``access``; these
functions check the state of things, and the two that are a role's own act
(approving a distribution, granting the manager role) check the role too.
Audit entries carry ids and figures, never a member's or household's name.
"""

import calendar
import uuid
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from households import services as household_services
from households.models import Household, IncomeRecord
from sun_commune import audit
from sun_commune.errors import ActionRefused
from sun_commune.money import CENT, quantize_yuan

from . import distribution, tasks
from .access import staff_over
from .models import (
    Cooperative,
    CooperativeManager,
    Delivery,
    Distribution,
    DistributionLine,
    DistributionRules,
    LeadingEnterprise,
    Loan,
    LoanInstallment,
    Member,
    PurchaseContract,
    ShareEvent,
)

ZERO = Decimal("0")


def _exact_yuan(value, *, field: str) -> Decimal:
    """An amount the user typed, refused (not rounded) past the fen."""
    value = Decimal(value)
    if value != value.quantize(CENT):
        raise ActionRefused(_("Enter an amount in yuan with at most two decimal places."), field=field)
    return value.quantize(CENT)


def _two_places(value, *, field: str) -> Decimal:
    value = Decimal(value)
    if value != value.quantize(CENT):
        raise ActionRefused(_("Enter at most two decimal places."), field=field)
    return value.quantize(CENT)


def _not_in_future(day: date, *, field: str) -> None:
    if day > timezone.localdate():
        raise ActionRefused(_("The date cannot be in the future."), field=field)


def _year_open(cooperative_id: int, day: date, *, field: str) -> None:
    """Refuse a change dated in a year whose distribution is approved: that
    year's register and deliveries are closed (the approved distribution was
    computed from them)."""
    closed = Distribution.objects.filter(cooperative_id=cooperative_id, year=day.year).exclude(
        status=Distribution.Status.PREVIEW
    )
    if closed.exists():
        raise ActionRefused(
            _("The distribution of %(year)s is already approved; that year's register and deliveries cannot change.")
            % {"year": day.year},
            field=field,
        )


# --- Cooperatives, leading enterprises, managers, rules ------------------------------


@transaction.atomic
def create_cooperative(
    *, by, name: str, kind: str, area, mode: str = "", description: str = "", founded_on=None, enterprises=()
) -> Cooperative:
    """Register a cooperative in ``area`` (bureau staff over the area), with
    the default rules (60% by volume, no fixed returns)."""
    name = (name or "").strip()
    if by is not None and not staff_over(by, area):
        raise ActionRefused(_("You can register a cooperative only in your own area."), field="area")
    if not name:
        raise ActionRefused(_("Enter the cooperative's name."), field="name")
    if Cooperative.objects.filter(name=name).exists():
        raise ActionRefused(_("A cooperative with this name is already registered."), field="name")
    coop = Cooperative.objects.create(
        name=name, kind=kind, area=area, mode=mode, description=description, founded_on=founded_on, created_by=by
    )
    if enterprises:
        coop.leading_enterprises.set(enterprises)
    DistributionRules.objects.create(cooperative=coop, updated_by=by)
    audit.record(
        actor=by,
        action="cooperative.created",
        obj=coop,
        changes={"name": name, "kind": kind, "area": area.code, "enterprises": [e.pk for e in enterprises]},
    )
    return coop


@transaction.atomic
def add_leading_enterprise(
    *, by, cooperative_id: int, name: str, general_manager: str = "", description: str = ""
) -> LeadingEnterprise:
    """Name a leading enterprise behind the cooperative (registered once by
    name, shared by the cooperatives it leads)."""
    name = (name or "").strip()
    if not name:
        raise ActionRefused(_("Enter the enterprise's name."), field="name")
    coop = Cooperative.objects.select_for_update().get(pk=cooperative_id)
    enterprise, created = LeadingEnterprise.objects.get_or_create(
        name=name, defaults={"general_manager": general_manager, "description": description}
    )
    if coop.leading_enterprises.filter(pk=enterprise.pk).exists():
        return enterprise
    coop.leading_enterprises.add(enterprise)
    audit.record(
        actor=by,
        action="cooperative.enterprise_added",
        obj=coop,
        changes={"enterprise": enterprise.pk, "name": enterprise.name, "new": created},
    )
    return enterprise


@transaction.atomic
def grant_manager(*, by, cooperative_id: int, user) -> CooperativeManager:
    """Make ``user`` a manager of the cooperative. Only bureau staff whose
    area contains the cooperative's may (``by=None``: a management command).
    Granting an active grant again changes nothing."""
    coop = Cooperative.objects.select_related("area").get(pk=cooperative_id)
    if by is not None and not staff_over(by, coop.area):
        raise ActionRefused(_("Only bureau staff over the cooperative's area can appoint its managers."))
    grant = CooperativeManager.objects.select_for_update().filter(user=user, cooperative=coop).first()
    if grant and grant.active:
        return grant
    grant = grant or CooperativeManager(user=user, cooperative=coop)
    grant.active = True
    grant.granted_by = by
    grant.save()
    audit.record(
        actor=by, action="cooperative.manager_granted", obj=grant, changes={"user": user.pk, "cooperative": coop.pk}
    )
    return grant


@transaction.atomic
def withdraw_manager(*, by, grant_id: int) -> CooperativeManager:
    grant = CooperativeManager.objects.select_for_update().select_related("cooperative__area").get(pk=grant_id)
    if by is not None and not staff_over(by, grant.cooperative.area):
        raise ActionRefused(_("Only bureau staff over the cooperative's area can appoint its managers."))
    if not grant.active:
        return grant
    grant.active = False
    grant.save(update_fields=["active"])
    audit.record(actor=by, action="cooperative.manager_withdrawn", obj=grant, changes={"active": [True, False]})
    return grant


def law_message() -> str:
    return _(
        "The Law on Farmers' Professional Cooperatives requires at least %(share)s%% of the distributable "
        "surplus to be returned by transaction volume."
    ) % {"share": distribution.MINIMUM_VOLUME_SHARE}


RULE_FIELDS = (
    "volume_share_percent",
    "loan_fixed_rate_percent",
    "subsidy_fixed_rate_percent",
    "land_value_per_mu",
    "labour_value_per_day",
)


def check_rules(values: dict) -> None:
    """Refuse rules the law or arithmetic does not allow, naming the field."""
    share = Decimal(values["volume_share_percent"])
    if share < distribution.MINIMUM_VOLUME_SHARE:
        raise ActionRefused(law_message(), field="volume_share_percent")
    if share > 100:
        raise ActionRefused(_("A share cannot be more than 100%."), field="volume_share_percent")
    for name in ("loan_fixed_rate_percent", "subsidy_fixed_rate_percent"):
        if not 0 <= Decimal(values[name]) <= 100:
            raise ActionRefused(_("Enter a rate between 0% and 100%."), field=name)
    for name in ("land_value_per_mu", "labour_value_per_day"):
        if Decimal(values[name]) < 0:
            raise ActionRefused(_("Enter an amount of zero or more."), field=name)
        _exact_yuan(values[name], field=name)


@transaction.atomic
def set_rules(*, by, cooperative_id: int, **values) -> DistributionRules:
    """Change the cooperative's distribution rules; the audit entry keeps the
    old and new value of each rule. Distributions already computed keep the
    rules they were computed with."""
    values = {k: Decimal(v) for k, v in values.items() if k in RULE_FIELDS}
    current = DistributionRules.objects.select_for_update().filter(cooperative_id=cooperative_id).first()
    if current is None:
        current = DistributionRules.objects.create(cooperative_id=cooperative_id)
    check_rules({**{k: getattr(current, k) for k in RULE_FIELDS}, **values})
    changes = {}
    for key, value in values.items():
        if getattr(current, key) != value:
            changes[key] = [getattr(current, key), value]
            setattr(current, key, value)
    if not changes:
        return current
    current.updated_by = by
    current.save()
    audit.record(actor=by, action="cooperative.rules_changed", obj=current, changes=changes)
    return current


# --- Members and the share register ---------------------------------------------------


def holdings(member_id: int, *, as_of: date | None = None) -> dict[str, Decimal]:
    """What a member holds (yuan, mu, days by holding), summed from the register."""
    events = ShareEvent.objects.filter(member_id=member_id)
    if as_of is not None:
        events = events.filter(occurred_on__lte=as_of)
    totals = dict(events.values_list("holding").annotate(total=Sum("quantity")).order_by())
    return {h: totals.get(h, ZERO) for h in ShareEvent.Holding.values}


def _lock_member(member_id: int) -> Member:
    return Member.objects.select_for_update().select_related("cooperative").get(pk=member_id)


def _event(member: Member, *, by, kind, holding, quantity, occurred_on, **extra) -> ShareEvent:
    return ShareEvent.objects.create(
        cooperative_id=member.cooperative_id,
        member=member,
        kind=kind,
        holding=holding,
        quantity=quantity,
        occurred_on=occurred_on,
        recorded_by=by if getattr(by, "pk", None) else None,
        **extra,
    )


def _check_quantity(quantity, *, field: str = "quantity") -> Decimal:
    quantity = Decimal(quantity)
    if quantity <= 0:
        raise ActionRefused(_("Enter a quantity above zero."), field=field)
    return _two_places(quantity, field=field)


@transaction.atomic
def add_member(
    *,
    by,
    cooperative_id: int,
    kind: str,
    joined_on: date,
    household: Household | None = None,
    name: str = "",
    own_capital=ZERO,
    subsidy_capital=ZERO,
    land_mu=ZERO,
    yearly_rent=None,
    labour_days=ZERO,
    service_fees=None,
    note: str = "",
) -> Member:
    """Enter a member in the register with what they put in on joining (a
    "join" event for each holding). Loan capital comes in with
    :func:`create_loan`. Locks the cooperative: member numbers go in order."""
    coop = Cooperative.objects.select_for_update().get(pk=cooperative_id)
    _not_in_future(joined_on, field="joined_on")
    _year_open(coop.pk, joined_on, field="joined_on")
    name = (name or "").strip()
    if kind == Member.Kind.HOUSEHOLD:
        if household is None:
            raise ActionRefused(_("Choose the registered household."), field="household")
        if Member.objects.filter(cooperative=coop, household=household).exists():
            raise ActionRefused(_("This household is already on the cooperative's register."), field="household")
        name = ""
    else:
        household = None
        if not name:
            raise ActionRefused(_("Enter the member's name."), field="name")
        if Decimal(subsidy_capital or 0) > 0:
            raise ActionRefused(
                _("Government subsidy is quantified to registered poor households only."), field="subsidy_capital"
            )
    last = Member.objects.filter(cooperative=coop).order_by("-number").values_list("number", flat=True).first()
    member = Member.objects.create(
        cooperative=coop, number=(last or 0) + 1, kind=kind, household=household, name=name, joined_on=joined_on
    )
    put_in = {}
    for holding, amount, field, extra in (
        (ShareEvent.Holding.OWN, own_capital, "own_capital", {}),
        (ShareEvent.Holding.SUBSIDY, subsidy_capital, "subsidy_capital", {}),
        (ShareEvent.Holding.LAND, land_mu, "land_mu", {"yearly_rent": yearly_rent}),
        (ShareEvent.Holding.LABOUR, labour_days, "labour_days", {"service_fees": service_fees}),
    ):
        amount = Decimal(amount or 0)
        if amount < 0:
            raise ActionRefused(_("Enter zero or more."), field=field)
        if amount == 0:
            continue
        amount = _exact_yuan(amount, field=field) if holding in ShareEvent.CAPITAL else _two_places(amount, field=field)
        extra = {k: _exact_yuan(v, field=k) for k, v in extra.items() if v is not None}
        _event(
            member,
            by=by,
            kind=ShareEvent.Kind.JOIN,
            holding=holding,
            quantity=amount,
            occurred_on=joined_on,
            note=note,
            **extra,
        )
        put_in[holding] = amount
    audit.record(
        actor=by,
        action="cooperative.member_joined",
        obj=member,
        changes={
            "cooperative": coop.pk,
            "number": member.number,
            "kind": kind,
            "household": household.public_id if household else None,
            "put_in": put_in,
        },
    )
    return member


@transaction.atomic
def increase_shares(
    *,
    by,
    member_id: int,
    holding: str,
    quantity,
    occurred_on: date,
    yearly_rent=None,
    service_fees=None,
    note: str = "",
) -> ShareEvent:
    """Add to a member's own capital, subsidy capital, land or labour (loan
    capital comes in with :func:`create_loan`)."""
    member = _lock_member(member_id)
    if not member.is_active:
        raise ActionRefused(_("This member has left the cooperative."))
    if holding == ShareEvent.Holding.LOAN:
        raise ActionRefused(_("Loan capital is entered with the loan itself."), field="holding")
    if holding == ShareEvent.Holding.SUBSIDY and not member.is_poor:
        raise ActionRefused(_("Government subsidy is quantified to registered poor households only."), field="holding")
    quantity = _check_quantity(quantity)
    _not_in_future(occurred_on, field="occurred_on")
    if occurred_on < member.joined_on:
        raise ActionRefused(_("The date is before the member joined."), field="occurred_on")
    _year_open(member.cooperative_id, occurred_on, field="occurred_on")
    extra = {}
    if holding == ShareEvent.Holding.LAND and yearly_rent is not None:
        extra["yearly_rent"] = _exact_yuan(yearly_rent, field="yearly_rent")
    if holding == ShareEvent.Holding.LABOUR and service_fees is not None:
        extra["service_fees"] = _exact_yuan(service_fees, field="service_fees")
    event = _event(
        member,
        by=by,
        kind=ShareEvent.Kind.INCREASE,
        holding=holding,
        quantity=quantity,
        occurred_on=occurred_on,
        note=note,
        **extra,
    )
    audit.record(
        actor=by,
        action="cooperative.shares_increased",
        obj=member,
        changes={"event": event.pk, "holding": holding, "quantity": quantity, **extra},
    )
    return event


@transaction.atomic
def transfer_shares(
    *, by, from_member_id: int, to_member_id: int, holding: str, quantity, occurred_on: date, note: str = ""
) -> tuple[ShareEvent, ShareEvent]:
    """Move own capital or land from one member to another of the same
    cooperative: two events, out and in, sharing one transfer key. Both
    members are locked, the lower id first."""
    if from_member_id == to_member_id:
        raise ActionRefused(_("Choose another member to transfer to."), field="to_member")
    locked = {
        m.pk: m for m in Member.objects.select_for_update().filter(pk__in=[from_member_id, to_member_id]).order_by("pk")
    }
    giver, taker = locked[from_member_id], locked[to_member_id]
    if giver.cooperative_id != taker.cooperative_id:
        raise ActionRefused(_("Shares move only between members of the same cooperative."), field="to_member")
    if not taker.is_active or not giver.is_active:
        raise ActionRefused(_("Both members must still belong to the cooperative."), field="to_member")
    if holding not in ShareEvent.TRANSFERABLE:
        raise ActionRefused(
            _("Only own capital and land can be transferred; loan and subsidy shares belong to the household."),
            field="holding",
        )
    quantity = _check_quantity(quantity)
    _not_in_future(occurred_on, field="occurred_on")
    if occurred_on < max(giver.joined_on, taker.joined_on):
        raise ActionRefused(_("The date is before the member joined."), field="occurred_on")
    _year_open(giver.cooperative_id, occurred_on, field="occurred_on")
    # Held on the day and still held now: a back-dated transfer cannot take
    # what came in only later, nor what has gone out since.
    available = min(holdings(giver.pk, as_of=occurred_on)[holding], holdings(giver.pk)[holding])
    if quantity > available:
        raise ActionRefused(
            _("The member holds only %(available)s of this.") % {"available": available}, field="quantity"
        )
    key = uuid.uuid4().hex
    out = _event(
        giver,
        by=by,
        kind=ShareEvent.Kind.TRANSFER_OUT,
        holding=holding,
        quantity=-quantity,
        occurred_on=occurred_on,
        transfer_key=key,
        note=note,
    )
    into = _event(
        taker,
        by=by,
        kind=ShareEvent.Kind.TRANSFER_IN,
        holding=holding,
        quantity=quantity,
        occurred_on=occurred_on,
        transfer_key=key,
        note=note,
    )
    audit.record(
        actor=by,
        action="cooperative.shares_transferred",
        obj=giver,
        changes={"to_member": taker.pk, "holding": holding, "quantity": quantity, "events": [out.pk, into.pk]},
    )
    return out, into


@transaction.atomic
def exit_member(*, by, member_id: int, occurred_on: date, note: str = "") -> Member:
    """A member leaves: one "exit" event per holding brings each to zero (loan
    capital loan by loan); the history stays. Leaving twice changes nothing."""
    member = _lock_member(member_id)
    if not member.is_active:
        return member
    _not_in_future(occurred_on, field="occurred_on")
    last = (
        ShareEvent.objects.filter(member=member).order_by("-occurred_on").values_list("occurred_on", flat=True).first()
    )
    if occurred_on < max(member.joined_on, last or member.joined_on):
        raise ActionRefused(
            _("The date is before the member joined or before a later change in the register."), field="occurred_on"
        )
    _year_open(member.cooperative_id, occurred_on, field="occurred_on")
    rows = (
        ShareEvent.objects.filter(member=member)
        .values_list("holding", "loan_id")
        .annotate(total=Sum("quantity"))
        .order_by("holding", "loan_id")
    )
    taken_out = {}
    for holding, loan_id, total in rows:
        if total > 0:
            _event(
                member,
                by=by,
                kind=ShareEvent.Kind.EXIT,
                holding=holding,
                quantity=-total,
                occurred_on=occurred_on,
                loan_id=loan_id,
                note=note,
            )
            taken_out[holding] = taken_out.get(holding, ZERO) + total
    member.exited_on = occurred_on
    member.save(update_fields=["exited_on"])
    audit.record(
        actor=by,
        action="cooperative.member_exited",
        obj=member,
        changes={"exited_on": occurred_on, "taken_out": taken_out},
    )
    return member


# --- Poverty-alleviation loans ----------------------------------------------------------


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
    transaction.on_commit(lambda: tasks.notify_installment.delay(installment_id=installment_id, overdue=False))
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
    transaction.on_commit(lambda: tasks.notify_installment.delay(installment_id=installment_id, overdue=True))
    return True


# --- Order purchases and deliveries ---------------------------------------------------


@transaction.atomic
def create_contract(
    *,
    by,
    member_id: int,
    product: str,
    unit: str,
    agreed_price,
    guaranteed_price,
    quantity,
    season: str,
    year: int,
    signed_on: date,
) -> PurchaseContract:
    """Sign an order-purchase contract with a member: the agreed price, and a
    guaranteed minimum price no delivery will ever be paid below."""
    member = _lock_member(member_id)
    if not member.is_active:
        raise ActionRefused(_("This member has left the cooperative."))
    guaranteed = _exact_yuan(guaranteed_price, field="guaranteed_price")
    agreed = _exact_yuan(agreed_price, field="agreed_price")
    if guaranteed <= 0:
        raise ActionRefused(_("Enter a guaranteed price above zero."), field="guaranteed_price")
    if agreed < guaranteed:
        raise ActionRefused(_("The agreed price cannot be below the guaranteed minimum price."), field="agreed_price")
    quantity = _check_quantity(quantity)
    if not (product or "").strip():
        raise ActionRefused(_("Name the product."), field="product")
    contract = PurchaseContract.objects.create(
        cooperative_id=member.cooperative_id,
        member=member,
        product=product.strip(),
        unit=(unit or "kg").strip(),
        agreed_price=agreed,
        guaranteed_price=guaranteed,
        quantity=quantity,
        season=season.strip(),
        year=year,
        signed_on=signed_on,
        created_by=by if getattr(by, "pk", None) else None,
    )
    audit.record(
        actor=by,
        action="cooperative.contract_signed",
        obj=contract,
        changes={
            "member": member.pk,
            "product": contract.product,
            "agreed_price": agreed,
            "guaranteed_price": guaranteed,
            "quantity": quantity,
            "year": year,
        },
    )
    return contract


@transaction.atomic
def record_delivery(
    *, by, contract_id: int, delivered_on: date, quantity, grade: str, market_price, price_paid
) -> Delivery:
    """Record produce a member delivered under a contract and the price paid
    — never below the contract's guaranteed price. What was paid above the
    market price goes into a poor household's income for the year (once: the
    income record's origin names the delivery)."""
    contract = PurchaseContract.objects.select_related("member__cooperative").get(pk=contract_id)
    member = _lock_member(contract.member_id)
    quantity = _check_quantity(quantity)
    market = _exact_yuan(market_price, field="market_price")
    paid = _exact_yuan(price_paid, field="price_paid")
    if market < 0:
        raise ActionRefused(_("Enter zero or more."), field="market_price")
    if paid < contract.guaranteed_price:
        raise ActionRefused(
            _("The price paid cannot be below the contract's guaranteed minimum price of %(price)s yuan.")
            % {"price": contract.guaranteed_price},
            field="price_paid",
        )
    _not_in_future(delivered_on, field="delivered_on")
    if delivered_on < member.joined_on:
        raise ActionRefused(_("The date is before the member joined."), field="delivered_on")
    _year_open(contract.cooperative_id, delivered_on, field="delivered_on")
    extra = quantize_yuan(max(ZERO, paid - market) * quantity)
    delivery = Delivery.objects.create(
        contract=contract,
        cooperative_id=contract.cooperative_id,
        member=member,
        delivered_on=delivered_on,
        year=delivered_on.year,
        product=contract.product,
        quantity=quantity,
        grade=grade,
        market_price=market,
        price_paid=paid,
        guaranteed_price=contract.guaranteed_price,
        amount=quantize_yuan(quantity * paid),
        extra_above_market=extra,
        recorded_by=by if getattr(by, "pk", None) else None,
    )
    audit.record(
        actor=by,
        action="cooperative.delivery_recorded",
        obj=delivery,
        changes={
            "member": member.pk,
            "quantity": quantity,
            "price_paid": paid,
            "market_price": market,
            "amount": delivery.amount,
            "extra_above_market": extra,
        },
    )
    if extra > 0 and member.household_id:
        household_services.record_income(
            by=by,
            household_id=member.household_id,
            year=delivery.year,
            source=IncomeRecord.Source.REBATE,
            amount=extra,
            note=f"{member.cooperative.name} · {delivery.product} · {delivered_on.isoformat()}",
            origin=f"coop-delivery-{delivery.pk}-extra",
        )
    return delivery


# --- The year's distribution ------------------------------------------------------


def rules_of(coop: Cooperative) -> distribution.Rules:
    rules = DistributionRules.objects.filter(cooperative=coop).first() or DistributionRules(cooperative=coop)
    return distribution.Rules(**{name: getattr(rules, name) for name in RULE_FIELDS})


def distribution_inputs(coop: Cooperative, year: int) -> tuple[list[distribution.MemberInput], dict[int, Decimal]]:
    """Each member of the year: holdings at the year's end, transactions
    during it; and what each was paid above the market price. Three grouped
    queries, whatever the number of members.

    Members are identified by id. Within a cooperative, ids and member
    numbers rise together (both are given in order under the cooperative's
    row lock), so the tie rule's "lower member id" is the statements' "lower
    member number"."""
    year_end = date(year, 12, 31)
    members = list(
        Member.objects.filter(cooperative=coop, joined_on__lte=year_end)
        .exclude(exited_on__lt=date(year, 1, 1))
        .order_by("id")
        .values_list("id", "household_id")
    )
    held: dict[int, dict[str, Decimal]] = {}
    for member_id, holding, total in (
        ShareEvent.objects.filter(cooperative=coop, occurred_on__lte=year_end)
        .values_list("member_id", "holding")
        .annotate(total=Sum("quantity"))
        .order_by()
    ):
        held.setdefault(member_id, {})[holding] = total
    traded = {
        member_id: (amount, extra)
        for member_id, amount, extra in Delivery.objects.filter(cooperative=coop, year=year)
        .values_list("member_id")
        .annotate(amount=Sum("amount"), extra=Sum("extra_above_market"))
        .order_by()
    }
    inputs = []
    for member_id, household_id in members:
        h = held.get(member_id, {})
        inputs.append(
            distribution.MemberInput(
                member_id=member_id,
                poor=household_id is not None,
                transactions=traded.get(member_id, (ZERO, ZERO))[0],
                own_capital=h.get("own", ZERO),
                loan_capital=h.get("loan", ZERO),
                subsidy_capital=h.get("subsidy", ZERO),
                land_mu=h.get("land", ZERO),
                labour_days=h.get("labour", ZERO),
            )
        )
    return inputs, {member_id: extra for member_id, (_amount, extra) in traded.items()}


def refusal_message(error: distribution.DistributionRefused) -> str:
    """The translated message for a refusal of the distribution arithmetic."""
    p = error.params
    code = error.code
    if code == "volume_share_too_low":
        return law_message()
    if code == "volume_share_too_high":
        return _("A share cannot be more than 100%.")
    if code == "negative_surplus":
        return _("Enter a surplus of zero or more.")
    if code == "not_fen":
        return _("Enter an amount in yuan with at most two decimal places.")
    if code == "fixed_returns_exceed_surplus":
        return _(
            "The surplus cannot pay the fixed returns guaranteed to poor households (%(fixed)s yuan) after "
            "the part returned by transaction volume (%(volume)s yuan). Enter the full distributable surplus, "
            "or change the rules."
        ) % {"fixed": p["fixed"], "volume": p["volume"]}
    if code == "no_transactions":
        return _(
            "No delivery is recorded for this year, so nothing can be returned by transaction volume. "
            "Record the year's deliveries first."
        )
    if code == "no_capital":
        return _(
            "No member holds capital, land or labour, so %(left)s yuan cannot be shared by capital. "
            "Return 100%% by transaction volume, or record the members' shares."
        ) % {"left": p["left"]}
    return _("The distribution cannot be computed with these figures.")


def _lines_from(result: distribution.Result, distribution: Distribution, poor: dict[int, bool], extras: dict) -> list:
    return [
        DistributionLine(
            distribution=distribution,
            member_id=line.member_id,
            is_poor=poor[line.member_id],
            transactions=Decimal(line.basis["transactions"]),
            capital_weight=Decimal(line.capital.weight) / 10_000,
            fixed_return=line.yuan("fixed"),
            volume_return=line.yuan("volume"),
            capital_return=line.yuan("capital"),
            total=line.yuan("total"),
            extra_above_market=quantize_yuan(extras.get(line.member_id, ZERO)),
            basis=line.basis,
            payment_reference=f"COOP-{distribution.pk}-{line.member_id}",
        )
        for line in result.lines
    ]


@transaction.atomic
def compute_distribution(*, by, cooperative_id: int, year: int, surplus) -> Distribution:
    """Compute (or compute again) the preview of a year's distribution from
    the cooperative's current rules, the register at the year's end and the
    year's deliveries. The rules and inputs are kept on the row as JSON, so
    the result can be reproduced. An approved distribution is never
    recomputed."""
    coop = Cooperative.objects.select_for_update().get(pk=cooperative_id)
    if not 2000 <= year <= timezone.localdate().year:
        raise ActionRefused(_("Choose a year that has begun."), field="year")
    surplus = _exact_yuan(surplus, field="surplus")
    if surplus < 0:
        raise ActionRefused(_("Enter a surplus of zero or more."), field="surplus")
    existing = Distribution.objects.select_for_update().filter(cooperative=coop, year=year).first()
    if existing and existing.status != Distribution.Status.PREVIEW:
        raise ActionRefused(_("The distribution of this year is already approved."), field="year")
    rules = rules_of(coop)
    inputs, extras = distribution_inputs(coop, year)
    try:
        result = distribution.compute(surplus=surplus, rules=rules, members=inputs)
    except distribution.DistributionRefused as error:
        raise ActionRefused(refusal_message(error), field=error.field) from None
    poor = {m.member_id: m.poor for m in inputs}
    fields = {
        "surplus": surplus,
        "status": Distribution.Status.PREVIEW,
        "algorithm": distribution.ALGORITHM,
        "rules": rules.to_json(),
        "inputs": [m.to_json() for m in inputs],
        "volume_total": distribution.fen_to_yuan(result.volume_part),
        "fixed_total": distribution.fen_to_yuan(result.fixed_part),
        "capital_total": distribution.fen_to_yuan(result.capital_part),
        "transactions_total": distribution.fen_to_yuan(result.volume_weight_total),
        "capital_weight_total": Decimal(result.capital_weight_total) / 10_000,
        "member_count": len(inputs),
        "poor_member_count": sum(1 for m in inputs if m.poor),
        "poor_received_total": distribution.fen_to_yuan(
            sum(line.total for line in result.lines if poor[line.member_id])
        ),
        "unpaid_count": sum(1 for line in result.lines if line.total > 0),
        "computed_at": timezone.now(),
        "computed_by": by if getattr(by, "pk", None) else None,
    }
    if existing:
        existing.lines.all().delete()
        for key, value in fields.items():
            setattr(existing, key, value)
        existing.save()
        dist = existing
    else:
        dist = Distribution.objects.create(cooperative=coop, year=year, **fields)
    DistributionLine.objects.bulk_create(_lines_from(result, dist, poor, extras), batch_size=2000)
    audit.record(
        actor=by,
        action="cooperative.distribution_computed",
        obj=dist,
        changes={
            "year": year,
            "surplus": surplus,
            "volume": dist.volume_total,
            "fixed": dist.fixed_total,
            "capital": dist.capital_total,
            "members": dist.member_count,
            "rules": dist.rules,
        },
    )
    return dist


def recompute(dist: Distribution) -> distribution.Result:
    """The stored inputs computed again (to check a distribution)."""
    return distribution.compute(
        surplus=dist.surplus,
        rules=distribution.Rules.from_json(dist.rules),
        members=[distribution.MemberInput.from_json(m) for m in dist.inputs],
    )


@transaction.atomic
def approve_distribution(*, by, distribution_id: int) -> Distribution:
    """Bureau staff over the cooperative's area approve a preview; from now on
    it is fixed and its lines can be paid. Approving twice changes nothing."""
    dist = Distribution.objects.select_for_update().select_related("cooperative__area").get(pk=distribution_id)
    if not staff_over(by, dist.cooperative.area):
        raise ActionRefused(_("Only bureau staff over the cooperative's area can approve its distribution."))
    if dist.status != Distribution.Status.PREVIEW:
        return dist
    dist.status = Distribution.Status.APPROVED
    dist.approved_at = timezone.now()
    dist.approved_by = by
    fields = ["status", "approved_at", "approved_by"]
    if dist.unpaid_count == 0:
        dist.status = Distribution.Status.PAID
        dist.paid_at = dist.approved_at
        fields.append("paid_at")
    dist.save(update_fields=fields)
    audit.record(
        actor=by, action="cooperative.distribution_approved", obj=dist, changes={"status": ["preview", dist.status]}
    )
    return dist


@transaction.atomic
def record_payment(*, by, line_id: int, note: str = "") -> DistributionLine:
    """Record that a member was paid their line of an approved distribution,
    and add it to the household's income for the year: the fixed return and
    the dividend on capital as a dividend, the volume return as a rebate.

    The line is locked and checked first: recording it twice (a double click,
    a task run twice) returns the line as it is. The income records carry
    origin keys built from the line's unique payment reference, so they are
    written once too. Locks the line, then its distribution.
    """
    line = (
        DistributionLine.objects.select_for_update()
        .select_related("member", "distribution__cooperative")
        .defer("distribution__inputs")
        .get(pk=line_id)
    )
    dist = line.distribution
    if line.paid_at:
        return line
    if dist.status == Distribution.Status.PREVIEW:
        raise ActionRefused(_("The distribution must be approved by the bureau before anything is paid."))
    if line.total <= 0:
        raise ActionRefused(_("Nothing is due on this line."))
    line.paid_at = timezone.now()
    line.paid_by = by if getattr(by, "pk", None) else None
    line.payment_note = (note or "").strip()[:64]
    line.save(update_fields=["paid_at", "paid_by", "payment_note"])
    if line.member.household_id:
        label = f"{dist.cooperative.name} · {dist.year}"
        for source, amount, suffix in (
            (IncomeRecord.Source.DIVIDEND, line.dividend, "dividend"),
            (IncomeRecord.Source.REBATE, line.volume_return, "rebate"),
        ):
            if amount > 0:
                household_services.record_income(
                    by=by,
                    household_id=line.member.household_id,
                    year=dist.year,
                    source=source,
                    amount=amount,
                    note=label,
                    origin=f"{line.payment_reference}-{suffix}".lower(),
                )
    audit.record(
        actor=by,
        action="cooperative.dividend_paid",
        obj=line,
        changes={"reference": line.payment_reference, "total": line.total, "note": line.payment_note},
    )
    Distribution.objects.filter(pk=dist.pk).update(unpaid_count=F("unpaid_count") - 1)
    dist = Distribution.objects.select_for_update().get(pk=dist.pk)
    if dist.unpaid_count == 0 and dist.status == Distribution.Status.APPROVED:
        dist.status = Distribution.Status.PAID
        dist.paid_at = timezone.now()
        dist.save(update_fields=["status", "paid_at"])
        audit.record(
            actor=by, action="cooperative.distribution_paid", obj=dist, changes={"status": ["approved", "paid"]}
        )
    return line


def record_all_payments(*, by, distribution_id: int, note: str = "") -> int:
    """Record every unpaid line of an approved distribution, each in its own
    transaction (a run that dies half-way is finished by the next; lines
    already paid are skipped). Returns how many were recorded now."""
    dist = Distribution.objects.get(pk=distribution_id)
    if dist.status == Distribution.Status.PREVIEW:
        raise ActionRefused(_("The distribution must be approved by the bureau before anything is paid."))
    count = 0
    unpaid = DistributionLine.objects.filter(distribution_id=distribution_id, paid_at__isnull=True, total__gt=0)
    for line_id in list(unpaid.order_by("id").values_list("id", flat=True)):
        record_payment(by=by, line_id=line_id, note=note)
        count += 1
    return count
