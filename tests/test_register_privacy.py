"""The register and rule 4: a second household with the same ID number is
refused with a clear message; withdrawing consent hides an alias or a story
on every public page at once; and marker strings seeded into every private
field — through the pages, the import and the services — appear on no public
page, no ledger download, no log line and no e-mail to a donor."""

import json
import logging

import pytest
from django.core import mail
from django.core.cache import cache
from django.urls import reverse

from donations import publication
from donations.models import PublishedEntry
from donations.services import money as money_services
from donations.services import pledges
from households import services
from households.models import Household
from portal.views import STATS_KEY
from sun_commune.errors import ActionRefused
from sun_commune.models import AuditEntry

from . import factories
from .ledger_support import receive_money, spend_kwargs
from .register_support import english, household_row, messages_of, upload, valid_id, xlsx_bytes

pytestmark = pytest.mark.django_db


# --- One ID number, one household ------------------------------------------------------


def household_form(**overrides) -> dict:
    form = {"head_name": "黄国基", "id_number": valid_id(1), "size": "2", "status": "poor"}
    form.update(overrides)
    return form


def test_a_second_household_with_the_same_id_is_refused_with_a_clear_message(areas, secretary_a, secretary_b):
    first = services.create_household(
        by=secretary_a, village=areas.village_a, head_name="黄国基", id_number=valid_id(1)
    )

    # The secretary of another village may not learn where the household is.
    response = english(secretary_b).post(reverse("households:household-create"), household_form(head_name="乙"))
    assert response.status_code == 200
    errors = response.context["form"].errors["id_number"]
    assert errors == [
        "A household with this ID number is already registered. Find it in the register by this ID number; "
        "if it is not in your area, ask the county bureau to check the register."
    ]
    assert first.public_id not in response.content.decode()

    # Its own secretary is told which household it is.
    response = english(secretary_a).post(reverse("households:household-create"), household_form(head_name="甲"))
    assert response.context["form"].errors["id_number"] == [
        f"A household with this ID number is already registered: {first.public_id} in Jinlu."
    ]
    # Lower case x, spaces: the same number.
    assert Household.objects.count() == 1


def test_the_services_refuse_a_duplicate_id_number_with_a_message_too(areas, secretary_a, secretary_b):
    services.create_household(by=secretary_a, village=areas.village_a, head_name="甲", id_number="11010519491231002X")
    with pytest.raises(ActionRefused) as refusal:
        services.create_household(
            by=secretary_b, village=areas.village_b, head_name="乙", id_number=" 11010519491231002x "
        )
    assert refusal.value.field == "id_number"

    other = services.create_household(by=secretary_b, village=areas.village_b, head_name="丙", id_number=valid_id(2))
    with pytest.raises(ActionRefused):
        services.update_household(household_id=other.pk, by=secretary_b, id_number="11010519491231002X")
    other.refresh_from_db()
    assert other.id_number == valid_id(2)


def test_an_edit_to_an_id_number_already_registered_is_refused_on_the_form(areas, secretary_a):
    services.create_household(by=secretary_a, village=areas.village_a, head_name="甲", id_number=valid_id(1))
    second = services.create_household(by=secretary_a, village=areas.village_a, head_name="乙", id_number=valid_id(2))

    response = english(secretary_a).post(
        reverse("households:household-edit", args=[second.pk]), household_form(head_name="乙", id_number=valid_id(1))
    )

    assert response.status_code == 200 and "already registered" in response.context["form"].errors["id_number"][0]


# --- Consent: withdrawing hides at once -------------------------------------------------------


@pytest.fixture
def consented(areas, secretary_a, county_reviewer, client_of):
    """A household that agreed to show its alias and story, with a published need."""
    household = services.create_household(
        by=secretary_a,
        village=areas.village_a,
        head_name="黄国基",
        alias="桃园黄家",
        alias_consent=True,
        story="老两口种桃为生",
        story_consent=True,
        consent_basis="签字同意书",
    )
    need = factories.published_need(
        village=areas.village_a, by=secretary_a, reviewer=county_reviewer, household=household, kind="money"
    )
    return household, need


def public_pages(need, areas) -> list[str]:
    return [
        reverse("home"),
        reverse("donations:supermarket"),
        reverse("donations:supermarket") + "?q=电热毯",
        reverse("donations:need-detail", args=[need.pk]),
        reverse("village-public", args=[areas.village_a.code]),
        reverse("donations:ledger-list"),
        reverse("donations:ledger-totals") + f"?area={areas.village_a.pk}",
        reverse("donations:ledger-csv"),
        reverse("donations:ledger-jsonl"),
    ]


def content(response) -> str:
    return (b"".join(response.streaming_content) if response.streaming else response.content).decode()


def test_withdrawing_consent_hides_the_alias_and_story_on_every_public_page_at_once(
    consented, areas, secretary_a, county_reviewer, donor, anonymous, client_of
):
    household, need = consented
    receive_money(need, donor, "100.00", reference="TR-1", by=county_reviewer)
    publication.publish_all()
    cache.delete(STATS_KEY)
    shown = {url: content(anonymous.get(url)) for url in public_pages(need, areas)}
    for url in (
        reverse("home"),
        reverse("donations:supermarket"),
        reverse("donations:need-detail", args=[need.pk]),
        reverse("village-public", args=[areas.village_a.code]),
    ):
        assert "桃园黄家" in shown[url], url
    assert "老两口种桃为生" in shown[reverse("donations:need-detail", args=[need.pk])]

    keeper = client_of(secretary_a)
    url = reverse("households:consent-record", args=[household.pk])
    assert keeper.post(url, {"subject": "alias", "granted": "0", "basis": "电话撤回 2026-12-01"}).status_code == 302
    assert keeper.post(url, {"subject": "story", "granted": "0", "basis": "电话撤回 2026-12-01"}).status_code == 302

    for client in (anonymous, client_of(donor)):
        for url in public_pages(need, areas):
            page = content(client.get(url))
            assert "桃园黄家" not in page and "老两口种桃为生" not in page, url
    assert household.public_id in content(anonymous.get(reverse("donations:need-detail", args=[need.pk])))
    # The record of each decision, with its basis, is on the household's page.
    detail = keeper.get(reverse("households:household-detail", args=[household.pk])).content.decode()
    assert detail.count("电话撤回 2026-12-01") == 2 and "签字同意书" in detail


def test_a_consent_decision_needs_a_basis_and_something_to_show(areas, secretary_a):
    household = services.create_household(by=secretary_a, village=areas.village_a, head_name="甲")
    client = english(secretary_a)
    url = reverse("households:consent-record", args=[household.pk])

    response = client.post(url, {"subject": "alias", "granted": "1", "basis": ""})
    assert response.status_code == 400 and "This field is required." in response.content.decode()
    response = client.post(url, {"subject": "alias", "granted": "1", "basis": "签字同意书"})
    assert response.status_code == 400 and "Enter the alias first" in response.content.decode()
    assert not household.consents.exists()


# --- The private-marker crawl ------------------------------------------------------------------

MARKERS = {
    "head_name": "MARKER-HEAD-6601",
    "id_number": valid_id(661, region="510723", born="19660601"),
    "phone": "13966016601",
    "address": "MARKER-ADDRESS-金鹿村六组",
    "health_notes": "MARKER-HEALTH-尘肺",
}
MEMBER = {"name": "MARKER-MEMBER-6602", "health": "MARKER-MHEALTH-偏瘫"}
NOT_CONSENTED = {"alias": "MARKER-ALIAS-6603", "story": "MARKER-STORY-6603"}
IMPORTED = {
    "head_name": "MARKER-IMPHEAD-6604",
    "id_number": valid_id(664, region="510723", born="19640604"),
    "phone": "13966046604",
    "address": "MARKER-IMPADDR-6604",
    "health_notes": "MARKER-IMPHEALTH-6604",
    "member": "MARKER-IMPMEMBER-6605",
    "member_health": "MARKER-IMPMHEALTH-6605",
}
ALL = [*MARKERS.values(), *MEMBER.values(), *NOT_CONSENTED.values(), *IMPORTED.values()]


def assert_clean(text: str, where: str, markers=ALL):
    leaked = [m for m in markers if m in text]
    assert not leaked, f"{where} shows {leaked}"


def test_no_private_field_of_the_register_leaves_the_site(
    areas, secretary_a, county_reviewer, donor, anonymous, client_of, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    cache.delete(STATS_KEY)
    keeper = client_of(secretary_a)
    with django_capture_on_commit_callbacks(execute=True):
        # Registered, changed and given members through the secretary's pages.
        form = {**MARKERS, **NOT_CONSENTED, "size": "3", "poverty_causes": ["illness"], "status": "poor"}
        assert keeper.post(reverse("households:household-create"), form).status_code == 302
        household = Household.objects.get(head_name=MARKERS["head_name"])
        assert (
            keeper.post(
                reverse("households:member-create", args=[household.pk]),
                {
                    "name": MEMBER["name"],
                    "relation": "配偶",
                    "birth_year": "1968",
                    "ability": "partial",
                    "health": MEMBER["health"],
                },
            ).status_code
            == 302
        )
        assert (
            keeper.post(
                reverse("households:household-edit", args=[household.pk]),
                {**form, "phone": "13966016609", "status": "monitored"},
            ).status_code
            == 302
        )
        assert (
            keeper.post(
                reverse("households:income-create", args=[household.pk]),
                {"year": "2025", "source": "wages", "amount": "3000"},
            ).status_code
            == 302
        )
        assert (
            keeper.post(
                reverse("households:village-edit", args=[areas.village_a.code]),
                {"population": "800", "description": "种桃的村子"},
            ).status_code
            == 302
        )
        # Imported by the county.
        imported = upload(
            client_of(county_reviewer),
            areas.yanting,
            "金鹿村.xlsx",
            xlsx_bytes(
                [
                    household_row(
                        areas.village_a.code,
                        0,
                        head_name=IMPORTED["head_name"],
                        id_number=IMPORTED["id_number"],
                        phone=IMPORTED["phone"],
                        address=IMPORTED["address"],
                        health_notes=IMPORTED["health_notes"],
                    )
                ],
                members=[[IMPORTED["id_number"], IMPORTED["member"], "子", 1990, "", IMPORTED["member_health"]]],
            ),
            django_capture_on_commit_callbacks,
        )
        assert imported.status == "done", messages_of(imported)
        other = Household.objects.get(head_name=IMPORTED["head_name"])
        # Needs for both households, pledged, received, spent, published.
        goods = factories.published_need(
            village=areas.village_a, by=secretary_a, reviewer=county_reviewer, household=household, quantity=2
        )
        money = factories.published_need(
            village=areas.village_a, by=secretary_a, reviewer=county_reviewer, household=other, kind="money"
        )
        p = factories.pledge(goods, donor, 2)
        pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=2, note="到了")
        receive_money(money, donor, "300.00", reference="TR-6601", by=county_reviewer)
        money_services.spend(
            by=county_reviewer, amount="120.00", need_id=money.pk, payee_household=other, **spend_kwargs()
        )
    publication.publish_all()
    assert PublishedEntry.objects.exists()
    from households.tasks import refresh_register_figures

    refresh_register_figures(area_id=areas.city.pk)

    pages = [
        reverse("home"),
        reverse("donations:supermarket"),
        reverse("donations:supermarket") + "?show=fulfilled",
        reverse("donations:supermarket")
        + f"?county={areas.yanting.pk}&township={areas.huangxi.pk}&village={areas.village_a.pk}",
        reverse("donations:need-detail", args=[goods.pk]),
        reverse("donations:need-detail", args=[money.pk]),
        reverse("village-public", args=[areas.village_a.code]),
        reverse("donations:ledger-list"),
        reverse("donations:ledger-list")
        + f"?county={areas.yanting.pk}&township={areas.huangxi.pk}&village={areas.village_a.pk}",
        reverse("donations:ledger-totals"),
        reverse("donations:ledger-totals") + f"?area={areas.village_a.pk}",
        reverse("donations:ledger-about"),
        reverse("donations:ledger-jsonl"),
        reverse("donations:ledger-csv"),
        reverse("donations:checkpoint-latest"),
        reverse("donations:checkpoints-jsonl"),
        *[reverse("donations:entry-proof", args=[e.index]) for e in PublishedEntry.objects.all()],
        reverse("login"),
        reverse("donations:donor-register"),
    ]
    for client, who in ((anonymous, "anonymous"), (client_of(donor), "a donor")):
        for url in pages:
            response = client.get(url, follow=True)
            assert response.status_code == 200, url
            assert_clean(content(response), f"{url} as {who}")
    # The pages do show the households, under their pseudonyms.
    assert household.public_id in content(anonymous.get(reverse("donations:need-detail", args=[goods.pk])))
    assert other.public_id in content(anonymous.get(reverse("donations:ledger-csv")))
    assert "种桃的村子" in content(anonymous.get(reverse("village-public", args=[areas.village_a.code])))
    # A search of the supermarket for a private value finds nothing.
    for value in (MARKERS["head_name"], MEMBER["name"], IMPORTED["address"]):
        assert anonymous.get(reverse("donations:supermarket"), {"q": value}).context["page"].rows == []

    to_donor = [m for m in mail.outbox if donor.email in m.to]
    assert to_donor
    for message in to_donor:
        assert_clean(message.subject + message.body, f"mail {message.subject!r}")
    for entry in AuditEntry.objects.all():
        assert_clean(
            json.dumps(entry.changes, ensure_ascii=False),
            f"audit entry {entry.action}",
            [m for m in ALL if m not in NOT_CONSENTED.values()],
        )
    assert_clean("\n".join(r.getMessage() for r in caplog.records), "the log")
    assert_clean(json.dumps(imported.errors + imported.notes, ensure_ascii=False), "the import report")
