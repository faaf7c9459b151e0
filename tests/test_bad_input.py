"""Rule 7: bad input gets a clear, translated message next to its field and
changes nothing."""

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext

from donations.models import Need, Pledge
from donations.services import pledges
from households.models import Household
from sun_commune.models import AuditEntry

from . import factories
from .factories import pledge


def everything():
    """What a refused form must leave as it was."""
    return (
        AuditEntry.objects.count(),
        list(Need.objects.order_by("pk").values_list("status", "pledged_quantity", "pledged_amount", "title")),
        list(Pledge.objects.order_by("pk").values_list("status", "received_quantity", "received_amount", "thanks")),
        list(Household.objects.order_by("pk").values_list("head_name", "id_number")),
    )


def assert_refused(response, field, message=None, status=200):
    """The form came back with an error on ``field`` (in the site's language,
    Chinese), shown under that field."""
    assert response.status_code == status
    errors = response.context["form"].errors
    assert errors.get(field), f"no error on {field}: {errors.as_data()}"
    html = response.content.decode()
    assert f'id="error_1_id_{field}"' in html  # crispy's error block of that field
    if message is not None:
        with translation.override("zh-hans"):
            expected = gettext(message)
        assert expected in errors[field]
        assert expected in html


def need_post(**overrides):
    data = {
        "title": "电视机",
        "description": "村活动室需要一台电视",
        "category": "daily",
        "kind": "goods",
        "item": "电视机",
        "quantity": "1",
        "unit": "台",
        "unit_price": "1500",
        "target_amount": "",
        "deadline": (timezone.localdate() + datetime.timedelta(days=20)).isoformat(),
        "household": "",
        "submit": "1",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"item": ""}, "item", "Name the item that is needed."),
        ({"quantity": ""}, "quantity", "Enter how many are needed."),
        ({"deadline": "2020-01-01"}, "deadline", "The deadline has already passed."),
        ({"deadline": "not a date"}, "deadline", None),
        (
            {"kind": "money", "quantity": "", "item": "", "target_amount": ""},
            "target_amount",
            "Enter the amount of money needed.",
        ),
        ({"title": ""}, "title", None),
        ({"category": "nonsense"}, "category", None),
    ],
)
def test_a_bad_need_is_refused_next_to_the_field(secretary_a, client_of, overrides, field, message):
    before = everything()

    response = client_of(secretary_a).post(reverse("donations:need-create"), need_post(**overrides))

    assert_refused(response, field, message)
    assert everything() == before


def test_a_good_need_is_accepted(secretary_a, client_of):
    response = client_of(secretary_a).post(reverse("donations:need-create"), need_post())

    assert response.status_code == 302
    need = Need.objects.get()
    assert (need.status, need.item, need.quantity) == (Need.Status.SUBMITTED, "电视机", 1)


def test_a_household_of_another_village_is_refused(areas, secretary_a, client_of):
    other = factories.HouseholdFactory(village=areas.village_b)
    before = everything()

    response = client_of(secretary_a).post(reverse("donations:need-create"), need_post(household=str(other.pk)))

    assert_refused(response, "household")
    assert everything() == before


@pytest.mark.parametrize("quantity", ["0", "-3", "abc", "", "1.5"])
def test_a_bad_quantity_is_refused(need_a, donor, client_of, quantity):
    before = everything()

    response = client_of(donor).post(reverse("donations:pledge-create", args=[need_a.pk]), {"quantity": quantity})

    assert_refused(response, "quantity", status=400)
    assert everything() == before


def test_a_quantity_above_what_remains_is_refused_next_to_the_field(need_a, donor, other_donor, client_of):
    pledge(need_a, other_donor, 8)
    before = everything()

    response = client_of(donor).post(reverse("donations:pledge-create", args=[need_a.pk]), {"quantity": "3"})

    with translation.override("zh-hans"):
        expected = gettext("Only %(left)s %(unit)s are still needed.") % {"left": 2, "unit": "床"}
    assert_refused(response, "quantity", status=400)
    assert expected in response.context["form"].errors["quantity"]
    assert everything() == before


@pytest.mark.parametrize("amount", ["0", "-5", "x", "", "0.001", "1e9", "1000.01"])
def test_a_bad_amount_is_refused(money_need_a, donor, client_of, amount):
    before = everything()

    response = client_of(donor).post(reverse("donations:pledge-create", args=[money_need_a.pk]), {"amount": amount})

    assert_refused(response, "amount", status=400)
    assert everything() == before


def test_a_rejection_needs_a_reason(areas, secretary_a, county_reviewer, client_of):
    need = factories.make_need(village=areas.village_a, by=secretary_a, submit=True)
    before = everything()

    response = client_of(county_reviewer).post(
        reverse("donations:need-review", args=[need.pk]), {"decision": "reject", "reason": "  "}
    )

    assert_refused(response, "reason")
    assert everything() == before
    need.refresh_from_db()
    assert need.status == Need.Status.SUBMITTED


SHAPE = "An ID number has 18 characters: 17 digits and a digit or X."
CHECK_DIGIT = "The check digit of this ID number is wrong; please check each digit."
NOT_ALLOWED = (
    "Character %(position)s is not allowed: an ID number holds only the digits 0–9, and X as its last character."
)
OTHER_SCRIPT = (
    "Character %(position)s is a digit of another script, not one of 0–9: type the number with the digits 0–9."
)


@pytest.mark.parametrize(
    "id_number, message",
    [
        ("12345", SHAPE),
        ("51072319770731773Y", (NOT_ALLOWED, 18)),
        ("5107231977073177311", None),  # too long: Django's own max-length message
        ("ABCDEFGHIJKLMNOPQR", (NOT_ALLOWED, 1)),
        ("110105194912310021", CHECK_DIGIT),  # the standard's example with a wrong check digit
        ("٥١٠٧٢٣١٩٤٩١٢٣١٠٠٢X", (OTHER_SCRIPT, 1)),  # Arabic-Indic digits pass str.isdigit()
        ("110105194902310026", None),  # 31 February, with the right check digit (sun_commune.ids)
    ],
)
def test_a_bad_id_number_is_refused(secretary_a, client_of, id_number, message):
    before = everything()
    if isinstance(message, tuple):
        with translation.override("zh-hans"):
            message = gettext(message[0]) % {"position": message[1]}

    response = client_of(secretary_a).post(
        reverse("households:household-create"), {"head_name": "张三", "id_number": id_number, "size": "3"}
    )

    assert_refused(response, "id_number", message)
    assert everything() == before


def test_a_good_id_number_is_accepted(secretary_a, client_of):
    response = client_of(secretary_a).post(
        reverse("households:household-create"), {"head_name": "张三", "id_number": "11010519491231002x", "size": "3"}
    )

    assert response.status_code == 302
    assert Household.objects.get().id_number == "11010519491231002X"


def test_an_alias_without_text_is_refused(secretary_a, client_of):
    before = everything()

    response = client_of(secretary_a).post(
        reverse("households:household-create"), {"head_name": "张三", "size": "3", "alias_consent": "on"}
    )

    assert_refused(response, "alias", "Enter the alias the household agreed to show.")
    assert everything() == before


@pytest.mark.parametrize("quantity", ["0", "11", "x"])
def test_a_bad_arrival_is_refused(need_a, donor, secretary_a, client_of, quantity):
    p = pledge(need_a, donor, 10)
    before = everything()

    response = client_of(secretary_a).post(reverse("donations:pledge-confirm", args=[p.pk]), {"quantity": quantity})

    assert_refused(response, "quantity")
    assert everything() == before


def test_thanks_need_words(need_a, donor, secretary_a, client_of):
    p = pledge(need_a, donor, 2)
    pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=2)
    before = everything()

    response = client_of(secretary_a).post(reverse("donations:pledge-thank", args=[p.pk]), {"message": ""})

    assert_refused(response, "message")
    assert everything() == before


@pytest.mark.parametrize(("amount", "reference"), [("0", "R-1"), ("100.01", "R-1"), ("50", ""), ("abc", "R-1")])
def test_a_bad_money_record_is_refused(money_need_a, donor, county_reviewer, client_of, amount, reference):
    p = pledge(money_need_a, donor, Decimal("100.00"))
    before = everything()

    response = client_of(county_reviewer).post(
        reverse("donations:money-record", args=[p.pk]), {"amount": amount, "reference": reference}
    )

    assert_refused(response, "reference" if not reference else "amount")
    assert everything() == before


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"kind": "money", "target_amount": "500", "quantity": "5", "unit_price": "3"}, (None, Decimal("500.00"))),
        ({"kind": "goods", "target_amount": "500", "quantity": "5"}, (5, None)),
    ],
)
def test_a_figure_left_over_from_another_kind_is_dropped(secretary_a, client_of, overrides, expected):
    # The secretary typed a quantity, then chose "money" (or the other way round).
    response = client_of(secretary_a).post(reverse("donations:need-create"), need_post(**overrides))

    assert response.status_code == 302, response.context["form"].errors
    need = Need.objects.get()
    assert (need.quantity, need.target_amount) == expected


def test_a_second_household_with_the_same_id_number_is_refused_anywhere(secretary_a, secretary_b, client_of):
    """The keyed hash keeps an ID number unique across every village."""
    first = client_of(secretary_a).post(
        reverse("households:household-create"), {"head_name": "张三", "id_number": "11010519491231002X", "size": "3"}
    )
    assert first.status_code == 302
    second = client_of(secretary_b).post(
        reverse("households:household-create"), {"head_name": "李四", "id_number": "11010519491231002x", "size": "2"}
    )
    assert second.status_code == 200
    assert "id_number" in second.context["form"].errors
    assert Household.objects.count() == 1
