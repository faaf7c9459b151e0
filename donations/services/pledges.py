"""Pledges to a need: made, cancelled, sent, received (goods by the
village's secretary, money by bureau staff), thanked for.

Rows are always locked in the same order — the need first, then its
pledge — so that concurrent actions cannot deadlock.
"""

from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from sun_commune import audit, outbox
from sun_commune.errors import ActionRefused
from sun_commune.money import quantize_yuan

from .. import ledger, tasks
from ..models import (
    Donor,
    LedgerTransaction,
    Need,
    Pledge,
)
from .needs import _count, _settle_status

# Adds a pledge to its need's counter only if it still fits, and moves the
# need to fully pledged when it fills it; the row lock this UPDATE takes is
# the one concurrent pledges of the need queue on.
_TAKE = """
    UPDATE donations_need
       SET {counter} = {counter} + %(size)s,
           status = CASE WHEN {counter} + %(size)s >= {target} THEN %(full)s ELSE status END
     WHERE id = %(id)s AND status = %(open)s AND deadline >= %(today)s AND {counter} + %(size)s <= {target}
 RETURNING status
"""


@transaction.atomic
def make_pledge(
    *, need_id: int, donor: Donor, quantity: int | None = None, amount=None, message: str = "", need: Need | None = None
) -> Pledge:
    """Pledge part or all of what a published need still lacks.

    The need is read without a lock to check the input (``need``: as the
    caller has just read it, which checks it as well); the pledge is
    written, and then one conditional UPDATE adds it to the need's counter
    only if it still fits (taking the need's row lock, on which concurrent
    pledges queue: each sees what the one before left). If it no longer
    fits, the whole pledge is undone and the donor told why. The lock is
    held only from that UPDATE to the commit; the need's CHECK constraints
    refuse an over-pledge even if this code were wrong. Mails the village's
    secretary after commit.
    """
    if need is None or need.pk != need_id:
        need = Need.objects.get(pk=need_id)
    if not need.is_open_for_pledges:
        _refuse_closed(need)
    if need.is_money:
        if amount is None:
            raise ActionRefused(_("Enter an amount."), field="amount")
        amount = quantize_yuan(amount)
        if amount <= 0:
            raise ActionRefused(_("Enter an amount of at least 0.01 yuan."), field="amount")
        size, declared, quantity = amount, amount, None
    else:
        if not quantity or quantity <= 0:
            raise ActionRefused(_("Enter a quantity of at least 1."), field="quantity")
        size, declared, amount = quantity, quantize_yuan((need.unit_price or 0) * quantity), None
    _refuse_too_much(need, size)
    new = Pledge.objects.create(
        need=need, donor=donor, quantity=quantity, amount=amount, declared_value=declared, message=message.strip()
    )
    counter, target = ("pledged_amount", "target_amount") if need.is_money else ("pledged_quantity", "quantity")
    with connection.cursor() as cursor:
        cursor.execute(
            _TAKE.format(counter=counter, target=target),
            {
                "size": size,
                "id": need.pk,
                "open": Need.Status.PUBLISHED,
                "full": Need.Status.FULLY_PLEDGED,
                "today": timezone.localdate(),
            },
        )
        row = cursor.fetchone()
    if row is None:  # taken or closed since it was read: undo the pledge, say why
        need.refresh_from_db()
        if not need.is_open_for_pledges:
            _refuse_closed(need)
        _refuse_too_much(need, size)
        raise ActionRefused(_("Sorry, this need has just been fully pledged."))
    audit.record(
        actor=donor.user,
        action="pledge.created",
        obj=new,
        changes={"need": need.pk, "quantity": quantity, "amount": amount, "need_status": row[0]},
    )
    outbox.enqueue(tasks.notify_new_pledge, pledge_id=new.pk)
    return new


def _refuse_closed(need: Need):
    if need.status == Need.Status.FULLY_PLEDGED:
        raise ActionRefused(_("Sorry, this need has just been fully pledged."))
    raise ActionRefused(_("This need is not open for pledges."))


def _refuse_too_much(need: Need, size) -> None:
    if size <= need.remaining:
        return
    if need.is_money:
        raise ActionRefused(_("Only %(left)s yuan is still needed.") % {"left": need.remaining}, field="amount")
    raise ActionRefused(
        _("Only %(left)s %(unit)s are still needed.") % {"left": need.remaining, "unit": need.unit},
        field="quantity",
    )


def _lock_pledge(pledge_id: int) -> tuple[Need, Pledge]:
    """Lock a pledge's need, then the pledge (always in that order)."""
    need_id = Pledge.objects.values_list("need_id", flat=True).get(pk=pledge_id)
    need = Need.objects.select_for_update().get(pk=need_id)
    return need, Pledge.objects.select_for_update().get(pk=pledge_id)


def _release(need: Need, pledge: Pledge, status: str) -> None:
    changed = _count(need, pledged=-pledge.size) + _settle_status(need)
    need.save(update_fields=changed)
    pledge.status = status
    pledge.closed_at = timezone.now()
    pledge.save(update_fields=["status", "closed_at"])


@transaction.atomic
def cancel_pledge(*, pledge_id: int, by) -> Pledge:
    """Cancel an open pledge; what it held goes back to the need."""
    need, p = _lock_pledge(pledge_id)
    if p.status == Pledge.Status.CANCELLED:
        return p
    if not p.is_open:
        raise ActionRefused(_("Only a pledge that has not arrived yet can be cancelled."))
    old = p.status
    _release(need, p, Pledge.Status.CANCELLED)
    audit.record(actor=by, action="pledge.cancelled", obj=p, changes={"status": [old, "cancelled"]})
    return p


@transaction.atomic
def mark_sent(*, pledge_id: int, by) -> Pledge:
    """The donor says the goods are on their way."""
    need, p = _lock_pledge(pledge_id)
    if p.status == Pledge.Status.SENT:
        return p
    if p.status != Pledge.Status.PLEDGED or need.kind != Need.Kind.GOODS:
        raise ActionRefused(_("Only pledged goods can be marked as sent."))
    p.status = Pledge.Status.SENT
    p.sent_at = timezone.now()
    p.save(update_fields=["status", "sent_at"])
    audit.record(actor=by, action="pledge.sent", obj=p, changes={"status": ["pledged", "sent"]})
    return p


def _arrive(need: Need, p: Pledge, *, by, arrived, status: str) -> None:
    """Record what arrived of an open pledge; the rest goes back to the need."""
    if need.is_money:
        p.received_amount = arrived
    else:
        p.received_quantity = arrived
    shortfall = p.size - arrived
    changed = _count(need, pledged=-shortfall, received=arrived) + _settle_status(need)
    need.save(update_fields=sorted(set(changed)))
    p.status = status
    p.received_at = timezone.now()
    p.received_by = by


def _declared_value_received(need: Need, p: Pledge, quantity: int) -> Decimal:
    """Goods enter the ledger at their declared value: the pledge's declared
    value for what arrived (a share of it when only part arrived)."""
    if not p.declared_value or not p.quantity:
        return Decimal("0.00")
    if quantity == p.quantity:
        return p.declared_value
    return quantize_yuan(p.declared_value * quantity / p.quantity)


@transaction.atomic
def confirm_receipt(*, pledge_id: int, by, quantity: int, photo=None, note: str = "") -> Pledge:
    """The secretary confirms how many of the pledged goods (or hours of
    service) arrived, with an optional photo. A shortfall goes back to the
    need; when everything needed has arrived the need is fulfilled. Mails the
    donor after commit. Safe to call twice."""
    need, p = _lock_pledge(pledge_id)
    done = Pledge.Status.DONE if need.kind == Need.Kind.SERVICE else Pledge.Status.RECEIVED
    if p.status == done:
        return p
    if need.is_money:
        raise ActionRefused(_("Money is recorded as received by bureau staff."))
    if not p.is_open:
        raise ActionRefused(_("This pledge is no longer open."))
    if quantity is None or quantity < 1:
        raise ActionRefused(
            _("Enter a quantity of at least 1. If nothing arrived, leave the pledge open."), field="quantity"
        )
    if quantity > p.quantity:
        raise ActionRefused(_("Only %(n)s were pledged; enter at most %(n)s.") % {"n": p.quantity}, field="quantity")
    old = p.status
    _arrive(need, p, by=by, arrived=quantity, status=done)
    p.receipt_note = note.strip()
    fields = ["status", "received_quantity", "received_at", "received_by", "receipt_note"]
    if photo is not None:
        p.photo.save(photo.name, photo, save=False)
        fields.append("photo")
    p.save(update_fields=fields)
    value = _declared_value_received(need, p, quantity)
    if value > 0:
        ledger.post(
            kind=LedgerTransaction.Kind.GOODS_IN,
            legs=[(ledger.goods_delivered(), value), (ledger.income_goods(), -value)],
            area=need.village,
            by=by,
            need=need,
            pledge=p,
            donor=p.donor,
            purpose=need.title,
        )
    audit.record(
        actor=by,
        action="pledge.received",
        obj=p,
        changes={"status": [old, done], "quantity": quantity, "photo": bool(photo), "need_status": need.status},
    )
    outbox.enqueue(tasks.notify_goods_received, pledge_id=p.pk)
    return p


@transaction.atomic
def record_money_received(*, pledge_id: int, by, amount, reference: str) -> Pledge:
    """Bureau staff record the transfer that paid a money pledge, with the
    bank's reference. The reference is unique: recording the same transfer
    again returns the pledge unchanged; using it for another pledge is
    refused."""
    reference = (reference or "").strip()
    if not reference:
        raise ActionRefused(_("Enter the transfer's reference."), field="reference")
    need, p = _lock_pledge(pledge_id)
    if p.status == Pledge.Status.RECEIVED and p.transfer_reference == reference:
        return p
    if not need.is_money:
        raise ActionRefused(_("This pledge is not money."))
    if not p.is_open:
        raise ActionRefused(_("This pledge is no longer open."))
    if (
        Pledge.objects.filter(transfer_reference=reference).exclude(pk=p.pk).exists()
        or LedgerTransaction.objects.filter(reference=reference).exists()
    ):
        raise ActionRefused(_("This reference has already been recorded for another pledge."), field="reference")
    amount = quantize_yuan(amount)
    if amount <= 0:
        raise ActionRefused(_("Enter an amount of at least 0.01 yuan."), field="amount")
    if amount > p.amount:
        raise ActionRefused(
            _("The pledge was for %(amount)s yuan; record at most that.") % {"amount": p.amount}, field="amount"
        )
    old = p.status
    _arrive(need, p, by=by, arrived=amount, status=Pledge.Status.RECEIVED)
    p.transfer_reference = reference
    try:
        with transaction.atomic():  # a concurrent use of the reference loses here, with a message
            p.save(update_fields=["status", "received_amount", "received_at", "received_by", "transfer_reference"])
            ledger.post(
                kind=LedgerTransaction.Kind.MONEY_IN,
                legs=[(ledger.need_fund(need), amount), (ledger.income_money(), -amount)],
                area=need.village,
                by=by,
                need=need,
                pledge=p,
                donor=p.donor,
                reference=reference,
                purpose=need.title,
            )
    except IntegrityError:
        raise ActionRefused(_("This reference has already been recorded for another pledge."), field="reference")
    audit.record(
        actor=by,
        action="pledge.money_received",
        obj=p,
        changes={"status": [old, "received"], "amount": amount, "reference": reference, "need_status": need.status},
    )
    outbox.enqueue(tasks.notify_goods_received, pledge_id=p.pk)
    return p


@transaction.atomic
def thank_donor(*, pledge_id: int, by, message: str) -> Pledge:
    """The village thanks the donor for what arrived; the donor sees it."""
    message = (message or "").strip()
    if not message:
        raise ActionRefused(_("Write a few words of thanks."), field="message")
    need, p = _lock_pledge(pledge_id)
    if p.status not in (Pledge.Status.RECEIVED, Pledge.Status.DONE, Pledge.Status.THANKED):
        raise ActionRefused(_("Thank the donor once the gift has arrived."))
    old = p.status
    p.thanks = message
    p.status = Pledge.Status.THANKED
    p.save(update_fields=["thanks", "status"])
    audit.record(actor=by, action="pledge.thanked", obj=p, changes={"status": [old, "thanked"]})
    return p
