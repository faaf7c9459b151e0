"""Every action that changes a donor, a need or a pledge.

Each function is one business action: atomic, locking what it changes,
writing its audit entry in the same transaction, and enqueueing mail only
after commit. Rows are always locked in the same order — the need first,
then its pledge — so that concurrent actions cannot deadlock.

Access (role and area) is checked by the views through the access helpers
before they call in here; these functions check the state of things.
"""

import hashlib
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from households.models import Area
from sun_commune import audit, search
from sun_commune.errors import ActionRefused
from sun_commune.language import in_site_language

from . import ledger, tasks
from .models import (
    Donor,
    LedgerAccount,
    LedgerTransaction,
    Need,
    Pairing,
    PairingInstallment,
    PairingUpdate,
    Pledge,
    period_end,
)

CENT = Decimal("0.01")


def to_yuan(value) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


# --- Donors ---------------------------------------------------------------


@transaction.atomic
def register_donor(*, user, kind: str, name: str, show_name: bool, phone: str = "") -> Donor:
    """Give ``user`` a donor profile (a user registers as a donor once)."""
    if Donor.objects.filter(user=user).exists():
        raise ActionRefused(_("You are already registered as a donor."))
    donor = Donor.objects.create(user=user, kind=kind, name=name, show_name=show_name, phone=phone)
    audit.record(actor=user, action="donor.registered", obj=donor, changes={"kind": kind, "show_name": show_name})
    return donor


# --- Needs ----------------------------------------------------------------

NEED_FIELDS = (
    "household",
    "title",
    "description",
    "category",
    "kind",
    "item",
    "unit",
    "quantity",
    "unit_price",
    "target_amount",
    "deadline",
)


def _check_need(need: Need) -> None:
    if need.household_id and need.household.village_id != need.village_id:
        raise ActionRefused(_("This household does not belong to the village."), field="household")
    if need.deadline < timezone.localdate():
        raise ActionRefused(_("The deadline has already passed."), field="deadline")
    if need.kind == Need.Kind.MONEY:
        if not need.target_amount or need.target_amount <= 0:
            raise ActionRefused(_("Enter the amount of money needed."), field="target_amount")
        need.quantity = None
        need.unit_price = None
    else:
        if not need.quantity:
            raise ActionRefused(_("Enter how many are needed."), field="quantity")
        if need.kind == Need.Kind.GOODS and not need.item:
            raise ActionRefused(_("Name the item that is needed."), field="item")
        if not need.unit:
            need.unit = in_site_language(
                gettext_lazy("hours") if need.kind == Need.Kind.SERVICE else gettext_lazy("pieces")
            )
        need.target_amount = None
        if need.unit_price is not None:
            need.unit_price = to_yuan(need.unit_price)


def _index(need: Need) -> None:
    need.search_terms = search.index_terms(need.title, need.item, need.description)


@transaction.atomic
def create_need(*, by, village: Area, submit: bool, **fields) -> Need:
    """Post a need for a household of ``village`` or the village itself, as a
    draft or straight to review."""
    if village.level != Area.Level.VILLAGE:
        raise ActionRefused(_("A need is posted for a village."))
    need = Need(
        village=village,
        township=village.parent,
        county=village.parent.parent,
        created_by=by,
        **{k: v for k, v in fields.items() if k in NEED_FIELDS},
    )
    _check_need(need)
    _index(need)
    if submit:
        need.status = Need.Status.SUBMITTED
        need.submitted_at = timezone.now()
    need.save()
    audit.record(actor=by, action="need.created", obj=need, changes={"status": need.status})
    return need


@transaction.atomic
def update_need(*, need_id: int, by, submit: bool, **fields) -> Need:
    """Change a draft or a rejected need; optionally send it (back) to review."""
    need = Need.objects.select_for_update().get(pk=need_id)
    if need.status not in Need.EDITABLE_STATUSES:
        raise ActionRefused(_("Only a draft or a rejected need can be changed."))
    changes = {}
    for key, value in fields.items():
        if key in NEED_FIELDS and getattr(need, key) != value:
            changes[key] = [str(getattr(need, key)), str(value)]
            setattr(need, key, value)
    _check_need(need)
    _index(need)
    if submit:
        changes["status"] = [need.status, Need.Status.SUBMITTED]
        need.status = Need.Status.SUBMITTED
        need.submitted_at = timezone.now()
        need.rejection_reason = ""
    need.save()
    audit.record(actor=by, action="need.updated", obj=need, changes=changes)
    return need


@transaction.atomic
def submit_need(*, need_id: int, by) -> Need:
    need = Need.objects.select_for_update().get(pk=need_id)
    if need.status == Need.Status.SUBMITTED:
        return need
    if need.status not in Need.EDITABLE_STATUSES:
        raise ActionRefused(_("This need has already been reviewed."))
    if need.deadline < timezone.localdate():
        raise ActionRefused(_("The deadline has already passed."), field="deadline")
    old = need.status
    need.status = Need.Status.SUBMITTED
    need.submitted_at = timezone.now()
    need.rejection_reason = ""
    need.save(update_fields=["status", "submitted_at", "rejection_reason"])
    audit.record(actor=by, action="need.submitted", obj=need, changes={"status": [old, need.status]})
    return need


@transaction.atomic
def publish_need(*, need_id: int, by) -> Need:
    """Vet and publish a need: it appears in the supermarket; the secretary is mailed."""
    need = Need.objects.select_for_update().get(pk=need_id)
    if need.status == Need.Status.PUBLISHED:
        return need
    if need.status != Need.Status.SUBMITTED:
        raise ActionRefused(_("Only a need awaiting review can be published."))
    if need.deadline < timezone.localdate():
        raise ActionRefused(_("The deadline has already passed; ask the village to change it."))
    need.status = Need.Status.PUBLISHED
    need.published_at = timezone.now()
    need.reviewed_by = by
    need.save(update_fields=["status", "published_at", "reviewed_by"])
    audit.record(actor=by, action="need.published", obj=need, changes={"status": ["submitted", "published"]})
    transaction.on_commit(lambda: tasks.notify_need_reviewed.delay(need_id=need.pk))
    return need


@transaction.atomic
def reject_need(*, need_id: int, by, reason: str) -> Need:
    """Send a need back with a reason the secretary sees; the secretary is mailed."""
    reason = (reason or "").strip()
    if not reason:
        raise ActionRefused(_("Give the village a reason."), field="reason")
    need = Need.objects.select_for_update().get(pk=need_id)
    if need.status != Need.Status.SUBMITTED:
        raise ActionRefused(_("Only a need awaiting review can be rejected."))
    need.status = Need.Status.REJECTED
    need.rejection_reason = reason
    need.reviewed_by = by
    need.save(update_fields=["status", "rejection_reason", "reviewed_by"])
    audit.record(
        actor=by, action="need.rejected", obj=need, changes={"status": ["submitted", "rejected"], "reason": reason}
    )
    transaction.on_commit(lambda: tasks.notify_need_reviewed.delay(need_id=need.pk))
    return need


def _settle_status(need: Need) -> list[str]:
    """Move an open need between published, fully pledged and fulfilled after
    its counters changed. Returns the fields it changed."""
    if need.status not in (Need.Status.PUBLISHED, Need.Status.FULLY_PLEDGED):
        return []
    if need.received >= need.target:
        need.status = Need.Status.FULFILLED
        need.fulfilled_at = timezone.now()
        return ["status", "fulfilled_at"]
    new = Need.Status.FULLY_PLEDGED if need.pledged >= need.target else Need.Status.PUBLISHED
    if new != need.status:
        need.status = new
        return ["status"]
    return []


def _count(need: Need, pledged=0, received=0) -> list[str]:
    """Add to the need's counters (negative to release)."""
    if need.is_money:
        need.pledged_amount += pledged
        need.received_amount += received
        return ["pledged_amount", "received_amount"]
    need.pledged_quantity += pledged
    need.received_quantity += received
    return ["pledged_quantity", "received_quantity"]


@transaction.atomic
def close_need(*, need_id: int, by) -> Need:
    """Close a fulfilled or expired need: it stays public as a record."""
    need = Need.objects.select_for_update().get(pk=need_id)
    if need.status == Need.Status.CLOSED:
        return need
    if need.status not in (Need.Status.FULFILLED, Need.Status.EXPIRED):
        raise ActionRefused(_("Only a fulfilled or expired need can be closed."))
    old = need.status
    need.status = Need.Status.CLOSED
    need.save(update_fields=["status"])
    fund = LedgerAccount.objects.filter(need=need).first()
    left = ledger.fund_balance(fund)
    if left > 0:
        ledger.post(
            kind=LedgerTransaction.Kind.RETURN,
            legs=[(fund, -left), (ledger.pool(need.county), left)],
            area=need.village,
            by=by,
            need=need,
            purpose=in_site_language(gettext_lazy("Left-over of a closed need returned to the county pool")),
        )
    audit.record(actor=by, action="need.closed", obj=need, changes={"status": [old, "closed"], "returned": left})
    return need


# --- Pledges --------------------------------------------------------------


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
def pledge(
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
        amount = to_yuan(amount)
        if amount <= 0:
            raise ActionRefused(_("Enter an amount of at least 0.01 yuan."), field="amount")
        size, declared, quantity = amount, amount, None
    else:
        if not quantity or quantity <= 0:
            raise ActionRefused(_("Enter a quantity of at least 1."), field="quantity")
        size, declared, amount = quantity, to_yuan((need.unit_price or 0) * quantity), None
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
    transaction.on_commit(lambda: tasks.notify_new_pledge.delay(pledge_id=new.pk))
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
    return to_yuan(p.declared_value * quantity / p.quantity)


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
    transaction.on_commit(lambda: tasks.notify_goods_received.delay(pledge_id=p.pk))
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
    amount = to_yuan(amount)
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
    transaction.on_commit(lambda: tasks.notify_goods_received.delay(pledge_id=p.pk))
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


@transaction.atomic
def expire_need(*, need_id: int, today: date | None = None) -> Need:
    """A published need past its deadline expires; its open pledges are
    released. Safe to run twice."""
    today = today or timezone.localdate()
    need = Need.objects.select_for_update().get(pk=need_id)
    if need.status not in (Need.Status.PUBLISHED, Need.Status.FULLY_PLEDGED) or need.deadline >= today:
        return need
    released = []
    for p in need.pledges.open().select_for_update().order_by("pk"):
        _count(need, pledged=-p.size)
        p.status = Pledge.Status.EXPIRED
        p.closed_at = timezone.now()
        p.save(update_fields=["status", "closed_at"])
        audit.record(actor=None, action="pledge.expired", obj=p, changes={"status": ["open", "expired"]})
        released.append(p.pk)
    old = need.status
    need.status = Need.Status.EXPIRED
    need.save(update_fields=["status", "pledged_quantity", "pledged_amount"])
    audit.record(
        actor=None, action="need.expired", obj=need, changes={"status": [old, "expired"], "released": released}
    )
    return need


# --- Money through the ledger ---------------------------------------------------


@transaction.atomic
def record_gift(*, by, area: Area, amount, reference: str, occurred_on: date, donor: Donor | None = None):
    """Bureau staff record an undirected gift into the pool of their area,
    with the transfer's reference (recording the same transfer twice is
    refused, so a retry is safe)."""
    reference = (reference or "").strip()
    if not reference:
        raise ActionRefused(_("Enter the transfer's reference."), field="reference")
    amount = to_yuan(amount)
    if amount <= 0:
        raise ActionRefused(_("Enter an amount of at least 0.01 yuan."), field="amount")
    if LedgerTransaction.objects.filter(reference=reference).exists():
        raise ActionRefused(_("This reference has already been recorded."), field="reference")
    try:
        with transaction.atomic():  # a concurrent use of the reference loses here, with a message
            return ledger.post(
                kind=LedgerTransaction.Kind.GIFT_IN,
                legs=[(ledger.pool(area), amount), (ledger.income_money(), -amount)],
                area=area,
                by=by,
                occurred_on=occurred_on,
                donor=donor,
                reference=reference,
                purpose=in_site_language(gettext_lazy("Undirected gift to the pool")),
            )
    except IntegrityError:
        raise ActionRefused(_("This reference has already been recorded."), field="reference")


@transaction.atomic
def allocate(*, by, pool_area: Area, need_id: int, amount, occurred_on: date | None = None):
    """Move pool money to a need in the pool's area; from then on it is
    spent only on that need."""
    need = Need.objects.select_for_update().select_related("village").get(pk=need_id)
    if not pool_area.contains(need.village):
        raise ActionRefused(_("This need is outside the pool's area."), field="need")
    if need.status not in (Need.Status.PUBLISHED, Need.Status.FULLY_PLEDGED, Need.Status.FULFILLED):
        raise ActionRefused(_("Only an open or fulfilled need can receive money."), field="need")
    amount = to_yuan(amount)
    if amount <= 0:
        raise ActionRefused(_("Enter an amount of at least 0.01 yuan."), field="amount")
    return ledger.post(
        kind=LedgerTransaction.Kind.ALLOCATION,
        legs=[(ledger.pool(pool_area), -amount), (ledger.need_fund(need), amount)],
        area=need.village,
        by=by,
        occurred_on=occurred_on,
        need=need,
        purpose=need.title,
    )


@transaction.atomic
def spend(
    *,
    by,
    amount,
    purpose: str,
    category: str,
    occurred_on: date,
    need_id: int | None = None,
    pool_area: Area | None = None,
    payee: str = "",
    payee_household=None,
    voucher=None,
):
    """Record money going out of a need's fund or a pool: what for, to whom
    (a supplier by name, a household only by its public id), with the
    receipt's scan, kept for auditors; the public sees its SHA-256. No fund
    goes below zero, however many staff spend at once."""
    purpose = (purpose or "").strip()
    if not purpose:
        raise ActionRefused(_("Say what the money was spent on."), field="purpose")
    if category not in LedgerTransaction.Category.values:
        raise ActionRefused(_("Choose a category."), field="category")
    amount = to_yuan(amount)
    if amount <= 0:
        raise ActionRefused(_("Enter an amount of at least 0.01 yuan."), field="amount")
    if occurred_on > timezone.localdate():
        raise ActionRefused(_("The date cannot be in the future."), field="occurred_on")
    if (need_id is None) == (pool_area is None):
        raise ActionRefused(_("Spend from either a need's fund or a pool."))
    if payee_household is not None:
        payee = payee_household.public_id
    elif not payee.strip():
        raise ActionRefused(_("Name the payee."), field="payee")
    need = None
    if need_id is not None:
        need = Need.objects.select_for_update().select_related("village").get(pk=need_id)
        fund, area = ledger.need_fund(need), need.village
        if payee_household is not None and payee_household.village_id != need.village_id:
            raise ActionRefused(_("This household is not in the need's village."), field="payee_household")
    else:
        fund, area = ledger.pool(pool_area), pool_area
        if payee_household is not None and not pool_area.contains(payee_household.village):
            raise ActionRefused(_("This household is outside the pool's area."), field="payee_household")
    digest = ""
    if voucher is not None:
        sha = hashlib.sha256()
        for chunk in voucher.chunks():
            sha.update(chunk)
        digest = sha.hexdigest()
        # Stored under its own hash before the entry is written: a rollback
        # leaves at most an unreferenced copy, never an entry without its file.
        path = voucher_path(digest)
        if not default_storage.exists(path):
            voucher.seek(0)
            default_storage.save(path, voucher)
    return ledger.post(
        kind=LedgerTransaction.Kind.SPEND,
        legs=[(fund, -amount), (ledger.expense(category), amount)],
        area=area,
        by=by,
        occurred_on=occurred_on,
        need=need,
        purpose=purpose,
        category=category,
        payee=payee.strip(),
        payee_household=payee_household,
        voucher_sha256=digest,
    )


def voucher_path(sha256: str) -> str:
    """Where a voucher's scan is kept: named by its SHA-256, for auditors only."""
    return f"vouchers/{sha256[:2]}/{sha256}"


REVERSIBLE = (
    LedgerTransaction.Kind.GIFT_IN,
    LedgerTransaction.Kind.ALLOCATION,
    LedgerTransaction.Kind.SPEND,
    LedgerTransaction.Kind.RETURN,
)


@transaction.atomic
def reverse(*, by, transaction_id: int, reason: str):
    """Correct a mistake: a new transaction with every leg negated, pointing
    at the original. Nothing is edited. A transaction is reversed once."""
    reason = (reason or "").strip()
    if not reason:
        raise ActionRefused(_("Say why the entry is reversed."), field="reason")
    # Lock the original first: staff reversing it at once queue here, and the
    # second finds it reversed (the unique index on reverses is the backstop).
    original = LedgerTransaction.objects.select_for_update().select_related("area").get(pk=transaction_id)
    if original.kind not in REVERSIBLE:
        raise ActionRefused(
            _("Receipts of a pledge are corrected on the pledge, not reversed here.")
            if original.pledge_id
            else _("A reversal cannot be reversed; record the entry again instead.")
        )
    if LedgerTransaction.objects.filter(reverses=original).exists():
        raise ActionRefused(_("This entry has already been reversed."))
    legs = [(leg.account, -leg.amount) for leg in original.legs.select_related("account").order_by("pk")]
    return ledger.post(
        kind=LedgerTransaction.Kind.REVERSAL,
        legs=legs,
        area=original.area,
        by=by,
        need_id=original.need_id,
        purpose=reason,
        reverses=original,
    )


# --- Pairing --------------------------------------------------------------------
#
# A donor asks to pair with a household or a village, or the village's
# secretary invites a donor; the other side accepts or declines; either side
# may end it. The views check who may act on which pairing (the donor on their
# own, the secretary on their village's) and say which side is acting; these
# functions check the state. Every change locks the pairing's row first, so
# that an answer, an ending and the beat job's installment queue one behind
# the other.

DONOR_SIDE = "donor"
VILLAGE_SIDE = "village"
# An installment's need stays open this long after its period ends.
PAIRING_GRACE_DAYS = 30


def _pairing_figures(*, commitment: str, amount, item: str, quantity, unit: str, unit_price) -> dict:
    """The commitment's figures, checked and tidied; the other kind's are cleared."""
    if commitment == Pairing.Commitment.MONEY:
        if amount is None:
            raise ActionRefused(_("Enter the amount given each month."), field="amount")
        amount = to_yuan(amount)
        if amount <= 0:
            raise ActionRefused(_("Enter an amount of at least 0.01 yuan."), field="amount")
        return {"amount": amount, "item": "", "quantity": None, "unit": "", "unit_price": None}
    if commitment == Pairing.Commitment.GOODS:
        item = (item or "").strip()
        if not item:
            raise ActionRefused(_("Name the item given each season."), field="item")
        if not quantity or quantity < 1:
            raise ActionRefused(_("Enter a quantity of at least 1."), field="quantity")
        if unit_price is not None:
            unit_price = to_yuan(unit_price)
            if unit_price < 0:
                raise ActionRefused(_("The price cannot be negative."), field="unit_price")
        unit = (unit or "").strip() or in_site_language(gettext_lazy("pieces"))
        return {"amount": None, "item": item, "quantity": quantity, "unit": unit, "unit_price": unit_price}
    raise ActionRefused(_("Choose money each month or goods each season."), field="commitment")


def _duplicate_refusal(household) -> ActionRefused:
    if household is not None:
        return ActionRefused(_("This donor already has a pairing with this household, active or awaiting an answer."))
    return ActionRefused(_("This donor already has a pairing with this village, active or awaiting an answer."))


def _new_pairing(
    *, by, donor: Donor, village, household, status: str, message: str, start_date, end_date, commitment: str, **figures
) -> Pairing:
    if household is not None:
        if village is not None and household.village_id != village.pk:
            raise ActionRefused(_("This household does not belong to the village."), field="household")
        village = household.village
    if village is None or village.level != Area.Level.VILLAGE:
        raise ActionRefused(_("A pairing is with a household or a village."))
    figures = _pairing_figures(commitment=commitment, **figures)
    if start_date < timezone.localdate():
        raise ActionRefused(_("The start cannot be in the past."), field="start_date")
    if end_date is not None and end_date < start_date:
        raise ActionRefused(_("The end comes before the start."), field="end_date")
    same = Pairing.objects.open().filter(donor=donor)
    same = same.filter(household=household) if household is not None else same.filter(village=village, household=None)
    if same.exists():
        raise _duplicate_refusal(household)
    pairing = Pairing(
        donor=donor,
        household=household,
        village=village,
        township=village.parent,
        county=village.parent.parent,
        status=status,
        message=(message or "").strip(),
        start_date=start_date,
        end_date=end_date,
        commitment=commitment,
        created_by=by,
        secretary=by if status == Pairing.Status.INVITED else None,
        **figures,
    )
    try:
        with transaction.atomic():  # two requests at once: the partial unique index refuses the second
            pairing.save()
    except IntegrityError:
        raise _duplicate_refusal(household)
    return pairing


def _pairing_terms(pairing: Pairing) -> dict:
    """The terms, for the audit entry (public facts only)."""
    return {
        "donor": pairing.donor_id,
        "household": pairing.household_id,
        "village": pairing.village_id,
        "commitment": pairing.commitment,
        "amount": pairing.amount,
        "item": pairing.item,
        "quantity": pairing.quantity,
        "start_date": pairing.start_date,
        "end_date": pairing.end_date,
    }


def _notify_pairing(pairing: Pairing, event: str, to: str) -> None:
    transaction.on_commit(lambda: tasks.notify_pairing.delay(pairing_id=pairing.pk, event=event, to=to))


@transaction.atomic
def request_pairing(
    *,
    donor: Donor,
    commitment: str,
    start_date,
    village=None,
    household=None,
    end_date=None,
    amount=None,
    item: str = "",
    quantity=None,
    unit: str = "",
    unit_price=None,
    message: str = "",
) -> Pairing:
    """A donor asks to pair with ``household`` (or with ``village`` as a
    whole) on a monthly money or seasonal goods commitment. Refused while the
    donor has an open pairing with the same household or village. Mails the
    village's secretaries after commit."""
    pairing = _new_pairing(
        by=donor.user,
        donor=donor,
        village=village,
        household=household,
        status=Pairing.Status.REQUESTED,
        message=message,
        start_date=start_date,
        end_date=end_date,
        commitment=commitment,
        amount=amount,
        item=item,
        quantity=quantity,
        unit=unit,
        unit_price=unit_price,
    )
    audit.record(
        actor=donor.user,
        action="pairing.requested",
        obj=pairing,
        changes={"status": [None, pairing.status], **_pairing_terms(pairing)},
    )
    _notify_pairing(pairing, "requested", VILLAGE_SIDE)
    return pairing


def find_donor(login: str) -> Donor:
    """The donor whose username or e-mail is ``login`` (case ignored)."""
    login = (login or "").strip()
    if not login:
        raise ActionRefused(_("Enter the donor's username or e-mail."), field="donor")
    matches = list(
        Donor.objects.select_related("user")
        .filter(Q(user__username__iexact=login) | Q(user__email__iexact=login), user__is_active=True)
        .order_by("pk")[:2]
    )
    if not matches:
        raise ActionRefused(_("No donor is registered with this username or e-mail."), field="donor")
    if len(matches) > 1:
        exact = [d for d in matches if d.user.username.lower() == login.lower()]
        if len(exact) != 1:
            raise ActionRefused(_("Several donors use this e-mail; enter the username instead."), field="donor")
        return exact[0]
    return matches[0]


@transaction.atomic
def invite_donor(
    *,
    by,
    donor_login: str,
    commitment: str,
    start_date,
    village=None,
    household=None,
    end_date=None,
    amount=None,
    item: str = "",
    quantity=None,
    unit: str = "",
    unit_price=None,
    message: str = "",
) -> Pairing:
    """A village's secretary invites a registered donor (found by username or
    e-mail) to pair with ``household`` or the village, on the terms given.
    Refused while that donor has an open pairing with it. Mails the donor
    after commit (public facts of the household only)."""
    donor = find_donor(donor_login)
    pairing = _new_pairing(
        by=by,
        donor=donor,
        village=village,
        household=household,
        status=Pairing.Status.INVITED,
        message=message,
        start_date=start_date,
        end_date=end_date,
        commitment=commitment,
        amount=amount,
        item=item,
        quantity=quantity,
        unit=unit,
        unit_price=unit_price,
    )
    audit.record(
        actor=by,
        action="pairing.invited",
        obj=pairing,
        changes={"status": [None, pairing.status], **_pairing_terms(pairing)},
    )
    _notify_pairing(pairing, "invited", DONOR_SIDE)
    return pairing


def _lock_pairing(pairing_id: int) -> Pairing:
    # Only the pairing's row: the household and donor are read, not locked.
    return Pairing.objects.select_for_update(of=("self",)).select_related("donor", "household").get(pk=pairing_id)


def _asked_side(pairing: Pairing) -> str | None:
    """The side whose answer a pending pairing waits for: the village answers
    a donor's request, the donor answers the village's invitation."""
    if pairing.status == Pairing.Status.REQUESTED:
        return VILLAGE_SIDE
    if pairing.status == Pairing.Status.INVITED:
        return DONOR_SIDE
    return None


def _other(side: str) -> str:
    return DONOR_SIDE if side == VILLAGE_SIDE else VILLAGE_SIDE


@transaction.atomic
def accept_pairing(*, pairing_id: int, by, side: str) -> Pairing:
    """The side that was asked accepts: the pairing becomes active from its
    start date (today, if that has passed) and its installments begin. Mails
    the other side after commit. Safe to call twice."""
    pairing = _lock_pairing(pairing_id)
    if pairing.status == Pairing.Status.ACTIVE:
        return pairing
    if _asked_side(pairing) != side:
        raise ActionRefused(_("This pairing is not waiting for your answer."))
    today = timezone.localdate()
    if pairing.end_date is not None and pairing.end_date < today:
        raise ActionRefused(_("This pairing's end date has passed; ask for a new one instead."))
    old = pairing.status
    pairing.status = Pairing.Status.ACTIVE
    pairing.start_date = max(pairing.start_date, today)
    pairing.decided_by = by
    pairing.decided_at = timezone.now()
    if side == VILLAGE_SIDE:
        pairing.secretary = by
    pairing.save(update_fields=["status", "start_date", "decided_by", "decided_at", "secretary"])
    audit.record(
        actor=by,
        action="pairing.accepted",
        obj=pairing,
        changes={"status": [old, pairing.status], "side": side, "start_date": pairing.start_date},
    )
    _notify_pairing(pairing, "accepted", _other(side))
    return pairing


@transaction.atomic
def decline_pairing(*, pairing_id: int, by, side: str, reason: str = "") -> Pairing:
    """The side that was asked declines, with an optional reason the other
    side sees. Mails the other side after commit. Safe to call twice."""
    pairing = _lock_pairing(pairing_id)
    if pairing.status == Pairing.Status.DECLINED:
        return pairing
    if _asked_side(pairing) != side:
        raise ActionRefused(_("This pairing is not waiting for your answer."))
    old = pairing.status
    pairing.status = Pairing.Status.DECLINED
    pairing.decided_by = by
    pairing.decided_at = timezone.now()
    pairing.reason = (reason or "").strip()
    pairing.save(update_fields=["status", "decided_by", "decided_at", "reason"])
    audit.record(
        actor=by,
        action="pairing.declined",
        obj=pairing,
        changes={"status": [old, pairing.status], "side": side, "reason": pairing.reason},
    )
    _notify_pairing(pairing, "declined", _other(side))
    return pairing


@transaction.atomic
def end_pairing(*, pairing_id: int, by, side: str | None, reason: str = "", today: date | None = None) -> Pairing:
    """End a pairing: either side ends an active one; the side that asked
    may withdraw a pending one (the other side declines it instead).
    ``side=None`` is the beat job ending a pairing past its end date. No
    installment is made after this; pledges already made follow their
    normal flow. Mails the other side (both, when the date ran out) after
    commit. Safe to call twice."""
    today = today or timezone.localdate()
    pairing = _lock_pairing(pairing_id)
    if pairing.status == Pairing.Status.ENDED:
        return pairing
    if pairing.status == Pairing.Status.DECLINED:
        raise ActionRefused(_("This pairing was declined; there is nothing to end."))
    if pairing.is_pending and side == _asked_side(pairing):
        raise ActionRefused(_("Accept or decline this pairing instead."))
    if side is None and not (pairing.end_date is not None and pairing.end_date < today):
        return pairing  # the beat only ends what ran out
    old = pairing.status
    pairing.status = Pairing.Status.ENDED
    pairing.ended_by = by
    pairing.ended_at = timezone.now()
    pairing.reason = (reason or "").strip()
    if pairing.end_date is None or pairing.end_date > today:
        pairing.end_date = max(today, pairing.start_date)
    pairing.save(update_fields=["status", "ended_by", "ended_at", "reason", "end_date"])
    audit.record(
        actor=by,
        action="pairing.ended",
        obj=pairing,
        changes={"status": [old, pairing.status], "side": side, "reason": pairing.reason, "end_date": pairing.end_date},
    )
    for to in (DONOR_SIDE, VILLAGE_SIDE) if side is None else (_other(side),):
        _notify_pairing(pairing, "ended", to)
    return pairing


@transaction.atomic
def post_pairing_update(*, pairing_id: int, by, text: str, photo=None) -> PairingUpdate:
    """The village posts news for the donor of an active pairing, with an
    optional photo (already cleaned by donations.photos.clean_photo). A photo
    of a household is refused unless it consents to photos; the donor's
    pages check the consent again each time they show one. Mails the donor
    after commit (without the text)."""
    text = (text or "").strip()
    if not text:
        raise ActionRefused(_("Write what happened."), field="text")
    pairing = _lock_pairing(pairing_id)
    if pairing.status != Pairing.Status.ACTIVE:
        raise ActionRefused(_("Updates are posted on an active pairing."))
    if photo is not None and not pairing.photos_visible_to_donor():
        raise ActionRefused(_("This household has not agreed to show photos of it."), field="photo")
    update = PairingUpdate(pairing=pairing, text=text, created_by=by)
    if photo is not None:
        update.photo.save(photo.name, photo, save=False)
    update.save()
    audit.record(
        actor=by, action="pairing.update_posted", obj=pairing, changes={"update": update.pk, "photo": bool(photo)}
    )
    _notify_pairing(pairing, "update", DONOR_SIDE)
    return update


def _installment_need_fields(pairing: Pairing, period: str, deadline: date) -> dict:
    """What the period's need says: written in the site's language, since a
    need's title is the same for every reader; public facts only."""
    with translation.override(settings.LANGUAGE_CODE):
        names = {"period": period, "who": pairing.for_label, "village": pairing.village.label}
        title = _("Pairing %(period)s: %(village)s, %(who)s") % names
        if pairing.is_money:
            description = (
                _(
                    "Monthly support of a paired donor for %(who)s, %(village)s. "
                    "The donor pledged it in full when the period began."
                )
                % names
            )
        else:
            description = (
                _(
                    "Seasonal support of a paired donor for %(who)s, %(village)s. "
                    "The donor pledged it in full when the season began."
                )
                % names
            )
    fields = {
        "household": pairing.household,
        "title": title[:80],
        "description": description,
        "deadline": deadline,
    }
    if pairing.is_money:
        fields.update(category=Need.Category.OTHER, kind=Need.Kind.MONEY, target_amount=pairing.amount)
    else:
        fields.update(
            category=Need.Category.DAILY,
            kind=Need.Kind.GOODS,
            item=pairing.item,
            quantity=pairing.quantity,
            unit=pairing.unit,
            unit_price=pairing.unit_price,
        )
    return fields


@transaction.atomic
def create_pairing_installment(*, pairing_id: int, today: date | None = None) -> PairingInstallment | None:
    """Turn the current period's commitment of an active pairing into a
    published need of the household (or village) and the donor's pledge of
    all of it; returns None when nothing is due or it is already made.

    Exactly once per period: the pairing's row is locked, so a second run
    waits and then finds the installment; the installment row is inserted
    before anything else and its (pairing, period) is unique, so even a
    caller that skipped the lock could not make a second. The need is
    posted in the name of the secretary who agreed to the pairing and
    published without a reviewer (``reviewed_by`` empty): the pairing was
    vetted when it was accepted. Everything is one transaction with its
    audit entries; mail (the secretary's "published" and "new pledge") goes
    after commit."""
    today = today or timezone.localdate()
    pairing = (
        Pairing.objects.select_for_update(of=("self",))
        .select_related("donor__user", "household", "village")
        .get(pk=pairing_id)
    )
    if not pairing.is_due_on(today):
        return None
    period = pairing.period_of(today)
    if PairingInstallment.objects.filter(pairing=pairing, period=period).exists():
        return None
    try:
        with transaction.atomic():
            installment = PairingInstallment.objects.create(pairing=pairing, period=period)
    except IntegrityError:
        return None
    deadline = period_end(today, pairing.commitment) + timedelta(days=PAIRING_GRACE_DAYS)
    need = create_need(
        by=pairing.secretary or pairing.created_by,
        village=pairing.village,
        submit=True,
        **_installment_need_fields(pairing, period, deadline),
    )
    need = publish_need(need_id=need.pk, by=None)
    gift = pledge(
        need_id=need.pk,
        donor=pairing.donor,
        amount=pairing.amount if pairing.is_money else None,
        quantity=None if pairing.is_money else pairing.quantity,
    )
    installment.need = need
    installment.pledge = gift
    installment.save(update_fields=["need", "pledge"])
    audit.record(
        actor=None,
        action="pairing.installment_created",
        obj=pairing,
        changes={"period": period, "installment": installment.pk, "need": need.pk, "pledge": gift.pk},
    )
    return installment
