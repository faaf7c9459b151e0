"""Changes to the household register: one function per action, atomic, with
an audit entry that keeps which fields changed (never their private values)."""

from django.db import transaction
from django.utils.translation import gettext as _

from sun_commune import audit
from sun_commune.errors import ActionRefused

from .models import Area, Household

FIELDS = (
    "alias",
    "alias_consent",
    "size",
    "poverty_causes",
    "story",
    "story_consent",
    "head_name",
    "id_number",
    "phone",
    "address",
    "health_notes",
)
PRIVATE = {"head_name", "id_number", "phone", "address", "health_notes"}


def _describe(field: str, old, new) -> list:
    """Old → new for the audit log; private values are never copied into it."""
    if field in PRIVATE:
        return ["(private)", "(private)"]
    return [old, new]


@transaction.atomic
def create_household(*, by, village: Area, **fields) -> Household:
    """Register a household in ``village``."""
    if village.level != Area.Level.VILLAGE:
        raise ActionRefused(_("A household belongs to a village."))
    household = Household(village=village, created_by=by, **{k: v for k, v in fields.items() if k in FIELDS})
    household.save()
    audit.record(
        actor=by,
        action="household.created",
        obj=household,
        changes={k: _describe(k, None, getattr(household, k))[1] for k in FIELDS},
    )
    return household


@transaction.atomic
def update_household(*, household_id: int, by, **fields) -> Household:
    """Change a household's fields; the audit entry names each changed field."""
    household = Household.objects.select_for_update().get(pk=household_id)
    changes = {}
    for key, value in fields.items():
        if key in FIELDS and getattr(household, key) != value:
            changes[key] = _describe(key, getattr(household, key), value)
            setattr(household, key, value)
    if not changes:
        return household
    household.save()
    audit.record(actor=by, action="household.updated", obj=household, changes=changes)
    return household


@transaction.atomic
def record_income(*, by, household_id: int, year: int, source: str, amount, note: str = "", origin: str | None = None):
    """Add an amount to a household's income for ``year``. With ``origin`` (a
    key naming what paid it, e.g. "coop-payment-17") the same income is
    recorded once however often this is called."""
    from .models import IncomeRecord

    if origin:
        existing = IncomeRecord.objects.filter(origin=origin).first()
        if existing is not None:
            return existing
    record = IncomeRecord.objects.create(
        household_id=household_id,
        year=year,
        source=source,
        amount=amount,
        note=note,
        origin=origin or None,
        recorded_by=by if getattr(by, "pk", None) else None,
    )
    audit.record(
        actor=by, action="income.recorded", obj=record, changes={"year": year, "source": source, "amount": amount}
    )
    return record
