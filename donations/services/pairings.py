"""Pairings of a donor with a household or a village.

A donor asks to pair with a household or a village, or the village's
secretary invites a donor; the other side accepts or declines; either side
may end it. The views check who may act on which pairing (the donor on their
own, the secretary on their village's) and say which side is acting; these
functions check the state. Every change locks the pairing's row first, so
that an answer, an ending and the beat job's installment queue one behind
the other.
"""

from datetime import date, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from households.models import Area
from sun_commune import audit
from sun_commune.errors import ActionRefused
from sun_commune.language import in_site_language
from sun_commune.money import quantize_yuan

from .. import tasks
from ..models import (
    Donor,
    Need,
    Pairing,
    PairingInstallment,
    PairingUpdate,
    period_end,
)
from .donors import find_donor
from .needs import create_need, publish_need
from .pledges import make_pledge

DONOR_SIDE = "donor"


VILLAGE_SIDE = "village"


# An installment's need stays open this long after its period ends.
PAIRING_GRACE_DAYS = 30


def _pairing_figures(*, commitment: str, amount, item: str, quantity, unit: str, unit_price) -> dict:
    """The commitment's figures, checked and tidied; the other kind's are cleared."""
    if commitment == Pairing.Commitment.MONEY:
        if amount is None:
            raise ActionRefused(_("Enter the amount given each month."), field="amount")
        amount = quantize_yuan(amount)
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
            unit_price = quantize_yuan(unit_price)
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
) -> Pairing | None:
    """A village's secretary invites a registered donor (found by username or
    e-mail) to pair with ``household`` or the village, on the terms given.
    Refused while that donor has an open pairing with it. Mails the donor
    after commit (public facts of the household only). Returns None, with
    nothing done, when no single donor has that login: the secretary is
    told the same either way, so the invitation cannot be used to learn who
    is registered."""
    donor = find_donor(donor_login, quietly=True)
    if donor is None:
        return None
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
    gift = make_pledge(
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
