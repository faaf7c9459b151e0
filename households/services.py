"""Changes to the household register: one function per action, atomic, with
an audit entry that keeps which fields changed (never their private values)
and a row of history per field (households.history) that keeps old → new,
encrypted, for the people who keep the register."""

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from sun_commune import audit, ids, outbox
from sun_commune.errors import ActionRefused
from sun_commune.language import in_site_language

from . import history, tasks
from .crypto import encrypt_bytes, id_hash
from .models import Area, ConsentRecord, Household, HouseholdChange, HouseholdMember, ImportJob, VillageProfile

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
MEMBER_FIELDS = ("name", "relation", "birth_year", "health", "ability")
MEMBER_PRIVATE = {"name", "health"}


def duplicate_id_message() -> str:
    return _(
        "A household with this ID number is already registered. Find it in the register by this ID number; "
        "if it is not in your area, ask the county bureau to check the register."
    )


def _describe(field: str, old, new, private=PRIVATE) -> list:
    """Old → new for the audit log; private values are never copied into it."""
    if field in private:
        return ["(private)", "(private)"]
    return [old, new]


CONSENTS = {f"{subject}_consent": subject for subject in ConsentRecord.Subject.values}


def _consents(fields: dict) -> dict[str, bool]:
    return {subject: bool(fields[key]) for key, subject in CONSENTS.items() if key in fields}


def _valid_id(fields: dict, *, current: str = "") -> None:
    """``fields["id_number"]`` made canonical, or refused with what is wrong
    with it. A number left as it was is not checked again: a row registered
    before the strict rules stays editable (``check_id_numbers`` lists it)."""
    if "id_number" not in fields:
        return
    value = ids.canonical(fields["id_number"])
    if value and value != current:
        try:
            value = ids.validate(value)
        except ids.IdProblem as problem:
            raise ActionRefused(problem.message, field="id_number") from None
    fields["id_number"] = value


def _refuse_duplicate_id(id_number: str, *, household_pk=None) -> None:
    digest = id_hash(id_number)
    if not digest:
        return
    others = Household.objects.filter(id_hash=digest)
    if household_pk is not None:
        others = others.exclude(pk=household_pk)
    if others.exists():
        raise ActionRefused(duplicate_id_message(), field="id_number")


def _save(household: Household, **kwargs) -> None:
    """Save; a household with the same ID number registered at the same
    moment by someone else is refused with a message, not a 500."""
    try:
        with transaction.atomic():
            household.save(**kwargs)
    except IntegrityError as error:
        if "id_hash" in str(error):
            raise ActionRefused(duplicate_id_message(), field="id_number")
        raise


@transaction.atomic
def create_household(*, by, village: Area, consent_basis: str = "", **fields) -> Household:
    """Register a household in ``village``; each consent it gives is recorded
    with ``consent_basis``. Writes the audit entry and a "registered" history
    row."""
    if village.level != Area.Level.VILLAGE:
        raise ActionRefused(_("A household belongs to a village."))
    _check_status(fields)
    _valid_id(fields)
    household = Household(village=village, created_by=by, **{k: v for k, v in fields.items() if k in FIELDS})
    _refuse_duplicate_id(household.id_number)
    household._member_names = []
    _save(household)
    entry = audit.record(
        actor=by,
        action="household.created",
        obj=household,
        changes={k: _describe(k, None, getattr(household, k))[1] for k in FIELDS},
    )
    history.record(household=household, by=by, kind=HouseholdChange.Kind.CREATED, entry=entry)
    for subject, granted in _consents(fields).items():
        if granted:
            record_consent(
                by=by,
                household_id=household.pk,
                subject=subject,
                granted=True,
                basis=consent_basis or in_site_language(gettext_lazy("given at registration")),
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
    reads the household's current consent. Appends a ConsentRecord, an audit
    entry and a history row."""
    basis = (basis or "").strip()
    if not basis:
        raise ActionRefused(_("Say on what basis the consent was given or withdrawn."), field="consent_basis")
    if subject not in ConsentRecord.Subject.values:
        raise ValueError(subject)
    household = Household.objects.select_for_update().get(pk=household_id)
    if granted and subject in ("alias", "story") and not getattr(household, subject).strip():
        raise ActionRefused(
            _("Enter the alias first: change the household, then record the consent.")
            if subject == "alias"
            else _("Enter the story first: change the household, then record the consent."),
            field="subject",
        )
    ConsentRecord.objects.create(household=household, subject=subject, granted=granted, basis=basis, recorded_by=by)
    old = household.consent_for(subject)
    setattr(household, f"{subject}_consent", granted)
    household.save(update_fields=[f"{subject}_consent"])
    entry = audit.record(
        actor=by,
        action="household.consent_given" if granted else "household.consent_withdrawn",
        obj=household,
        changes={f"{subject}_consent": [old, granted], "basis": basis},
    )
    history.record(
        household=household,
        by=by,
        kind=HouseholdChange.Kind.CONSENT,
        changes={f"{subject}_consent": (old, granted)},
        entry=entry,
    )
    return household


@transaction.atomic
def update_household(*, household_id: int, by, consent_basis: str = "", **fields) -> Household:
    """Change a household's fields; the audit entry names each changed field
    and the history keeps each one's old and new value. A changed consent is
    recorded with ``consent_basis``."""
    household = Household.objects.select_for_update().get(pk=household_id)
    _check_status({"status": household.status, "lifted_out_year": household.lifted_out_year, **fields})
    _valid_id(fields, current=household.id_number)
    if fields.get("status") and fields["status"] != Household.Status.LIFTED:
        fields["lifted_out_year"] = None
    changes, values = {}, {}
    for key, value in fields.items():
        if key in FIELDS and getattr(household, key) != value:
            changes[key] = _describe(key, getattr(household, key), value)
            values[key] = (getattr(household, key), value)
            setattr(household, key, value)
    if changes:
        if "id_number" in changes:
            _refuse_duplicate_id(household.id_number, household_pk=household.pk)
        _save(household)
        entry = audit.record(actor=by, action="household.updated", obj=household, changes=changes)
        history.record(household=household, by=by, kind=HouseholdChange.Kind.CHANGED, changes=values, entry=entry)
    for subject, granted in _consents(fields).items():
        if granted != household.consent_for(subject):
            household = record_consent(
                by=by, household_id=household.pk, subject=subject, granted=granted, basis=consent_basis
            )
    return household


# --- Members ------------------------------------------------------------------------


def _check_member(fields: dict) -> dict:
    fields = {k: v for k, v in fields.items() if k in MEMBER_FIELDS}
    for key in ("name", "relation", "health"):
        if key in fields:
            fields[key] = (fields[key] or "").strip()
    if "name" in fields and not fields["name"]:
        raise ActionRefused(_("Enter the member's name."), field="name")
    if "relation" in fields and not fields["relation"]:
        raise ActionRefused(_("Say how the member is related to the head of the household."), field="relation")
    year = fields.get("birth_year")
    if year is not None and not 1900 <= year <= timezone.localdate().year:
        raise ActionRefused(_("Enter a year of birth between 1900 and this year."), field="birth_year")
    return fields


def _member_changes(old: dict, new: dict) -> dict:
    return {k: _describe(k, old.get(k), new.get(k), MEMBER_PRIVATE) for k in new if old.get(k) != new.get(k)}


def _lock_member(member_id: int) -> tuple[Household, HouseholdMember]:
    """The member and its household, the household locked first (the order
    every member action takes, so two of them cannot deadlock)."""
    household_id = HouseholdMember.objects.values_list("household_id", flat=True).get(pk=member_id)
    household = Household.objects.select_for_update().get(pk=household_id)
    return household, HouseholdMember.objects.select_for_update().get(pk=member_id)


@transaction.atomic
def add_member(*, by, household_id: int, **fields) -> HouseholdMember:
    """Add a person to a household; the name index, the audit log and the
    history are updated in the same transaction."""
    fields = _check_member(fields)
    household = Household.objects.select_for_update().get(pk=household_id)
    member = HouseholdMember.objects.create(household=household, **fields)
    household.save(update_fields=["updated_at"])  # the member's name joins the name index
    values = {k: getattr(member, k) for k in MEMBER_FIELDS}
    entry = audit.record(
        actor=by,
        action="household.member_added",
        obj=household,
        changes={"member": member.pk, **_member_changes({}, values)},
    )
    history.record(
        household=household,
        by=by,
        kind=HouseholdChange.Kind.MEMBER_ADDED,
        member_id=member.pk,
        changes={k: (None, v) for k, v in values.items()},
        entry=entry,
    )
    return member


@transaction.atomic
def update_member(*, by, member_id: int, **fields) -> HouseholdMember:
    """Change a member's fields; audit entry and history as for a household."""
    fields = _check_member(fields)
    household, member = _lock_member(member_id)
    values = {}
    for key, value in fields.items():
        if getattr(member, key) != value:
            values[key] = (getattr(member, key), value)
            setattr(member, key, value)
    if values:
        member.save()
        if "name" in values:
            household.save(update_fields=["updated_at"])
        entry = audit.record(
            actor=by,
            action="household.member_updated",
            obj=household,
            changes={
                "member": member.pk,
                **_member_changes({k: v[0] for k, v in values.items()}, {k: v[1] for k, v in values.items()}),
            },
        )
        history.record(
            household=household,
            by=by,
            kind=HouseholdChange.Kind.MEMBER_CHANGED,
            member_id=member.pk,
            changes=values,
            entry=entry,
        )
    return member


@transaction.atomic
def remove_member(*, by, member_id: int) -> Household:
    """Take a person off a household (moved away, died, registered wrongly).
    The history keeps what the member's fields were."""
    household, member = _lock_member(member_id)
    values = {k: getattr(member, k) for k in MEMBER_FIELDS}
    member.delete()
    household.save(update_fields=["updated_at"])
    entry = audit.record(
        actor=by,
        action="household.member_removed",
        obj=household,
        changes={"member": member_id, **{k: _describe(k, v, None, MEMBER_PRIVATE)[0] for k, v in values.items()}},
    )
    history.record(
        household=household,
        by=by,
        kind=HouseholdChange.Kind.MEMBER_REMOVED,
        member_id=member_id,
        changes={k: (v, None) for k, v in values.items()},
        entry=entry,
    )
    return household


# --- Income -------------------------------------------------------------------------


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


# --- Villages -----------------------------------------------------------------------

PROFILE_FIELDS = ("population", "collective_income", "description")


@transaction.atomic
def update_village_profile(*, by, village_id: int, **fields) -> VillageProfile:
    """Change what a village publishes about itself (and, for bureau staff,
    whether it is a registered poor village). Writes an audit entry naming
    old → new: nothing here is private."""
    village = Area.objects.select_for_update().get(pk=village_id, level=Area.Level.VILLAGE)
    profile, _created = VillageProfile.objects.select_for_update().get_or_create(village=village)
    changes = {}
    for key in PROFILE_FIELDS:
        if key in fields and getattr(profile, key) != fields[key]:
            changes[key] = [getattr(profile, key), fields[key]]
            setattr(profile, key, fields[key])
    if changes:
        profile.save()
    if "is_poor_village" in fields and village.is_poor_village != fields["is_poor_village"]:
        changes["is_poor_village"] = [village.is_poor_village, fields["is_poor_village"]]
        village.is_poor_village = fields["is_poor_village"]
        village.save(update_fields=["is_poor_village"])
    if changes:
        audit.record(actor=by, action="village.profile_updated", obj=village, changes=changes)
    return profile


# --- Exports and imports ------------------------------------------------------------------------


@transaction.atomic
def record_export(*, by, area: Area, filters: dict, rows: int):
    """Write the audit entry of an export of the register (a download of
    private data): who, which filters, how many households. The name or ID
    number searched for is not kept, only that there was one."""
    return audit.record(actor=by, action="household.exported", obj=area, changes={**filters, "rows": rows})


@transaction.atomic
def start_import(*, by, area: Area, filename: str, data: bytes, language: str = "", ip_address=None) -> ImportJob:
    """Keep an uploaded file (encrypted) as an import job for ``area`` and
    queue its check and import after commit (households.tasks.run_import)."""
    job = ImportJob.objects.create(
        area=area,
        filename=filename[:255],
        content=encrypt_bytes(data),
        created_by=by,
        ip_address=ip_address,
        language=language[:8],
    )
    audit.record(
        actor=by,
        action="household_import.started",
        obj=job,
        changes={"area": area.code, "file": job.filename, "bytes": len(data)},
    )
    outbox.enqueue(tasks.run_import, job_id=job.pk)
    return job
