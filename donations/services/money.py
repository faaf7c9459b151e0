"""Money through the ledger outside a pledge: undirected gifts into a pool,
allocations from a pool to a need, spending from a fund or a pool, and
reversals that correct a mistake.
"""

import hashlib
from datetime import date

from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from households.models import Area
from sun_commune import audit, outbox
from sun_commune.errors import ActionRefused
from sun_commune.language import in_site_language
from sun_commune.money import quantize_yuan

from .. import ledger, tasks
from ..models import (
    Donor,
    GiftClaim,
    LedgerTransaction,
    Need,
)
from .duties import AuditedRefusal, audits_refusals, same_person


@audits_refusals
@transaction.atomic
def record_gift(*, by, area: Area, amount, reference: str, occurred_on: date, donor: Donor | None = None):
    """Bureau staff record an undirected gift into the pool of their area,
    with the transfer's reference (recording the same transfer twice is
    refused, so a retry is safe).

    Staff cannot put a gift in a registered donor's name: the entry names no
    donor ("recorded by staff"), and a ``GiftClaim`` asks the donor, mailed
    after commit, to confirm or dispute it. Nobody records a gift from
    themselves (refused, with an audit entry)."""
    if donor is not None and same_person(by, donor):
        raise AuditedRefusal(
            _("You cannot record a gift in your own name; other bureau staff must record it."),
            actor=by,
            action="ledger.refused_own_gift",
            obj=donor,
            changes={"reference": (reference or "").strip(), "amount": str(amount)},
            field="donor",
        )
    reference = (reference or "").strip()
    if not reference:
        raise ActionRefused(_("Enter the transfer's reference."), field="reference")
    amount = quantize_yuan(amount)
    if amount <= 0:
        raise ActionRefused(_("Enter an amount of at least 0.01 yuan."), field="amount")
    if LedgerTransaction.objects.filter(reference=reference).exists():
        raise ActionRefused(_("This reference has already been recorded."), field="reference")
    try:
        with transaction.atomic():  # a concurrent use of the reference loses here, with a message
            gift = ledger.post(
                kind=LedgerTransaction.Kind.GIFT_IN,
                legs=[(ledger.pool(area), amount), (ledger.income_money(), -amount)],
                area=area,
                by=by,
                occurred_on=occurred_on,
                donor=None,
                reference=reference,
                purpose=in_site_language(gettext_lazy("Undirected gift to the pool")),
            )
    except IntegrityError:
        raise ActionRefused(_("This reference has already been recorded."), field="reference")
    if donor is not None:
        claim = GiftClaim.objects.create(transaction=gift, donor=donor, recorded_by=by)
        audit.record(actor=by, action="gift.claimed", obj=claim, changes={"transaction": gift.pk, "donor": donor.pk})
        outbox.enqueue(tasks.notify_gift_claim, claim_id=claim.pk)
    return gift


@audits_refusals
@transaction.atomic
def decide_gift_claim(*, claim_id: int, by, confirm: bool) -> GiftClaim:
    """The donor named by staff confirms the gift was theirs, or disputes it.
    Only that donor may; anyone else is refused with an audit entry. Deciding
    the same way twice changes nothing; a decision is not changed after."""
    claim = GiftClaim.objects.select_for_update().select_related("donor__user").get(pk=claim_id)
    if claim.donor.user_id != getattr(by, "pk", None):
        raise AuditedRefusal(
            _("Only the donor named can confirm or dispute this gift."),
            actor=by,
            action="gift.refused_decision",
            obj=claim,
            changes={"confirm": confirm},
        )
    wanted = GiftClaim.Status.CONFIRMED if confirm else GiftClaim.Status.DISPUTED
    if claim.status == wanted:
        return claim
    if claim.status != GiftClaim.Status.PENDING:
        raise ActionRefused(_("You have already answered for this gift."))
    claim.status = wanted
    claim.decided_at = timezone.now()
    claim.save(update_fields=["status", "decided_at"])
    audit.record(actor=by, action=f"gift.{wanted}", obj=claim, changes={"status": ["pending", wanted]})
    return claim


@transaction.atomic
def allocate(*, by, pool_area: Area, need_id: int, amount, occurred_on: date | None = None):
    """Move pool money to a need in the pool's area; from then on it is
    spent only on that need."""
    need = Need.objects.select_for_update().select_related("village").get(pk=need_id)
    if not pool_area.contains(need.village):
        raise ActionRefused(_("This need is outside the pool's area."), field="need")
    if need.status not in (Need.Status.PUBLISHED, Need.Status.FULLY_PLEDGED, Need.Status.FULFILLED):
        raise ActionRefused(_("Only an open or fulfilled need can receive money."), field="need")
    amount = quantize_yuan(amount)
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
    amount = quantize_yuan(amount)
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
def reverse_transaction(*, by, transaction_id: int, reason: str):
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
