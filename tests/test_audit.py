"""Rule 8: every state change leaves an audit entry (who, when, what, from
where), and no entry can be edited or deleted, by the ORM or by raw SQL."""

from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.utils import Error as DatabaseError
from django.urls import reverse

from donations.models import Need, Pledge
from donations.services import needs, pledges
from sun_commune.errors import ActionRefused
from sun_commune.models import AuditEntry

from . import factories
from .factories import pledge


def entries_for(obj):
    return AuditEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk)
    ).order_by("id")


def last_entry(obj) -> AuditEntry:
    return entries_for(obj).last()


def assert_recorded(obj, action, actor):
    entry = last_entry(obj)
    assert (entry.action, entry.actor) == (action, actor)
    assert entry.at is not None
    return entry


def test_every_change_of_a_need_is_recorded(areas, secretary_a, county_reviewer):
    need = factories.make_need(village=areas.village_a, by=secretary_a)
    assert_recorded(need, "need.created", secretary_a)

    needs.submit_need(need_id=need.pk, by=secretary_a)
    assert_recorded(need, "need.submitted", secretary_a)

    needs.reject_need(need_id=need.pk, by=county_reviewer, reason="Say how many households")
    entry = assert_recorded(need, "need.rejected", county_reviewer)
    assert entry.changes["reason"] == "Say how many households"

    needs.update_need(need_id=need.pk, by=secretary_a, submit=True, title="十床电热毯")
    entry = assert_recorded(need, "need.updated", secretary_a)
    assert entry.changes["title"] == ["过冬的电热毯", "十床电热毯"]

    needs.publish_need(need_id=need.pk, by=county_reviewer)
    assert_recorded(need, "need.published", county_reviewer)

    assert list(entries_for(need).values_list("action", flat=True)) == [
        "need.created",
        "need.submitted",
        "need.rejected",
        "need.updated",
        "need.published",
    ]


def test_every_change_of_a_pledge_is_recorded(need_a, money_need_a, donor, secretary_a, county_reviewer):
    p = pledge(need_a, donor, 2)
    assert_recorded(p, "pledge.created", donor)

    pledges.mark_sent(pledge_id=p.pk, by=donor)
    assert_recorded(p, "pledge.sent", donor)

    pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=2)
    assert_recorded(p, "pledge.received", secretary_a)

    pledges.thank_donor(pledge_id=p.pk, by=secretary_a, message="谢谢您！")
    assert_recorded(p, "pledge.thanked", secretary_a)

    cancelled = pledge(need_a, donor, 1)
    pledges.cancel_pledge(pledge_id=cancelled.pk, by=donor)
    assert_recorded(cancelled, "pledge.cancelled", donor)

    money = pledge(money_need_a, donor, Decimal("20.00"))
    pledges.record_money_received(pledge_id=money.pk, by=county_reviewer, amount="20", reference="BOC-77")
    entry = assert_recorded(money, "pledge.money_received", county_reviewer)
    assert entry.changes["amount"] == "20.00"
    assert entry.changes["reference"] == "BOC-77"


def test_closing_is_recorded(need_a, donor, secretary_a):
    p = pledge(need_a, donor, 10)
    pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=10)
    needs.close_need(need_id=need_a.pk, by=secretary_a)
    assert_recorded(need_a, "need.closed", secretary_a)


def test_a_request_records_the_clients_address(need_a, donor, client_of):
    response = client_of(donor).post(
        reverse("donations:pledge-create", args=[need_a.pk]), {"quantity": "2"}, REMOTE_ADDR="203.0.113.7"
    )

    assert response.status_code == 302
    entry = last_entry(Pledge.objects.get(need=need_a))
    assert (entry.action, entry.actor, entry.ip_address) == ("pledge.created", donor, "203.0.113.7")


def test_an_action_outside_a_request_records_no_address(need_a, donor):
    p = pledge(need_a, donor, 2)

    assert last_entry(p).ip_address is None


def test_with_a_trusted_proxy_the_forwarded_address_is_recorded(need_a, donor, client_of, settings):
    settings.TRUSTED_PROXY_COUNT = 1

    client_of(donor).post(
        reverse("donations:pledge-create", args=[need_a.pk]),
        {"quantity": "1"},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="198.51.100.9, 198.51.100.23",
    )

    assert last_entry(Pledge.objects.get(need=need_a)).ip_address == "198.51.100.23"


def test_a_refused_action_leaves_no_entry(need_a, donor):
    count = AuditEntry.objects.count()

    with pytest.raises(ActionRefused):
        pledge(need_a, donor, 11)

    assert AuditEntry.objects.count() == count


@pytest.fixture
def entry(need_a):
    return AuditEntry.objects.filter(action="need.published").get()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE sun_commune_auditentry SET action = 'x'",
        "UPDATE sun_commune_auditentry SET changes = '{}'::jsonb WHERE id = %(id)s",
        "DELETE FROM sun_commune_auditentry",
        "DELETE FROM sun_commune_auditentry WHERE id = %(id)s",
    ],
)
def test_the_database_refuses_to_change_or_delete_an_entry(entry, sql):
    count = AuditEntry.objects.count()

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, {"id": entry.pk})

    assert AuditEntry.objects.count() == count
    assert AuditEntry.objects.get(pk=entry.pk).action == "need.published"


def test_the_orm_refuses_to_change_or_delete_an_entry(entry):
    entry.action = "x"
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        entry.delete()
    with pytest.raises(TypeError):
        AuditEntry.objects.filter(pk=entry.pk).update(action="x")
    with pytest.raises(TypeError):
        AuditEntry.objects.filter(pk=entry.pk).delete()

    assert AuditEntry.objects.get(pk=entry.pk).action == "need.published"


def test_expiry_is_recorded_without_an_actor(need_a, donor):
    p = pledge(need_a, donor, 3)
    Need.objects.filter(pk=need_a.pk).update(deadline=need_a.deadline.replace(year=2000))

    needs.expire_need(need_id=need_a.pk)

    assert_recorded(need_a, "need.expired", None)
    assert_recorded(p, "pledge.expired", None)
