"""Every change to a household keeps a field-by-field history — who, when,
old → new — that the village and the bureau can read; private values in it
are encrypted at rest, and the history cannot be edited."""

import json
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from households import services
from households.models import Household, HouseholdChange
from sun_commune.models import AuditEntry

from .register_support import english, valid_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def household(areas, secretary_a):
    return services.create_household(
        by=secretary_a,
        village=areas.village_a,
        head_name="黄国基",
        id_number=valid_id(1),
        phone="13800001111",
        address="三组5号",
        health_notes="腿伤",
        size=2,
        poverty_causes=["illness"],
    )


def changes(household, **filters) -> list[tuple]:
    rows = HouseholdChange.objects.filter(household=household, **filters).order_by("id")
    return [
        (
            c.kind,
            c.field,
            json.loads(c.old_value) if c.old_value else None,
            json.loads(c.new_value) if c.new_value else None,
        )
        for c in rows
    ]


def test_registration_leaves_a_first_history_row(household, secretary_a):
    (row,) = HouseholdChange.objects.filter(household=household)
    assert (row.kind, row.changed_by, row.field) == ("created", secretary_a, "")
    assert row.audit_entry.action == "household.created"


def test_each_changed_field_keeps_who_when_old_and_new(household, county_reviewer):
    services.update_household(
        household_id=household.pk,
        by=county_reviewer,
        head_name="黄国纪",
        phone="13800002222",
        status="lifted",
        lifted_out_year=2020,
        poverty_causes=["illness", "water"],
        size=2,  # unchanged: no row
    )

    assert changes(household, kind="changed") == [
        ("changed", "head_name", "黄国基", "黄国纪"),
        ("changed", "phone", "13800001111", "13800002222"),
        ("changed", "status", "poor", "lifted"),
        ("changed", "lifted_out_year", None, 2020),
        ("changed", "poverty_causes", ["illness"], ["illness", "water"]),
    ]
    rows = HouseholdChange.objects.filter(household=household, kind="changed")
    assert {r.changed_by for r in rows} == {county_reviewer}
    assert len({r.changed_at for r in rows}) == 1 and len({r.audit_entry_id for r in rows}) == 1
    assert rows[0].audit_entry.changes["head_name"] == ["(private)", "(private)"]  # the audit log keeps no value


def test_private_values_in_the_history_are_encrypted_at_rest(household, county_reviewer):
    services.update_household(household_id=household.pk, by=county_reviewer, phone="13800002222", health_notes="糖尿病")

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT old_value || new_value FROM households_householdchange WHERE household_id = %s", [household.pk]
        )
        raw = " ".join(row[0] for row in cursor.fetchall())
    for value in ("13800001111", "13800002222", "腿伤", "糖尿病"):
        assert value not in raw


def test_member_changes_and_consent_are_in_the_history(household, secretary_a):
    member = services.add_member(
        by=secretary_a, household_id=household.pk, name="李秀兰", relation="配偶", birth_year=1972, ability="full"
    )
    services.update_member(
        by=secretary_a,
        member_id=member.pk,
        name="李秀兰",
        relation="配偶",
        birth_year=1972,
        ability="partial",
        health="高血压",
    )
    services.remove_member(by=secretary_a, member_id=member.pk)
    services.update_household(household_id=household.pk, by=secretary_a, alias="黄家")
    services.record_consent(
        by=secretary_a, household_id=household.pk, subject="alias", granted=True, basis="签字同意书"
    )

    assert changes(household, kind="member_added") == [
        ("member_added", "name", None, "李秀兰"),
        ("member_added", "relation", None, "配偶"),
        ("member_added", "birth_year", None, 1972),
        ("member_added", "health", None, ""),
        ("member_added", "ability", None, "full"),
    ]
    assert changes(household, kind="member_changed") == [
        ("member_changed", "ability", "full", "partial"),
        ("member_changed", "health", "", "高血压"),
    ]
    removed = changes(household, kind="member_removed")
    assert ("member_removed", "name", "李秀兰", None) in removed and (
        "member_removed",
        "health",
        "高血压",
        None,
    ) in removed
    assert set(
        HouseholdChange.objects.filter(household=household, kind__startswith="member").values_list(
            "member_id", flat=True
        )
    ) == {member.pk}
    assert changes(household, kind="consent") == [("consent", "alias_consent", False, True)]
    actions = list(AuditEntry.objects.filter(object_id=str(household.pk)).values_list("action", flat=True))
    assert {
        "household.member_added",
        "household.member_updated",
        "household.member_removed",
        "household.consent_given",
    } <= set(actions)
    assert all("李秀兰" not in json.dumps(e.changes, ensure_ascii=False) for e in AuditEntry.objects.all())


def test_the_name_index_follows_the_members(household, secretary_a):
    member = services.add_member(by=secretary_a, household_id=household.pk, name="李秀兰", relation="配偶")
    assert "秀兰" in Household.objects.get(pk=household.pk).name_terms
    services.update_member(by=secretary_a, member_id=member.pk, name="李淑珍", relation="配偶")
    terms = Household.objects.get(pk=household.pk).name_terms
    assert "淑珍" in terms and "秀兰" not in terms
    services.update_household(household_id=household.pk, by=secretary_a, phone="13800009999")
    assert "淑珍" in Household.objects.get(pk=household.pk).name_terms  # an edit of the household keeps them
    services.remove_member(by=secretary_a, member_id=member.pk)
    assert "淑珍" not in Household.objects.get(pk=household.pk).name_terms


def test_the_history_cannot_be_edited_or_deleted(household):
    row = HouseholdChange.objects.get(household=household)
    with pytest.raises(DatabaseError), transaction.atomic():
        HouseholdChange.objects.filter(pk=row.pk).update(field="x")
    with pytest.raises(DatabaseError), transaction.atomic():
        HouseholdChange.objects.filter(pk=row.pk).delete()


@pytest.mark.parametrize("reader", ["secretary_a", "county_reviewer"])
def test_the_secretary_and_the_staff_read_the_history_page(reader, household, county_reviewer, request):
    services.update_household(household_id=household.pk, by=county_reviewer, phone="13800002222", housing="dilapidated")

    page = english(request.getfixturevalue(reader)).get(reverse("households:household-history", args=[household.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    assert "13800001111" in html and "13800002222" in html and "Dilapidated" in html and "county_reviewer" in html
    assert "Registered" in html


def test_changes_made_through_the_pages_are_in_the_history(household, secretary_a, client_of):
    client = client_of(secretary_a)
    form = {
        "head_name": "黄国基",
        "id_number": valid_id(1),
        "phone": "13800001111",
        "address": "四组1号",
        "health_notes": "腿伤",
        "size": "3",
        "poverty_causes": ["illness"],
        "status": "poor",
        "housing": "",
    }
    assert client.post(reverse("households:household-edit", args=[household.pk]), form).status_code == 302
    assert (
        client.post(
            reverse("households:member-create", args=[household.pk]),
            {"name": "黄小明", "relation": "子", "birth_year": "2005", "ability": "full", "health": ""},
        ).status_code
        == 302
    )
    assert (
        client.post(
            reverse("households:income-create", args=[household.pk]),
            {"year": "2025", "source": "wages", "amount": "5000.00"},
        ).status_code
        == 302
    )

    assert ("changed", "address", "三组5号", "四组1号") in changes(household)
    assert ("changed", "size", 2, 3) in changes(household)
    assert ("member_added", "name", None, "黄小明") in changes(household)
    assert household.income_records.get().amount == Decimal("5000.00")
    assert AuditEntry.objects.filter(action="income.recorded").exists()


def test_a_village_profile_change_is_audited(areas, secretary_a, county_reviewer, client_of):
    url = reverse("households:village-edit", args=[areas.village_a.code])
    assert (
        client_of(secretary_a)
        .post(url, {"population": "1234", "collective_income": "56000.00", "description": "种桃"})
        .status_code
        == 302
    )
    # The secretary's form has no "registered poor village" box; the staff's has.
    assert (
        client_of(county_reviewer)
        .post(url, {"population": "1234", "collective_income": "56000.00", "description": "种桃"})
        .status_code
        == 302
    )
    areas.village_a.refresh_from_db()
    assert not areas.village_a.is_poor_village
    entries = list(AuditEntry.objects.filter(action="village.profile_updated").order_by("id"))
    assert entries[0].changes["population"] == [None, 1234] and entries[0].actor == secretary_a
    assert entries[1].changes == {"is_poor_village": [True, False]} and entries[1].actor == county_reviewer
