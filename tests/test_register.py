"""The household register: encryption at rest, exact lookup by ID number."""

import pytest
from django.db import IntegrityError, connection, transaction

from households.crypto import id_check_digit, id_hash
from households.models import Household
from households.services import create_household
from sun_commune.ids import is_valid as id_number_valid

pytestmark = pytest.mark.django_db

ID_NUMBER = "510723195201268173"  # a valid check digit, see below
PHONE = "13912345678"


def test_the_check_digit_follows_gb_11643():
    assert id_check_digit("11010519491231002") == "X"  # the standard's own example
    assert id_number_valid("11010519491231002x")
    assert not id_number_valid("110105194912310021")
    assert id_number_valid(ID_NUMBER)


def test_the_raw_columns_hold_no_id_or_phone_number(areas, secretary_a):
    household = create_household(
        by=secretary_a, village=areas.village_a, head_name="黄国基", id_number=ID_NUMBER, phone=PHONE
    )

    with connection.cursor() as cursor:
        cursor.execute("SELECT id_number, phone, id_hash FROM households_household WHERE id = %s", [household.pk])
        raw_id, raw_phone, raw_hash = cursor.fetchone()

    for raw in (raw_id, raw_phone, raw_hash):
        assert ID_NUMBER not in raw and PHONE not in raw
        assert ID_NUMBER[-8:] not in raw
    assert raw_id != raw_phone
    household = Household.objects.get(pk=household.pk)
    assert household.id_number == ID_NUMBER and household.phone == PHONE


def test_the_same_number_encrypts_differently_each_time(areas, secretary_a, secretary_b):
    create_household(by=secretary_a, village=areas.village_a, head_name="甲", phone=PHONE)
    create_household(by=secretary_b, village=areas.village_b, head_name="乙", phone=PHONE)

    with connection.cursor() as cursor:
        cursor.execute("SELECT phone FROM households_household")
        first, second = [row[0] for row in cursor.fetchall()]
    assert first != second  # no frequency analysis over the column


def test_an_id_number_is_found_exactly_through_its_keyed_hash(areas, secretary_a):
    household = create_household(by=secretary_a, village=areas.village_a, head_name="黄国基", id_number=ID_NUMBER)

    assert Household.objects.get(id_hash=id_hash(ID_NUMBER.lower())) == household
    assert not Household.objects.filter(id_hash=id_hash(ID_NUMBER[:-1] + "1")).exists()
    assert id_hash(ID_NUMBER) != id_hash(ID_NUMBER[:-1] + "1")


def test_the_database_refuses_a_second_household_with_the_same_id_number(areas, secretary_a, secretary_b):
    create_household(by=secretary_a, village=areas.village_a, head_name="甲", id_number=ID_NUMBER)

    # The service refuses it first with a message (tests/test_register_privacy.py);
    # underneath, the database refuses it whatever code writes the row.
    with pytest.raises(IntegrityError), transaction.atomic():
        Household(village=areas.village_b, head_name="乙", id_number=ID_NUMBER).save()
