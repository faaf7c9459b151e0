"""A need's life before and after its pledges: posted as a draft or for
review, changed, vetted (published or rejected), expired past its deadline,
closed; and the counters and status its pledges move.
"""

from datetime import date

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from households.models import Area
from sun_commune import audit, outbox, search
from sun_commune.errors import ActionRefused
from sun_commune.language import in_site_language
from sun_commune.money import quantize_yuan

from .. import ledger, tasks
from ..models import (
    LedgerAccount,
    LedgerTransaction,
    Need,
    Pledge,
)

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
            need.unit_price = quantize_yuan(need.unit_price)


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
    outbox.enqueue(tasks.notify_need_reviewed, need_id=need.pk)
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
    outbox.enqueue(tasks.notify_need_reviewed, need_id=need.pk)
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
