"""The field-by-field history of a household: written by the services in the
transaction of each change, read by the village's secretary and the bureau
staff over it (never public: the old and new values may be private)."""

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import ConsentRecord, Household, HouseholdChange, HouseholdMember


def _dump(value) -> str:
    return json.dumps(value, ensure_ascii=False, cls=DjangoJSONEncoder)


def record(*, household, by, kind: str, changes: dict | None = None, member_id=None, entry=None) -> list:
    """Append one row per changed field (``changes``: field → (old, new)),
    or a single row without a field when nothing field-wise is to be said
    (a registration)."""
    at = timezone.now()
    by = by if by is not None and getattr(by, "pk", None) else None
    rows = [
        HouseholdChange(
            household=household,
            kind=kind,
            member_id=member_id,
            field=field,
            old_value=_dump(old),
            new_value=_dump(new),
            changed_by=by,
            changed_at=at,
            audit_entry=entry,
        )
        for field, (old, new) in (changes or {}).items()
    ]
    if not rows:
        rows = [
            HouseholdChange(
                household=household, kind=kind, member_id=member_id, changed_by=by, changed_at=at, audit_entry=entry
            )
        ]
    return HouseholdChange.objects.bulk_create(rows)


# --- Reading ------------------------------------------------------------------


def _labels(model) -> dict:
    return {f.name: f.verbose_name for f in model._meta.get_fields() if hasattr(f, "verbose_name")}


def _choices() -> dict:
    return {
        "status": dict(Household.Status.choices),
        "housing": dict(Household.Housing.choices),
        "poverty_causes": dict(Household.Cause.choices),
        "ability": dict(HouseholdMember.Ability.choices),
    }


def show(field: str, raw: str) -> str:
    """A stored value as a person reads it: labels for codes, yes/no, a dash
    for nothing."""
    if raw == "":
        return ""
    value = json.loads(raw)
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    labels = _choices().get(field)
    if labels is not None:
        if isinstance(value, list):
            return ", ".join(str(labels.get(v, v)) for v in value)
        return str(labels.get(value, value))
    return str(value)


def rows_for(changes) -> list[dict]:
    """History rows for the page, each with its field's label and the old and
    new values shown."""
    household_labels = _labels(Household)
    member_labels = _labels(HouseholdMember)
    consent_labels = {f"{value}_consent": label for value, label in ConsentRecord.Subject.choices}
    rows = []
    for change in changes:
        if change.member_id is not None:
            label = member_labels.get(change.field, change.field)
        else:
            label = consent_labels.get(change.field) or household_labels.get(change.field, change.field)
        rows.append(
            {
                "change": change,
                "field": str(label) if change.field else "",
                "old": show(change.field, change.old_value),
                "new": show(change.field, change.new_value),
            }
        )
    return rows
