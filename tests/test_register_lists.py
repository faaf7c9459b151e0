"""Finding households (by name, with one, two or more characters and partial
names, of the head or a member; by exact ID number; by area, status and
cause), the reports, and a village's public page."""

from decimal import Decimal

import pytest
from django.urls import reverse

from donations.models import AreaLedgerTotal
from households import reports, services
from households.models import Household, VillageFigures
from households.tasks import refresh_register_figures
from sun_commune import pagecache
from sun_commune.search import index_terms

from . import factories
from .register_support import english, valid_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def register(areas, secretary_a, secretary_b):
    def make(by, village, n, head, **fields):
        return services.create_household(by=by, village=village, head_name=head, id_number=valid_id(n), **fields)

    households = {
        "wjg": make(secretary_a, areas.village_a, 1, "王建国", poverty_causes=["illness"], size=3),
        "wm": make(secretary_a, areas.village_a, 2, "王明", poverty_causes=["skills"], size=1),
        "oy": make(
            secretary_b,
            areas.village_b,
            3,
            "欧阳秀英",
            poverty_causes=["illness", "water"],
            size=2,
            status="lifted",
            lifted_out_year=2020,
        ),
        "lm": make(secretary_b, areas.village_b, 4, "李明", poverty_causes=["labour"], size=4, status="monitored"),
    }
    services.add_member(by=secretary_b, household_id=households["lm"].pk, name="张秀兰", relation="配偶")
    return households


def found(client, **query) -> set[str]:
    pagecache.changed()  # the list rendered now, not a kept one: its context is read
    response = client.get(reverse("households:household-list"), query)
    assert response.status_code == 200
    return {h.head_name for h in response.context["page"].rows}


@pytest.mark.parametrize(
    "query,expected",
    [
        ("王建国", {"王建国"}),  # a whole three-character name
        ("王明", {"王明"}),  # a two-character name
        ("建国", {"王建国"}),  # a part of a name
        ("王", {"王建国", "王明"}),  # one character
        ("欧阳", {"欧阳秀英"}),  # a double surname
        ("秀兰", {"李明"}),  # a member's name finds the household
        ("秀", {"欧阳秀英", "李明"}),
        ("王国", set()),  # characters of a name, but not next to each other
        ("李 明", {"李明"}),  # every word must match
    ],
)
def test_names_are_found_by_whole_and_partial_names(query, expected, register, county_reviewer, client_of):
    assert found(client_of(county_reviewer), q=query) == expected


def test_a_long_name_is_not_found_in_pieces_of_two_names(areas, secretary_a, county_reviewer, client_of):
    household = services.create_household(by=secretary_a, village=areas.village_a, head_name="王建明")
    services.add_member(by=secretary_a, household_id=household.pk, name="李建国", relation="子")
    client = client_of(county_reviewer)

    assert found(client, q="王建国") == set()  # 王建 and 建国 are there, but in two names
    assert found(client, q="李建国") == found(client, q="建国") == {"王建明"}


def test_a_name_searched_in_a_county_is_one_lookup_in_the_name_index(
    areas, register, county_reviewer, other_county_reviewer, client_of
):
    """The reviewer's county is said through the index of names and area
    codes when a name is searched (the same households as by the code at its
    depth, which planned the query anew each time), and only then."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def list_query(client, **query) -> str:
        with CaptureQueriesContext(connection) as ctx:
            found(client, **query)
        return next(q["sql"] for q in ctx.captured_queries if "name_terms" in q["sql"] or "LIMIT 51" in q["sql"])

    client = client_of(county_reviewer)
    searched = list_query(client, q="王明")
    assert '"area_codes" @> ' in searched and '"area_codes"[' not in searched
    assert '"area_codes" @> ' in list_query(client, q="秀英", area=areas.qianfeng.code)
    assert '"area_codes"[' in list_query(client)  # the list itself walks (area_codes[depth], id)
    assert found(client, q="王明") == {"王明"}
    assert found(client_of(other_county_reviewer), q="王明") == set()  # still only their own county


def test_an_id_number_is_found_exactly(register, county_reviewer, client_of):
    client = english(county_reviewer)
    assert found(client, id_number=valid_id(3)) == {"欧阳秀英"}
    assert found(client, id_number=valid_id(3).lower()) == {"欧阳秀英"}
    response = client.get(reverse("households:household-list"), {"id_number": valid_id(3)[:-1] + "0"})
    assert "The check digit of this ID number is wrong" in response.content.decode()


def test_filters_by_area_status_and_cause(areas, register, county_reviewer, client_of):
    client = client_of(county_reviewer)
    assert found(client, area=areas.qianfeng.code) == {"欧阳秀英", "李明"}
    assert found(client, area=areas.village_a.code) == {"王建国", "王明"}
    assert found(client, status="monitored") == {"李明"}
    assert found(client, cause="illness") == {"王建国", "欧阳秀英"}
    assert found(client, cause="illness", status="lifted", area=areas.qianfeng.code, q="秀英") == {"欧阳秀英"}


def test_a_secretary_finds_only_the_own_village(register, secretary_a, client_of):
    assert found(client_of(secretary_a)) == {"王建国", "王明"}
    assert found(client_of(secretary_a), q="秀") == set()


def test_the_list_pages_with_a_keyset_and_a_constant_number_of_queries(
    areas, county_reviewer, client_of, django_assert_max_num_queries
):
    Household.objects.bulk_create(
        [
            Household(
                village=areas.village_a,
                head_name=f"户主{n}",
                public_id=f"HBULK{n:05d}",
                name_terms=index_terms(f"户主{n}"),
            )
            for n in range(70)
        ]
    )
    client = client_of(county_reviewer)
    with django_assert_max_num_queries(12):
        first = client.get(reverse("households:household-list"), {"q": "户主"})
    assert len(first.context["page"].rows) == 50 and first.context["page"].next_cursor
    second = client.get(reverse("households:household-list"), {"q": "户主", "after": first.context["page"].next_cursor})
    assert len(second.context["page"].rows) == 20 and second.context["page"].next_cursor is None
    assert not {h.id for h in first.context["page"].rows} & {h.id for h in second.context["page"].rows}


# --- Reports ------------------------------------------------------------------------------


@pytest.fixture
def incomes(register, secretary_a, secretary_b):
    """Last year and this year's income: three households with both, one with
    this year's only."""

    def income(household, year, amount, source="wages"):
        services.record_income(
            by=secretary_a, household_id=household.pk, year=year, source=source, amount=Decimal(amount)
        )

    income(register["wjg"], 2024, "10000.00")
    income(register["wjg"], 2025, "12000.00")
    income(register["wjg"], 2025, "2000.00", source="dividend")  # +4000 in all
    income(register["oy"], 2024, "8000.00")
    income(register["oy"], 2025, "11000.00")  # +3000
    income(register["lm"], 2024, "6000.00")
    income(register["lm"], 2025, "11000.00")  # +5000
    income(register["wm"], 2025, "7000.00")  # no income recorded last year: not compared
    return register


def test_the_report_counts_households_by_status_and_cause_per_area(areas, register):
    refresh_register_figures(area_id=areas.yanting.pk)

    report = reports.area_report(areas.yanting, 2025)

    rows = {r["area"].code: r for r in report["rows"]}
    assert [r["area"] for r in report["rows"]] == [areas.huangxi, areas.qianfeng]
    huangxi, qianfeng = rows[areas.huangxi.code], rows[areas.qianfeng.code]
    assert (huangxi["households"], huangxi["persons"]) == (2, 4)
    assert dict(huangxi["by_status"]) == {"poor": 2}
    assert dict(qianfeng["by_status"]) == {"lifted": 1, "monitored": 1}
    assert dict(report["total"]["by_cause"]) == {"illness": 2, "skills": 1, "water": 1, "labour": 1}
    assert report["total"]["households"] == 4 and report["computed_at"] is not None


def test_income_this_year_against_last_year_per_household_and_per_person(areas, incomes, county_reviewer):
    refresh_register_figures(area_id=areas.city.pk)

    total = reports.area_report(areas.yanting, 2025)["total"]

    # "783 households, about 4,000 yuan more on average": here 3 households, 4,000 more.
    assert total["both_households"] == 3
    assert total["both_last_per_household"] == Decimal("8000.00")
    assert total["both_per_household"] == Decimal("12000.00")
    assert total["increase_per_household"] == Decimal("4000.00")
    assert total["both_persons"] == 3 + 2 + 4
    assert total["increase_per_person"] == Decimal("1333.33")  # 12,000 more over 9 people
    assert total["income_households"] == 4 and total["per_household"] == Decimal("10750.00")  # 43,000 / 4
    assert total["per_person"] == Decimal("4300.00")  # 43,000 / 10 people

    page = (
        english(county_reviewer)
        .get(reverse("households:report"), {"area": areas.yanting.code, "year": 2025})
        .content.decode()
    )
    assert (
        "3 households with income recorded in both 2024 and 2025 had ¥4,000.00 more on average (¥1,333.33 more per person)"
        in page
    )
    assert "Huangxi" in page and "Qianfeng" in page


def test_the_figures_follow_the_register_when_counted_again(
    areas, register, secretary_a, county_reviewer, client_of, django_capture_on_commit_callbacks
):
    refresh_register_figures(area_id=areas.yanting.pk)
    services.update_household(household_id=register["wm"].pk, by=secretary_a, status="lifted", lifted_out_year=2025)

    with django_capture_on_commit_callbacks(execute=True):
        response = client_of(county_reviewer).post(
            reverse("households:report-refresh"), {"area": areas.village_a.code, "year": "2025"}
        )
    assert response.status_code == 302

    assert VillageFigures.objects.get(village=areas.village_a).by_status == {"poor": 1, "lifted": 1}


# --- The village's public page -------------------------------------------------------------------


def test_a_village_page_shows_its_profile_needs_and_money(
    areas, register, secretary_a, county_reviewer, donor, anonymous
):
    secretary_a.first_name = "刘晓明"
    secretary_a.save()
    services.update_village_profile(
        by=secretary_a,
        village_id=areas.village_a.pk,
        population=812,
        collective_income=Decimal("56000.00"),
        description="金鹿村种桃。",
    )
    open_need = factories.published_need(
        village=areas.village_a, by=secretary_a, reviewer=county_reviewer, title="修路的水泥"
    )
    done = factories.published_need(
        village=areas.village_a, by=secretary_a, reviewer=county_reviewer, title="过冬的棉被", quantity=1
    )
    p = factories.pledge(done, donor, 1)
    from donations.services import pledges

    pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=1)
    AreaLedgerTotal.objects.create(
        area=areas.village_a, money_in=Decimal("1500.00"), goods_in=Decimal("80.00"), money_out=Decimal("600.00")
    )

    response = english().get(reverse("village-public", args=[areas.village_a.code]))

    html = response.content.decode()
    assert response.status_code == 200
    for text in (
        "Jinlu",
        "Registered poor village",
        "刘晓明",
        "812",
        "¥56,000.00",
        "金鹿村种桃。",
        "¥1,500.00",
        "¥80.00",
        "¥600.00",
    ):
        assert text in html, text
    opened = html.index('id="open-needs"')
    fulfilled = html.index('id="fulfilled-needs"')
    assert opened < html.index("修路的水泥") < fulfilled < html.index("过冬的棉被")
    assert "王建国" not in html and "王明" not in html
    need_page = anonymous.get(reverse("donations:need-detail", args=[open_need.pk])).content.decode()
    assert reverse("village-public", args=[areas.village_a.code]) in need_page  # the breadcrumb links it


def test_only_a_village_has_a_village_page(areas, anonymous):
    assert anonymous.get(reverse("village-public", args=[areas.huangxi.code])).status_code == 404
    assert anonymous.get(reverse("village-public", args=["999"])).status_code == 404
