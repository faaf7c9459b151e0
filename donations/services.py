"""Every action that changes a donor, a need or a pledge.

Each function is one business action: atomic, locking what it changes,
writing its audit entry in the same transaction, and enqueueing mail only
after commit. Rows are always locked in the same order — the need first,
then its pledge — so that concurrent actions cannot deadlock.

Access (role and area) is checked by the views through the access helpers
before they call in here; these functions check the state of things.
"""

import hashlib
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from households.models import Area
from sun_commune import audit
from sun_commune.errors import ActionRefused

from . import ledger, search, tasks
from .models import Donor, LedgerAccount, LedgerTransaction, Need, Pledge

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
            need.unit = _("hours") if need.kind == Need.Kind.SERVICE else _("pieces")
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
            purpose=_("Left-over of a closed need returned to the county pool"),
        )
    audit.record(actor=by, action="need.closed", obj=need, changes={"status": [old, "closed"], "returned": left})
    return need


# --- Pledges --------------------------------------------------------------


@transaction.atomic
def pledge(*, need_id: int, donor: Donor, quantity: int | None = None, amount=None, message: str = "") -> Pledge:
    """Pledge part or all of what a published need still lacks.

    Locks the need's row, so concurrent pledges queue and each sees what the
    one before left; the need's CHECK constraints refuse an over-pledge even
    if this code were wrong. Mails the village's secretary after commit.
    """
    need = Need.objects.select_for_update().get(pk=need_id)
    if not need.is_open_for_pledges:
        if need.status == Need.Status.FULLY_PLEDGED:
            raise ActionRefused(_("Sorry, this need has just been fully pledged."))
        raise ActionRefused(_("This need is not open for pledges."))
    if need.is_money:
        if amount is None:
            raise ActionRefused(_("Enter an amount."), field="amount")
        amount = to_yuan(amount)
        if amount <= 0:
            raise ActionRefused(_("Enter an amount of at least 0.01 yuan."), field="amount")
        if amount > need.remaining:
            raise ActionRefused(
                _("Only %(left)s yuan is still needed.") % {"left": need.remaining}, field="amount"
            )
        size = amount
        declared = amount
        quantity = None
    else:
        if not quantity or quantity <= 0:
            raise ActionRefused(_("Enter a quantity of at least 1."), field="quantity")
        if quantity > need.remaining:
            raise ActionRefused(
                _("Only %(left)s %(unit)s are still needed.") % {"left": need.remaining, "unit": need.unit},
                field="quantity",
            )
        size = quantity
        declared = to_yuan((need.unit_price or 0) * quantity)
        amount = None
    new = Pledge.objects.create(
        need=need, donor=donor, quantity=quantity, amount=amount, declared_value=declared, message=message.strip()
    )
    changed = _count(need, pledged=size) + _settle_status(need)
    need.save(update_fields=changed)
    audit.record(
        actor=donor.user,
        action="pledge.created",
        obj=new,
        changes={"need": need.pk, "quantity": quantity, "amount": amount, "need_status": need.status},
    )
    transaction.on_commit(lambda: tasks.notify_new_pledge.delay(pledge_id=new.pk))
    return new


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
        raise ActionRefused(_("Enter a quantity of at least 1. If nothing arrived, leave the pledge open."), field="quantity")
    if quantity > p.quantity:
        raise ActionRefused(
            _("Only %(n)s were pledged; enter at most %(n)s.") % {"n": p.quantity}, field="quantity"
        )
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
                purpose=_("Undirected gift to the pool"),
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
    if not need.is_public:
        raise ActionRefused(_("Only a published need can receive money."), field="need")
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
    txn = ledger.post(
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
    if voucher is not None:
        # The file is saved after the row exists; the row never changes again,
        # so the voucher's name is derived from the transaction id and hash.
        from django.core.files.storage import default_storage

        default_storage.save(voucher_path(txn), voucher)
    return txn


def voucher_path(txn: LedgerTransaction) -> str:
    return f"vouchers/{txn.pk}-{txn.voucher_sha256[:16]}"


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
    original = LedgerTransaction.objects.select_related("area").get(pk=transaction_id)
    if original.kind not in REVERSIBLE:
        raise ActionRefused(
            _("Receipts of a pledge are corrected on the pledge, not reversed here.")
            if original.pledge_id
            else _("A reversal cannot be reversed; record the entry again instead.")
        )
    if LedgerTransaction.objects.filter(reverses=original).exists():
        raise ActionRefused(_("This entry has already been reversed."))
    if original.need_id:
        Need.objects.select_for_update().filter(pk=original.need_id).first()
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
