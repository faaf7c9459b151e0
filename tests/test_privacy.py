"""Rule 4: private data never appears on a public page, in an e-mail to a
donor, in the audit log or in a log line.

Marker strings are seeded into every private field of a household (and into
its alias and story, whose consent is not given); the household then goes
through a need's whole life, and every public page and message is searched
for the markers."""

import json
import logging

import pytest
from django.core import mail
from django.core.cache import cache
from django.urls import reverse

from donations.services import pledges
from households.models import Household
from portal.views import STATS_KEY
from sun_commune.models import AuditEntry

from . import factories
from .factories import pledge

PRIVATE = {
    "head_name": "MARKER-NAME-7731",
    "id_number": "510723197707317736",
    "phone": "13877317731",
    "address": "MARKER-ADDR-金鹿村三组",
    "health_notes": "MARKER-HEALTH-糖尿病",
}
NOT_CONSENTED = {"alias": "MARKER-ALIAS-7731", "story": "MARKER-STORY-7731"}
CHANGED_NAME = "MARKER-NAME2-9902"
DONOR_PRIVATE = {"name": "MARKER-DONOR-NAME-4410", "phone": "13944104410"}
MARKERS = [*PRIVATE.values(), *NOT_CONSENTED.values(), CHANGED_NAME]


def assert_no_marker(text: str, where: str, markers=MARKERS):
    leaked = [m for m in markers if m in text]
    assert not leaked, f"{where} shows {leaked}"


@pytest.fixture
def private_household(areas, secretary_a, client_of):
    """A household registered and edited through the secretary's pages."""
    client = client_of(secretary_a)
    form = {**PRIVATE, **NOT_CONSENTED, "size": "4", "poverty_causes": ["illness", "schooling"]}
    response = client.post(reverse("households:household-create"), form)
    assert response.status_code == 302, response.context["form"].errors
    household = Household.objects.get(head_name=PRIVATE["head_name"])
    response = client.post(
        reverse("households:household-edit", args=[household.pk]),
        {**form, "head_name": CHANGED_NAME, "phone": "13899029902"},
    )
    assert response.status_code == 302, response.context["form"].errors
    household.refresh_from_db()
    assert household.head_name == CHANGED_NAME
    return household


@pytest.fixture
def private_donor(db):
    return factories.make_donor(username="private_donor", show_name=False, **DONOR_PRIVATE)


def test_private_fields_never_leave_the_site(
    private_household,
    areas,
    secretary_a,
    county_reviewer,
    private_donor,
    donor,
    anonymous,
    client_of,
    django_capture_on_commit_callbacks,
    caplog,
    cache_without_stats,
):
    caplog.set_level(logging.INFO)
    with django_capture_on_commit_callbacks(execute=True):
        fulfilled = factories.published_need(
            village=areas.village_a,
            by=secretary_a,
            reviewer=county_reviewer,
            household=private_household,
            title="给这户人家的电热毯",
            quantity=2,
        )
        open_need = factories.published_need(
            village=areas.village_a,
            by=secretary_a,
            reviewer=county_reviewer,
            household=private_household,
            kind="money",
            title="孩子的学费",
        )
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        p = pledge(fulfilled, private_donor, 2)
        pledge(open_need, private_donor, "100.00")
        pledge(open_need, donor, "50.00")
        pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=2, note="到了")
    fulfilled.refresh_from_db()
    assert fulfilled.status == "fulfilled"

    public_urls = [
        reverse("home"),
        reverse("donations:supermarket"),
        reverse("donations:supermarket") + "?show=fulfilled",
        reverse("donations:supermarket") + "?q=电热毯&show=fulfilled",
        reverse("donations:supermarket") + "?q=学费",
        reverse("donations:supermarket") + f"?county={areas.yanting.pk}&township={areas.huangxi.pk}"
        f"&village={areas.village_a.pk}&sort=closest",
        reverse("donations:need-detail", args=[fulfilled.pk]),
        reverse("donations:need-detail", args=[open_need.pk]),
        reverse("donations:donor-register"),
        reverse("login"),
    ]
    donor_client = client_of(donor)
    for client, who in ((anonymous, "anonymous"), (donor_client, "a donor")):
        for url in public_urls:
            response = client.get(url, follow=True)  # a donor is sent on from the registration page
            assert response.status_code == 200, url
            assert_no_marker(response.content.decode(), f"{url} as {who}", MARKERS + list(DONOR_PRIVATE.values()))
    # The pages do show the needs, under the household's pseudonym.
    detail = anonymous.get(reverse("donations:need-detail", args=[fulfilled.pk])).content.decode()
    assert private_household.public_id in detail
    home = anonymous.get(reverse("home")).content.decode()
    assert "给这户人家的电热毯" in home and "孩子的学费" in home

    own = client_of(private_donor).get(reverse("donations:my-pledges"))
    assert own.status_code == 200
    assert_no_marker(own.content.decode(), "my pledges")

    # A search for a private value finds nothing.
    for value in (PRIVATE["head_name"], PRIVATE["address"], PRIVATE["health_notes"]):
        response = anonymous.get(reverse("donations:supermarket"), {"q": value})
        assert response.context["page"].rows == []

    to_donors = [m for m in mail.outbox if set(m.to) & {private_donor.email, donor.email}]
    assert to_donors, "the donor was told the gift arrived"
    for message in to_donors:
        assert_no_marker(message.subject + message.body, f"mail {message.subject!r}")

    # The audit log is not public: it may keep the alias and story (fields that
    # are public once consented), never the private fields.
    for entry in AuditEntry.objects.all():
        assert_no_marker(
            json.dumps(entry.changes, ensure_ascii=False),
            f"audit entry {entry.action}",
            [*PRIVATE.values(), CHANGED_NAME],
        )
    household_actions = set(
        AuditEntry.objects.filter(object_id=str(private_household.pk), action__startswith="household.").values_list(
            "action", flat=True
        )
    )
    assert household_actions == {"household.created", "household.updated"}

    assert_no_marker("\n".join(r.getMessage() for r in caplog.records), "the log")


@pytest.fixture
def cache_without_stats():
    """The home page's figures are cached for a minute; start without them."""
    cache.delete(STATS_KEY)
    yield
    cache.delete(STATS_KEY)


def test_the_household_audit_names_the_changed_fields_but_not_their_values(private_household):
    updated = AuditEntry.objects.get(action="household.updated", object_id=str(private_household.pk))

    assert set(updated.changes) == {"head_name", "phone"}
    assert updated.changes["head_name"] == ["(private)", "(private)"]


def test_a_consented_alias_and_story_are_shown(areas, secretary_a, county_reviewer, anonymous):
    household = factories.HouseholdFactory(
        village=areas.village_a, alias="黄家", alias_consent=True, story="老两口种桃", story_consent=True
    )
    need = factories.published_need(
        village=areas.village_a, by=secretary_a, reviewer=county_reviewer, household=household
    )

    page = anonymous.get(reverse("donations:need-detail", args=[need.pk])).content.decode()

    assert "黄家" in page and "老两口种桃" in page
    assert household.head_name not in page
