"""Pledges to a need: made, cancelled, sent, received (goods by the
village's secretary, money by bureau staff), thanked for.

Rows are always locked in the same order — the need first, then its
pledge — so that concurrent actions cannot deadlock.
"""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from sun_commune import audit, outbox
from sun_commune.errors import ActionRefused
from sun_commune.language import in_site_language
from sun_commune.money import quantize_yuan

from .. import ledger, tasks
from ..models import (
    Donor,
    LedgerTransaction,
    Need,
    Pledge,
)
from .duties import AuditedRefusal, audits_refusals, same_person
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


@audits_refusals
@transaction.atomic
def make_pledge(
    *,
    need_id: int,
    donor: Donor,
    quantity: int | None = None,
    amount=None,
    message: str = "",
    need: Need | None = None,
    exempt: str = "",
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

    Before that, the donor's row is locked (their pledges queue on it) and
    the pledge refused, with an audit entry, if the donor posted the need
    themselves or it would take them past what a donor may hold open at
    once (``check_open_limits``). A donor whose e-mail is not verified is
    refused. ``exempt`` names why a pledge is held to none of these (its
    audit entry says so): "pairing" for a pairing's installment, which the
    village agreed to with the pairing and posted itself; "demo" for the
    demo's history.
    """
    if need is None or need.pk != need_id:
        need = Need.objects.get(pk=need_id)
    if not need.is_open_for_pledges:
        _refuse_closed(need)
    if not exempt and need.created_by_id == donor.user_id:
        raise AuditedRefusal(
            _("You posted this need yourself: it has to be given by someone else."),
            actor=donor.user,
            action="pledge.refused_own_need",
            obj=need,
            changes={"donor": donor.pk},
        )
    if not exempt and not donor.email_verified:
        raise ActionRefused(_("Verify your e-mail address before your first pledge."))
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
    if not exempt:
        check_open_limits(donor, need, declared)
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
        changes={
            "need": need.pk,
            "quantity": quantity,
            "amount": amount,
            "need_status": row[0],
            **({"exempt": exempt} if exempt else {}),
        },
    )
    outbox.enqueue(tasks.notify_new_pledge, pledge_id=new.pk)
    return new


def open_limits(donor: Donor) -> tuple[int, Decimal, bool]:
    """The most pledges, and declared yuan, ``donor`` may hold open at once,
    and whether those are a new donor's limits: new until their account is
    PLEDGE_NEW_DONOR_DAYS old and PLEDGE_NEW_DONOR_HONOURED gifts arrived."""
    old_enough = donor.created_at <= timezone.now() - timedelta(days=settings.PLEDGE_NEW_DONOR_DAYS)
    wanted = settings.PLEDGE_NEW_DONOR_HONOURED
    honoured = (
        old_enough
        and Pledge.objects.filter(donor=donor, status__in=Pledge.HONOURED_STATUSES).values("pk")[:wanted].count()
        >= wanted
    )
    if honoured:
        return settings.PLEDGE_OPEN_LIMIT, settings.PLEDGE_OPEN_YUAN_LIMIT, False
    return settings.PLEDGE_OPEN_LIMIT_NEW, settings.PLEDGE_OPEN_YUAN_LIMIT_NEW, True


def check_open_limits(donor: Donor, need: Need, declared: Decimal) -> None:
    """Refuse (with an audit entry) a pledge of ``declared`` yuan that would
    take ``donor`` past what they may hold open. Locks the donor's row, so
    that their pledges made at once are counted one after the other."""
    Donor.objects.select_for_update().filter(pk=donor.pk).values_list("pk", flat=True).get()
    held = Pledge.objects.open().filter(donor=donor).aggregate(n=Count("pk"), value=Sum("declared_value"))
    count, value = held["n"], held["value"] or Decimal("0.00")
    most, most_yuan, new = open_limits(donor)
    facts = {"need": need.pk, "open": count, "open_value": value, "pledge_value": declared, "new_donor": new}
    if count + 1 > most:
        raise AuditedRefusal(
            _(
                "You already have %(n)s open pledges, the most a donor can hold at once. "
                "Once one of them has arrived (or if you cancel one) you can pledge again."
            )
            % {"n": count},
            actor=donor.user,
            action="pledge.refused_limit",
            obj=donor,
            changes={**facts, "limit": most},
        )
    if value + declared > most_yuan:
        raise AuditedRefusal(
            _(
                "Your open pledges would come to %(total)s yuan; a donor can hold at most %(limit)s yuan "
                "open at once. Pledge less, or again once your gifts have arrived."
            )
            % {"total": quantize_yuan(value + declared), "limit": quantize_yuan(most_yuan)},
            actor=donor.user,
            action="pledge.refused_limit",
            obj=donor,
            changes={**facts, "limit_yuan": most_yuan},
        )


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


def _give_back(pledge_id: int, status: str, refusal) -> tuple[Need, Pledge, str | None]:
    """Lock an open pledge and close it as ``status``, giving what it held
    back to its need. Returns the need, the pledge and its old status (None
    when it already was ``status``: nothing to do); refuses with
    ``refusal`` when it is no longer open."""
    need, p = _lock_pledge(pledge_id)
    if p.status == status:
        return need, p, None
    if not p.is_open:
        raise ActionRefused(refusal)
    old = p.status
    _release(need, p, status)
    return need, p, old


@transaction.atomic
def cancel_pledge(*, pledge_id: int, by) -> Pledge:
    """Cancel an open pledge; what it held goes back to the need."""
    need, p, old = _give_back(
        pledge_id, Pledge.Status.CANCELLED, _("Only a pledge that has not arrived yet can be cancelled.")
    )
    if old is None:
        return p
    audit.record(actor=by, action="pledge.cancelled", obj=p, changes={"status": [old, "cancelled"]})
    return p


@transaction.atomic
def release_pledge(*, pledge_id: int, by, reason: str) -> Pledge:
    """Release an open pledge that is not being honoured (bureau staff over
    the need's area, the village's secretary, or the schedule with ``by``
    None): what it held goes back to the need, as when it is cancelled. The
    donor is mailed the reason after commit. Safe to call twice."""
    reason = (reason or "").strip()
    if not reason:
        raise ActionRefused(_("Say why the pledge is released; the donor is told."), field="reason")
    need, p, old = _give_back(
        pledge_id, Pledge.Status.RELEASED, _("Only a pledge that has not arrived yet can be released.")
    )
    if old is None:
        return p
    p.released_by = by
    p.release_reason = reason[:500]
    p.save(update_fields=["released_by", "release_reason"])
    audit.record(
        actor=by,
        action="pledge.released",
        obj=p,
        changes={"status": [old, "released"], "reason": p.release_reason, "need_status": need.status},
    )
    outbox.enqueue(tasks.notify_pledge_released, pledge_id=p.pk)
    return p


def release_unpaid_money_pledges(*, now=None) -> int:
    """Release every open money pledge made more than
    MONEY_PLEDGE_RELEASE_DAYS ago, each in its own transaction; returns how
    many. Running it twice releases nothing more: a released (or meanwhile
    paid) pledge is no longer open and is left as it is."""
    days = settings.MONEY_PLEDGE_RELEASE_DAYS
    cutoff = (now or timezone.now()) - timedelta(days=days)
    due = (
        Pledge.objects.open()
        .filter(amount__isnull=False, created_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    reason = in_site_language(gettext_lazy("No transfer was recorded within %(days)s days of the pledge.")) % {
        "days": days
    }
    released = 0
    for pledge_id in list(due.iterator(chunk_size=1000)):
        try:
            if release_pledge(pledge_id=pledge_id, by=None, reason=reason).status == Pledge.Status.RELEASED:
                released += 1
        except ActionRefused:
            continue  # paid or cancelled since it was listed
    return released


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


def _refuse_own_gift(p: Pledge, by, action: str, message) -> None:
    """Nobody confirms or records their own gift (DESIGN.md rule 9)."""
    if same_person(by, p.donor):
        raise AuditedRefusal(message, actor=by, action=action, obj=p, changes={"donor": p.donor_id})


@audits_refusals
@transaction.atomic
def confirm_receipt(*, pledge_id: int, by, quantity: int, photo=None, note: str = "") -> Pledge:
    """The secretary confirms how many of the pledged goods (or hours of
    service) arrived, with an optional photo. A shortfall goes back to the
    need; when everything needed has arrived the need is fulfilled. Mails the
    donor after commit. Safe to call twice."""
    need, p = _lock_pledge(pledge_id)
    _refuse_own_gift(
        p,
        by,
        "pledge.refused_own_receipt",
        _("This is your own pledge: its arrival is confirmed by someone else (another secretary or bureau staff)."),
    )
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


@audits_refusals
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
    _refuse_own_gift(
        p,
        by,
        "pledge.refused_own_money",
        _("This is your own pledge: the transfer is recorded by other bureau staff."),
    )
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
