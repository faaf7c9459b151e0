"""Members and the share register: joining, shares increased, transferred
between members, and leaving; what a member holds; and the checks of what
the register's users type, which the loans, purchases and distributions
share.

Members are locked by id (the lower first when two are); a year whose
distribution is approved is closed to the register and its deliveries.
"""

import uuid
from datetime import date
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from households.models import Household
from sun_commune import audit
from sun_commune.errors import ActionRefused
from sun_commune.money import CENT

from .. import tasks
from ..models import (
    Cooperative,
    Distribution,
    Member,
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


def holdings(member_id: int, *, as_of: date | None = None) -> dict[str, Decimal]:
    """What a member holds (yuan, mu, days by holding), summed from the register."""
    events = ShareEvent.objects.filter(member_id=member_id)
    if as_of is not None:
        events = events.filter(occurred_on__lte=as_of)
    totals = dict(events.values_list("holding").annotate(total=Sum("quantity")).order_by())
    return {h: totals.get(h, ZERO) for h in ShareEvent.Holding.values}


def _lock_member(member_id: int) -> Member:
    """The member locked for a change in the register (shares, loans,
    contracts, deliveries): refused while its village has not confirmed it."""
    member = Member.objects.select_for_update().select_related("cooperative").get(pk=member_id)
    require_confirmed(member)
    return member


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
        if (
            Member.objects.filter(cooperative=coop, household=household)
            .exclude(standing=Member.Standing.DECLINED)
            .exists()
        ):
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
        put_in[holding] = (amount, extra)
    last = Member.objects.filter(cooperative=coop).order_by("-number").values_list("number", flat=True).first()
    requested = household is not None
    member = Member.objects.create(
        cooperative=coop,
        number=(last or 0) + 1,
        kind=kind,
        household=household,
        name=name,
        joined_on=joined_on,
        standing=Member.Standing.REQUESTED if requested else Member.Standing.CONFIRMED,
        proposed={"put_in": _as_json(put_in), "note": note} if requested else {},
        requested_by=by if requested and getattr(by, "pk", None) else None,
    )
    if not requested:
        _join_events(member, by=by, put_in=put_in, note=note)
    audit.record(
        actor=by,
        action="cooperative.member_requested" if requested else "cooperative.member_joined",
        obj=member,
        changes={
            "cooperative": coop.pk,
            "number": member.number,
            "kind": kind,
            "household": household.public_id if household else None,
            "put_in": {h: amount for h, (amount, _extra) in put_in.items()},
        },
    )
    if requested:
        transaction.on_commit(lambda: tasks.notify_membership_requested.delay(member_id=member.pk))
    return member


def _as_json(put_in: dict) -> list:
    """A list, not an object: jsonb reorders an object's keys, and the join
    events go in the order the form has them."""
    return [[h, str(amount), {k: str(v) for k, v in extra.items()}] for h, (amount, extra) in put_in.items()]


def _from_json(put_in: list) -> dict:
    return {h: (Decimal(amount), {k: Decimal(v) for k, v in extra.items()}) for h, amount, extra in put_in}


def _join_events(member: Member, *, by, put_in: dict, note: str) -> None:
    for holding, (amount, extra) in put_in.items():
        _event(
            member,
            by=by,
            kind=ShareEvent.Kind.JOIN,
            holding=holding,
            quantity=amount,
            occurred_on=member.joined_on,
            note=note,
            **extra,
        )


def require_confirmed(member: Member) -> None:
    """Refuse anything in the register of a household whose village has not
    confirmed its membership."""
    if member.standing == Member.Standing.REQUESTED:
        raise ActionRefused(
            _(
                "The household's village has not confirmed this membership yet: nothing can be entered for the "
                "member until it does."
            )
        )
    if member.standing == Member.Standing.DECLINED:
        raise ActionRefused(_("The household's village declined this membership: the member is not in the register."))


def _lock_request(member_id: int, by) -> Member:
    """The request locked, answered only by a first secretary of the
    household's village (the household's side)."""
    member = Member.objects.select_for_update(of=("self",)).select_related("cooperative", "household").get(pk=member_id)
    if member.household_id is None or member.household.village_id not in {v.pk for v in by.secretary_villages}:
        raise ActionRefused(_("Only the first secretary of the household's village can answer this request."))
    return member


@transaction.atomic
def confirm_membership(*, by, member_id: int, basis: str) -> Member:
    """The household's side agrees: its village's first secretary confirms
    the request, saying on what basis the household agreed. Enters the
    proposed "join" events (dated the day the member joined, recorded by the
    manager who entered them), writes the audit entry and mails the
    cooperative's managers after commit. Confirming twice changes nothing."""
    basis = (basis or "").strip()
    if not basis:
        raise ActionRefused(_("Say how the household agreed to join (a signed form, a meeting, …)."), field="basis")
    member = _lock_request(member_id, by)
    if member.standing == Member.Standing.CONFIRMED:
        return member
    if member.standing == Member.Standing.DECLINED:
        raise ActionRefused(_("This request was declined; the cooperative can send a new one."))
    _year_open(member.cooperative_id, member.joined_on, field="basis")
    put_in = _from_json(member.proposed.get("put_in", []))
    _join_events(member, by=member.requested_by, put_in=put_in, note=member.proposed.get("note", ""))
    member.standing = Member.Standing.CONFIRMED
    member.consent_basis = basis
    member.decided_at = timezone.now()
    member.decided_by = by
    member.save(update_fields=["standing", "consent_basis", "decided_at", "decided_by"])
    audit.record(
        actor=by,
        action="cooperative.member_confirmed",
        obj=member,
        changes={"cooperative": member.cooperative_id, "number": member.number, "basis": basis},
    )
    transaction.on_commit(lambda: tasks.notify_membership_decided.delay(member_id=member.pk))
    return member


@transaction.atomic
def decline_membership(*, by, member_id: int) -> Member:
    """The household's side does not agree: the request is declined (the row
    stays, with nothing in the register; the cooperative may ask again).
    Audit entry; the managers are mailed after commit. Declining twice
    changes nothing."""
    member = _lock_request(member_id, by)
    if member.standing == Member.Standing.DECLINED:
        return member
    if member.standing == Member.Standing.CONFIRMED:
        raise ActionRefused(_("This membership is already confirmed; the member leaves through the cooperative."))
    member.standing = Member.Standing.DECLINED
    member.decided_at = timezone.now()
    member.decided_by = by
    member.save(update_fields=["standing", "decided_at", "decided_by"])
    audit.record(
        actor=by,
        action="cooperative.member_declined",
        obj=member,
        changes={"cooperative": member.cooperative_id, "number": member.number},
    )
    transaction.on_commit(lambda: tasks.notify_membership_decided.delay(member_id=member.pk))
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
    require_confirmed(giver)
    require_confirmed(taker)
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
