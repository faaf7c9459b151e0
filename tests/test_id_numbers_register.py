"""The strict ID number rules (sun_commune.ids) in the register: the
household form never answers 500 and registers no look-alike twice, the
import names each bad row and column, and ``check_id_numbers`` lists the
rows written before the rules without changing or printing them."""

import io
import sys
import unicodedata

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from households import services
from households.crypto import encrypt
from households.models import Household, ImportJob
from sun_commune import ids

from .register_support import csv_bytes, english, household_row, messages_of, upload, valid_id, xlsx_bytes

pytestmark = pytest.mark.django_db

A = "510723101201"  # village A (Jinlu), in Yanting
NUMBER = valid_id(1)
# The 0 of every script's decimal digits but ASCII's (Arabic-Indic, Devanagari, full-width …).
ZEROS = sorted(
    c
    for c in map(chr, range(sys.maxunicode + 1))
    if c != "0" and unicodedata.category(c) == "Nd" and unicodedata.decimal(c) == 0
)


def in_script(zero: str, number: str = NUMBER) -> str:
    return "".join(chr(ord(zero) + int(d)) if d != "X" else d for d in number)


def with_check(first17: str) -> str:
    from stdnum.cn import ric

    return first17 + ric.calc_check_digit(first17 + "0")


BAD = {
    "wrong length": NUMBER[:17],
    "superscript": NUMBER[:5] + "²" + NUMBER[6:],
    "circled": NUMBER[:5] + "①" + NUMBER[6:],
    "Ethiopic": NUMBER[:5] + "፩" + NUMBER[6:],
    "Kharosthi": NUMBER[:5] + "\U00010a40" + NUMBER[6:],
    "zero width": NUMBER[:9] + "\u200b" + NUMBER[9:17],
    "right to left": "\u202e" + NUMBER[:17],
    "combining": NUMBER[:17] + "\u0301",
    "31 February": with_check("51072319700231001"),
    "month 13": with_check("51072319701301001"),
    "29 February 2023": with_check("51072320230229001"),
    "day 00": with_check("51072319700100001"),
    "future": with_check("51072329991231001"),
    "before 1900": with_check("11010518991231001"),
    "unknown county": with_check("11999919700101001"),
    "unknown province": with_check("99999919700101001"),
    "check digit": NUMBER[:17] + ("0" if NUMBER[17] != "0" else "1"),
} | {f"script {ord(z):X}": in_script(z) for z in ZEROS if z != "０"}


def household_form(**overrides) -> dict:
    form = {"head_name": "黄国基", "id_number": NUMBER, "size": "2", "status": "poor"}
    form.update(overrides)
    return form


def test_the_household_form_refuses_every_bad_number_with_a_message_and_no_500(areas, secretary_a):
    client = english(secretary_a)
    client.raise_request_exception = False
    assert len(BAD) > 75
    for label, value in BAD.items():
        response = client.post(reverse("households:household-create"), household_form(id_number=value))
        assert response.status_code == 200, label
        assert response.context["form"].errors["id_number"] == [ids.problem(value).message], label
    assert not Household.objects.exists()


def test_a_look_alike_of_a_registered_number_registers_nobody_twice(areas, secretary_a, secretary_b):
    services.create_household(by=secretary_a, village=areas.village_a, head_name="甲", id_number=NUMBER)
    client = english(secretary_b)
    full_width = in_script("０")
    response = client.post(reverse("households:household-create"), household_form(id_number=full_width))
    assert response.status_code == 200
    assert "already registered" in response.context["form"].errors["id_number"][0]
    for zero in ("٠", "۰", "०", "𝟎"):
        response = client.post(reverse("households:household-create"), household_form(id_number=in_script(zero)))
        assert response.status_code == 200 and response.context["form"].errors["id_number"]
    assert Household.objects.count() == 1


def test_full_width_input_is_kept_as_ascii(areas, secretary_a):
    response = english(secretary_a).post(
        reverse("households:household-create"), household_form(id_number=in_script("０"))
    )
    assert response.status_code == 302
    assert Household.objects.get().id_number == NUMBER


def test_the_service_refuses_a_bad_number_whoever_calls_it(areas, secretary_a):
    with pytest.raises(services.ActionRefused) as error:
        services.create_household(by=secretary_a, village=areas.village_a, head_name="甲", id_number=BAD["month 13"])
    assert error.value.field == "id_number"
    assert not Household.objects.exists()


def test_the_register_search_refuses_a_look_alike_with_a_message(areas, secretary_a):
    client = english(secretary_a)
    response = client.get(reverse("households:household-list"), {"id_number": in_script("٠")})
    assert response.status_code == 200
    assert response.context["form"].errors["id_number"]


@pytest.fixture
def staff(county_reviewer):
    return english(county_reviewer)


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_an_import_names_each_bad_row_and_its_column(areas, staff, kind, django_capture_on_commit_callbacks):
    rows = [household_row(A, 1, id_number=value) for value in BAD.values()]
    data = csv_bytes(rows) if kind == "csv" else xlsx_bytes(rows)

    job = upload(staff, areas.yanting, f"bad.{kind}", data, django_capture_on_commit_callbacks)

    assert job.status == ImportJob.Status.INVALID, messages_of(job)
    assert not Household.objects.exists()
    report = messages_of(job)
    assert job.error_count == len(BAD) == len(report)
    for number, value in enumerate(BAD.values(), start=2):
        assert f"{number}:身份证号:{ids.problem(value).message}" in report
    assert not any(value in str(job.errors) for value in BAD.values())


def test_a_file_with_a_look_alike_of_another_row_names_the_row(areas, staff, django_capture_on_commit_callbacks):
    rows = [household_row(A, 1), household_row(A, 2, id_number=in_script("０"))]

    job = upload(staff, areas.yanting, "twice.csv", csv_bytes(rows), django_capture_on_commit_callbacks)

    assert job.status == ImportJob.Status.INVALID
    assert messages_of(job) == ["3:身份证号:The same ID number as row 2 of this file."]


# --- manage.py check_id_numbers ---------------------------------------------------------


def legacy(household: Household, number: str, *, old_hash: bool = True) -> None:
    """Write ``number`` as the form did before the strict rules: encrypted,
    with the old hash (of the number as typed, upper-cased)."""
    import hashlib
    import hmac

    from django.conf import settings

    digest = hmac.new(settings.ID_HASH_KEY.encode(), number.strip().upper().encode(), hashlib.sha256).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE households_household SET id_number = %s, id_hash = %s WHERE id = %s",
            [encrypt(number), digest if old_hash else ids.id_hash(number), household.pk],
        )


def test_check_id_numbers_lists_what_the_rules_refuse_and_changes_nothing(areas, secretary_a):
    def make(n, **kwargs):
        return services.create_household(by=secretary_a, village=areas.village_a, head_name=f"户{n}", **kwargs)

    fine = make(1, id_number=NUMBER)
    none = make(2)
    impossible = make(3, id_number=valid_id(3))
    legacy(impossible, BAD["31 February"])
    arabic = make(4, id_number=valid_id(4))
    legacy(arabic, in_script("٠"))  # the same person as ``fine``
    full_width = make(5, id_number=valid_id(5))
    legacy(full_width, in_script("０", valid_id(6)))  # valid once made ASCII, but under its old hash
    before = list(Household.objects.order_by("pk").values_list("pk", "id_number", "id_hash", "updated_at"))

    out = io.StringIO()
    call_command("check_id_numbers", stdout=out)

    assert out.getvalue().splitlines() == [
        f"{impossible.public_id}\t{A}\t身份证号第 7 至 14 位是出生日期（年、月、日）：这不是一个真实的日期。",
        f"{arabic.public_id}\t{A}\t第 1 位是其他文字的数字，不是 0–9：请用数字 0–9 输入。",
        f"{arabic.public_id}\t{A}\t与户 {fine.public_id} 的身份证号相同。",
        f"{full_width.public_id}\t{A}\t须重新输入此身份证号，才能按号码查到该户。",
        "共 3 户需在其页面上更正（未作任何更改）。",
    ]
    after = list(Household.objects.order_by("pk").values_list("pk", "id_number", "id_hash", "updated_at"))
    assert after == before  # nothing changed
    for value in (NUMBER, valid_id(6), BAD["31 February"]):
        for part in (value, value[6:14], value[-8:], in_script("٠")):  # (the village code holds the region)
            assert part not in out.getvalue()
    assert none.public_id not in out.getvalue()


def test_a_listed_row_is_corrected_on_its_page(areas, secretary_a):
    household = services.create_household(by=secretary_a, village=areas.village_a, head_name="甲", id_number=NUMBER)
    legacy(household, BAD["month 13"])
    client = english(secretary_a)
    # Other fields stay editable while the number is left as it was ...
    response = client.post(
        reverse("households:household-edit", args=[household.pk]),
        household_form(head_name="乙", id_number=BAD["month 13"]),
    )
    assert response.status_code == 302
    # ... and a new number must pass the rules.
    response = client.post(
        reverse("households:household-edit", args=[household.pk]), household_form(id_number=BAD["31 February"])
    )
    assert response.status_code == 200 and response.context["form"].errors["id_number"]
    response = client.post(reverse("households:household-edit", args=[household.pk]), household_form())
    assert response.status_code == 302
    out = io.StringIO()
    call_command("check_id_numbers", stdout=out)
    assert out.getvalue().splitlines() == ["共 0 户需在其页面上更正（未作任何更改）。"]
