"""Prepared statements (sun_commune/prepared.py): the same rows as the
plain query, planned once per connection, and a query that cannot be
prepared is still answered. Outside a transaction, as a page is served."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from households.models import Area
from portal.backends import load_user
from sun_commune import prepared as prepared_module
from sun_commune.prepared import prepared

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_prepared_select_gives_the_same_rows_and_is_prepared_once(areas, county_reviewer):
    plain = list(Area.objects.filter(parent=areas.yanting).order_by("code").values_list("code", "name"))
    with CaptureQueriesContext(connection) as ctx, prepared():
        first = list(Area.objects.filter(parent=areas.yanting).order_by("code").values_list("code", "name"))
        second = list(Area.objects.filter(parent=areas.zitong).order_by("code").values_list("code", "name"))
    sent = [q["sql"] for q in ctx.captured_queries]
    assert first == plain and second == [("510725101", "许州镇")]
    # One query each (the PREPARE goes with the first), both the same statement.
    assert len(sent) == 2 and sent[0].split()[:2] == sent[1].split()[:2] and sent[0].startswith("EXECUTE sun_")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = %s", [sent[0].split()[1]])
        assert cursor.fetchone() == (1,)
    with CaptureQueriesContext(connection) as ctx:
        user = load_user(county_reviewer.pk)
    assert user.staff_areas == [areas.yanting]
    assert [q["sql"].split()[0] for q in ctx.captured_queries] == ["EXECUTE"]


def test_a_query_that_cannot_be_prepared_is_sent_as_it_is(db):
    with CaptureQueriesContext(connection) as ctx, prepared(), connection.cursor() as cursor:
        for _ in range(2):
            cursor.execute("SELECT %s IS NULL", [None])  # the type of $1 cannot be inferred
            assert cursor.fetchone() == (True,)
    assert [q["sql"].split()[0] for q in ctx.captured_queries][-2:] == ["SELECT", "SELECT"]


def test_it_is_off_with_db_prepare_0_and_inside_transactions(areas, settings):
    settings.DB_PREPARE = False
    with CaptureQueriesContext(connection) as ctx, prepared():
        list(Area.objects.filter(parent=areas.yanting))
    assert ctx.captured_queries[0]["sql"].startswith("SELECT")
    settings.DB_PREPARE = True
    from django.db import transaction

    with transaction.atomic(), CaptureQueriesContext(connection) as ctx, prepared():
        list(Area.objects.filter(parent=areas.yanting))
    assert ctx.captured_queries[0]["sql"].startswith("SELECT")
    assert prepared_module.MAX_PER_CONNECTION > 0
