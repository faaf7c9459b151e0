"""Rule 5 for every register page: a secretary keeps their own village, staff
their own area; anything outside answers 404, a page of another role 403."""

import pytest
from django.urls import reverse

from households import services
from households.models import HouseholdMember, ImportJob

from . import factories
from .register_support import english, valid_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def household_a(areas, secretary_a):
    household = services.create_household(
        by=secretary_a, village=areas.village_a, head_name="黄国基", id_number=valid_id(1), size=2
    )
    services.add_member(by=secretary_a, household_id=household.pk, name="李秀兰", relation="配偶")
    return household


@pytest.fixture
def job_yanting(areas, county_reviewer):
    return ImportJob.objects.create(area=areas.yanting, filename="a.xlsx", created_by=county_reviewer)


def household_pages(household):
    member = HouseholdMember.objects.filter(household=household).first()
    return [
        ("get", reverse("households:household-detail", args=[household.pk])),
        ("get", reverse("households:household-edit", args=[household.pk])),
        ("post", reverse("households:household-edit", args=[household.pk])),
        ("get", reverse("households:household-history", args=[household.pk])),
        ("post", reverse("households:consent-record", args=[household.pk])),
        ("get", reverse("households:member-create", args=[household.pk])),
        ("post", reverse("households:member-create", args=[household.pk])),
        ("get", reverse("households:member-edit", args=[household.pk, member.pk])),
        ("post", reverse("households:member-remove", args=[household.pk, member.pk])),
        ("get", reverse("households:income-create", args=[household.pk])),
        ("post", reverse("households:income-create", args=[household.pk])),
    ]


@pytest.mark.parametrize("outsider", ["secretary_b", "other_county_reviewer"])
def test_every_household_page_answers_404_outside_the_users_area(outsider, household_a, request, client_of):
    client = client_of(request.getfixturevalue(outsider))
    for method, url in household_pages(household_a):
        assert getattr(client, method)(url).status_code == 404, (outsider, method, url)
    assert HouseholdMember.objects.filter(household=household_a).count() == 1


@pytest.mark.parametrize("keeper", ["secretary_a", "county_reviewer"])
def test_the_village_secretary_and_the_county_staff_open_every_household_page(keeper, household_a, request, client_of):
    client = client_of(request.getfixturevalue(keeper))
    for method, url in household_pages(household_a):
        if method == "get":
            assert client.get(url).status_code == 200, (keeper, url)


@pytest.mark.parametrize("outsider", ["secretary_b", "other_county_reviewer"])
def test_the_list_and_search_show_nothing_outside_the_users_area(outsider, household_a, request, client_of):
    client = client_of(request.getfixturevalue(outsider))
    for query in ({}, {"q": "国基"}, {"q": "秀兰"}, {"id_number": valid_id(1)}):
        response = client.get(reverse("households:household-list"), query)
        assert response.status_code == 200
        assert response.context["page"].rows == [] and "黄国基" not in response.content.decode()


def test_a_filter_on_an_area_outside_the_users_is_refused(areas, household_a, other_county_reviewer):
    response = english(other_county_reviewer).get(reverse("households:household-list"), {"area": areas.village_a.code})
    assert "No area with this code in your area." in response.content.decode()
    assert response.context["page"].rows == []


def test_an_export_holds_only_the_staffs_area(areas, household_a, other_county_reviewer, client_of):
    from io import BytesIO

    from openpyxl import load_workbook

    response = client_of(other_county_reviewer).get(reverse("households:household-export"))
    sheet = load_workbook(BytesIO(b"".join(response.streaming_content))).worksheets[0]
    assert sheet.max_row == 1  # the header only


@pytest.mark.parametrize(
    "name,method",
    [
        ("households:household-export", "get"),
        ("households:import-list", "get"),
        ("households:import-create", "get"),
        ("households:import-create", "post"),
        ("households:import-template", "get"),
        ("households:report", "get"),
        ("households:report-refresh", "post"),
    ],
)
def test_staff_pages_refuse_secretaries_and_donors_and_send_visitors_to_log_in(
    name, method, secretary_a, donor, anonymous, client_of
):
    url = reverse(name)
    for user in (secretary_a, donor):
        assert getattr(client_of(user), method)(url).status_code == 403, (name, user)
    response = getattr(anonymous, method)(url)
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_register_pages_refuse_donors(household_a, donor, client_of):
    client = client_of(donor)
    assert client.get(reverse("households:household-list")).status_code == 403
    assert client.get(reverse("households:household-detail", args=[household_a.pk])).status_code == 403


def test_an_import_of_another_county_answers_404(job_yanting, other_county_reviewer, county_reviewer, client_of):
    outsider = client_of(other_county_reviewer)
    for name in ("households:import-detail", "households:import-status"):
        assert outsider.get(reverse(name, args=[job_yanting.pk])).status_code == 404
        assert client_of(county_reviewer).get(reverse(name, args=[job_yanting.pk])).status_code == 200
    assert job_yanting.pk not in [j.pk for j in outsider.get(reverse("households:import-list")).context["page"].rows]


def test_a_township_staff_member_sees_imports_of_their_township_only(areas, job_yanting, client_of):
    township_staff = factories.make_staff(areas.huangxi, username="huangxi_staff")
    assert client_of(township_staff).get(reverse("households:import-detail", args=[job_yanting.pk])).status_code == 404


@pytest.mark.parametrize("outsider", ["secretary_b", "other_county_reviewer"])
def test_a_village_page_is_edited_only_by_its_keepers(
    outsider, areas, request, client_of, secretary_a, county_reviewer
):
    url = reverse("households:village-edit", args=[areas.village_a.code])
    assert client_of(request.getfixturevalue(outsider)).get(url).status_code == 404
    assert client_of(request.getfixturevalue(outsider)).post(url, {"population": "5"}).status_code == 404
    assert client_of(secretary_a).get(url).status_code == 200
    assert client_of(county_reviewer).get(url).status_code == 200


def test_a_report_on_an_area_outside_the_staffs_is_refused(areas, other_county_reviewer):
    client = english(other_county_reviewer)
    response = client.get(reverse("households:report"), {"area": areas.yanting.code})
    assert "No area with this code in your area." in response.content.decode()
    assert response.context["report"]["area"] == areas.zitong
    assert client.post(reverse("households:report-refresh"), {"area": areas.yanting.code}).status_code == 404


def test_a_secretary_cannot_register_into_another_village(areas, secretary_a, client_of):
    response = client_of(secretary_a).get(reverse("households:household-create"), {"village": areas.village_b.pk})
    assert response.status_code == 404


def test_the_staff_pages_open_for_staff(areas, household_a, job_yanting, county_reviewer, client_of):
    client = client_of(county_reviewer)
    for name in (
        "households:household-list",
        "households:import-list",
        "households:import-create",
        "households:report",
    ):
        assert client.get(reverse(name)).status_code == 200, name
    assert client.get(reverse("village-public", args=[areas.village_a.code])).status_code == 200
