"""Changes to the household register: one function per action, atomic, with
an audit entry that keeps which fields changed (never their private values)."""

from django.db import transaction
from django.utils.translation import gettext as _

from sun_commune import audit
from sun_commune.errors import ActionRefused

from .models import Area, ConsentRecord, Household

FIELDS = (
    "alias",
    "size",
    "poverty_causes",
    "story",
    "status",
    "lifted_out_year",
    "housing",
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


CONSENTS = {f"{subject}_consent": subject for subject in ConsentRecord.Subject.values}


def _consents(fields: dict) -> dict[str, bool]:
    return {subject: bool(fields[key]) for key, subject in CONSENTS.items() if key in fields}


@transaction.atomic
def create_household(*, by, village: Area, consent_basis: str = "", **fields) -> Household:
    """Register a household in ``village``; each consent it gives is recorded
    with ``consent_basis``."""
    if village.level != Area.Level.VILLAGE:
        raise ActionRefused(_("A household belongs to a village."))
    _check_status(fields)
    household = Household(village=village, created_by=by, **{k: v for k, v in fields.items() if k in FIELDS})
    household.save()
    audit.record(
        actor=by,
        action="household.created",
        obj=household,
        changes={k: _describe(k, None, getattr(household, k))[1] for k in FIELDS},
    )
    for subject, granted in _consents(fields).items():
        if granted:
            record_consent(
                by=by,
                household_id=household.pk,
                subject=subject,
                granted=True,
                basis=consent_basis or _("given at registration"),
            )
    household.refresh_from_db()
    return household


def _check_status(fields: dict) -> None:
    if fields.get("status") == Household.Status.LIFTED and not fields.get("lifted_out_year"):
        raise ActionRefused(_("Enter the year the household was lifted out of poverty."), field="lifted_out_year")
    if fields.get("status") and fields["status"] != Household.Status.LIFTED:
        fields["lifted_out_year"] = None


@transaction.atomic
def record_consent(*, by, household_id: int, subject: str, granted: bool, basis: str) -> Household:
    """Record that the household gave or withdrew its consent to show
    ``subject``. Withdrawing hides it everywhere at once: every public page
    reads the household's current consent."""
    basis = (basis or "").strip()
    if not basis:
        raise ActionRefused(_("Say on what basis the consent was given or withdrawn."), field="consent_basis")
    if subject not in ConsentRecord.Subject.values:
        raise ValueError(subject)
    household = Household.objects.select_for_update().get(pk=household_id)
    ConsentRecord.objects.create(household=household, subject=subject, granted=granted, basis=basis, recorded_by=by)
    old = household.consent_for(subject)
    setattr(household, f"{subject}_consent", granted)
    household.save(update_fields=[f"{subject}_consent"])
    audit.record(
        actor=by,
        action="household.consent_given" if granted else "household.consent_withdrawn",
        obj=household,
        changes={f"{subject}_consent": [old, granted], "basis": basis},
    )
    return household


@transaction.atomic
def update_household(*, household_id: int, by, consent_basis: str = "", **fields) -> Household:
    """Change a household's fields; the audit entry names each changed field.
    A changed consent is recorded with ``consent_basis``."""
    household = Household.objects.select_for_update().get(pk=household_id)
    _check_status({"status": household.status, "lifted_out_year": household.lifted_out_year, **fields})
    if fields.get("status") and fields["status"] != Household.Status.LIFTED:
        fields["lifted_out_year"] = None
    changes = {}
    for key, value in fields.items():
        if key in FIELDS and getattr(household, key) != value:
            changes[key] = _describe(key, getattr(household, key), value)
            setattr(household, key, value)
    if changes:
        household.save()
        audit.record(actor=by, action="household.updated", obj=household, changes=changes)
    for subject, granted in _consents(fields).items():
        if granted != household.consent_for(subject):
            household = record_consent(
                by=by, household_id=household.pk, subject=subject, granted=granted, basis=consent_basis
            )
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
