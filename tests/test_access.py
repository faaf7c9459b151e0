"""Rule 5: each user acts only within their role and area. An object outside
the user's area answers 404 (never a hint that it exists); a page of a role
the user does not hold answers 403; the anonymous are sent to log in."""

import io
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from PIL import Image

from donations.models import Need, Pledge
from donations.services import needs, pledges
from households.models import Household

from . import factories
from .factories import pledge


def jpeg() -> ContentFile:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 128, 0)).save(out, format="JPEG")
    return ContentFile(out.getvalue(), name="gift.jpg")


@pytest.fixture
def world(areas, secretary_a, county_reviewer, donor, need_a, money_need_a):
    """Everything of village A that the outsiders will try to reach."""
    household = factories.HouseholdFactory(village=areas.village_a)
    received = factories.published_need(
        village=areas.village_a, by=secretary_a, reviewer=county_reviewer, title="received", quantity=2
    )
    p_received = pledge(received, donor, 2)
    pledges.confirm_receipt(pledge_id=p_received.pk, by=secretary_a, quantity=2, photo=jpeg())
    return SimpleNamespace(
        household=household,
        draft=factories.make_need(village=areas.village_a, by=secretary_a),
        submitted=factories.make_need(village=areas.village_a, by=secretary_a, submit=True),
        published=need_a,
        pledge=pledge(need_a, donor, 3),
        money_pledge=pledge(money_need_a, donor, Decimal("100.00")),
        received=p_received,
    )


# url name, the object it takes (in `world`), the outsider, the insider, the method
OBJECT_VIEWS = [
    ("donations:need-edit", "draft", "secretary_b", "secretary_a", "get"),
    ("donations:need-edit", "draft", "secretary_b", "secretary_a", "post"),
    ("donations:need-close", "published", "secretary_b", "secretary_a", "post"),
    ("donations:pledge-confirm", "pledge", "secretary_b", "secretary_a", "get"),
    ("donations:pledge-confirm", "pledge", "secretary_b", "secretary_a", "post"),
    ("donations:pledge-thank", "received", "secretary_b", "secretary_a", "get"),
    ("donations:pledge-thank", "received", "secretary_b", "secretary_a", "post"),
    ("donations:need-review", "submitted", "other_county_reviewer", "county_reviewer", "get"),
    ("donations:need-review", "submitted", "other_county_reviewer", "county_reviewer", "post"),
    ("donations:money-record", "money_pledge", "other_county_reviewer", "county_reviewer", "get"),
    ("donations:money-record", "money_pledge", "other_county_reviewer", "county_reviewer", "post"),
    ("donations:pledge-cancel", "pledge", "other_donor", "donor", "post"),
    ("donations:pledge-sent", "pledge", "other_donor", "donor", "post"),
    ("donations:pledge-photo", "received", "other_donor", "donor", "get"),
    ("donations:pledge-photo", "received", "secretary_b", "secretary_a", "get"),
    ("donations:pledge-photo", "received", "other_county_reviewer", "county_reviewer", "get"),
    ("households:household-detail", "household", "secretary_b", "secretary_a", "get"),
    ("households:household-detail", "household", "other_county_reviewer", "county_reviewer", "get"),
    ("households:household-edit", "household", "secretary_b", "secretary_a", "get"),
    ("households:household-edit", "household", "secretary_b", "secretary_a", "post"),
    ("households:household-edit", "household", "other_county_reviewer", "county_reviewer", "get"),
]


def snapshot():
    return (
        list(Need.objects.order_by("pk").values_list("status", "pledged_quantity", "pledged_amount", "title")),
        list(Pledge.objects.order_by("pk").values_list("status", "received_quantity", "received_amount", "thanks")),
        list(Household.objects.order_by("pk").values_list("head_name", "size")),
    )


@pytest.mark.parametrize(("name", "obj", "outsider", "insider", "method"), OBJECT_VIEWS)
def test_it_answers_404_outside_the_users_area(world, client_of, request, name, obj, outsider, insider, method):
    url = reverse(name, args=[getattr(world, obj).pk])
    # Enough for any of these forms to pass, so that only the area check stops it.
    data = {
        "decision": "publish",
        "quantity": "1",
        "message": "谢谢",
        "amount": "100",
        "reference": "R-1",
        "head_name": "Changed",
        "size": "2",
        "title": "Changed",
        "description": "x",
        "category": "daily",
        "kind": "goods",
        "item": "x",
        "deadline": "2999-01-01",
    }
    before = snapshot()

    response = getattr(client_of(request.getfixturevalue(outsider)), method)(url, data if method == "post" else None)

    assert response.status_code == 404
    assert snapshot() == before
    # The same page works for the user whose area it is.
    if method == "get":
        assert client_of(request.getfixturevalue(insider)).get(url).status_code == 200


def test_a_county_reviewer_reaches_every_village_of_the_county(areas, secretary_b, county_reviewer, client_of):
    need_b = factories.make_need(village=areas.village_b, by=secretary_b, submit=True)

    response = client_of(county_reviewer).get(reverse("donations:need-review", args=[need_b.pk]))

    assert response.status_code == 200


ROLE_PAGES = [
    "donations:village-needs",
    "donations:need-create",
    "donations:review-list",
    "donations:money-list",
    "households:household-list",
    "households:household-create",
]


@pytest.mark.parametrize("name", ROLE_PAGES)
def test_role_pages_refuse_a_donor(donor, client_of, name):
    assert client_of(donor).get(reverse(name)).status_code == 403


@pytest.mark.parametrize("name", ROLE_PAGES + ["donations:my-pledges"])
def test_role_pages_send_the_anonymous_to_log_in(anonymous, name):
    response = anonymous.get(reverse(name))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.mark.parametrize(
    ("name", "persona"),
    [
        ("donations:review-list", "secretary_a"),
        ("donations:money-list", "secretary_a"),
        ("donations:village-needs", "county_reviewer"),
        ("donations:need-create", "county_reviewer"),
        ("households:household-create", "county_reviewer"),
        ("donations:my-pledges", "secretary_a"),
    ],
)
def test_role_pages_refuse_another_role(client_of, request, name, persona):
    assert client_of(request.getfixturevalue(persona)).get(reverse(name)).status_code == 403


@pytest.mark.parametrize(
    ("name", "obj"),
    [
        ("donations:pledge-cancel", "pledge"),
        ("donations:pledge-sent", "pledge"),
        ("donations:pledge-photo", "received"),
    ],
)
def test_pledge_pages_send_the_anonymous_to_log_in(world, anonymous, name, obj):
    url = reverse(name, args=[getattr(world, obj).pk])
    response = anonymous.post(url) if name != "donations:pledge-photo" else anonymous.get(url)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.mark.parametrize("name", ["donations:need-create", "households:household-create"])
def test_a_secretary_cannot_register_for_another_village(areas, secretary_a, client_of, name):
    client = client_of(secretary_a)
    before = snapshot()

    assert client.get(reverse(name), {"village": areas.village_b.pk}).status_code == 404
    response = client.post(reverse(name), {"village_id": areas.village_b.pk, "head_name": "x", "size": "1"})

    assert response.status_code == 404
    assert snapshot() == before


@pytest.mark.parametrize("status", ["draft", "submitted", "rejected"])
def test_an_unpublished_need_answers_404_to_the_public(
    areas, secretary_a, county_reviewer, anonymous, donor, client_of, status
):
    need = factories.make_need(village=areas.village_a, by=secretary_a, submit=status != "draft")
    if status == "rejected":
        needs.reject_need(need_id=need.pk, by=county_reviewer, reason="Too vague")
    url = reverse("donations:need-detail", args=[need.pk])

    assert anonymous.get(url).status_code == 404
    assert client_of(donor).get(url).status_code == 404
    response = client_of(donor).post(reverse("donations:pledge-create", args=[need.pk]), {"quantity": "1"})
    assert response.status_code == 404
    assert not Pledge.objects.filter(need=need).exists()


def test_a_published_need_is_public(need_a, anonymous):
    response = anonymous.get(reverse("donations:need-detail", args=[need_a.pk]))

    assert response.status_code == 200
    assert need_a.title in response.content.decode()
