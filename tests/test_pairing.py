"""Pairing: a donor and a household (or a village) agree on long-term
support; each period's commitment becomes a need and a pledge exactly once;
the village posts updates the donor sees on a timeline; every state change
leaves an audit entry; each side sees only its own pairings."""

import datetime
import io
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from donations import tasks
from donations.models import Need, Pairing, PairingInstallment, PairingUpdate, Pledge, period_end, period_of
from donations.services import pairings, pledges
from households import services as household_services
from households.models import Household
from sun_commune.errors import ActionRefused
from sun_commune.models import AuditEntry

from . import factories

TODAY = timezone.localdate()
MONEY = {"commitment": "money", "amount": Decimal("300.00")}
GOODS = {"commitment": "goods", "item": "大米", "quantity": 2, "unit": "袋", "unit_price": Decimal("120.00")}
HEAD_NAME = "MARKER-HEAD-5521"


def jpeg(name="update.jpg") -> ContentFile:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 120, 0)).save(out, format="JPEG")
    return ContentFile(out.getvalue(), name=name)


def next_period(day: datetime.date, commitment: str) -> datetime.date:
    return period_end(day, commitment) + datetime.timedelta(days=1)


def audit_actions(pairing: Pairing) -> list[str]:
    entries = AuditEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Pairing), object_id=str(pairing.pk)
    ).order_by("at", "id")
    return [entry.action for entry in entries]


@pytest.fixture(autouse=True)
def local_cache(settings):
    """The statistics are cached; other suites share the Redis cache."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture
def household(areas):
    return factories.HouseholdFactory(
        village=areas.village_a, head_name=HEAD_NAME, alias="黄家", alias_consent=True, photo_consent=True
    )


@pytest.fixture
def requested(household, donor):
    return pairings.request_pairing(
        donor=donor.donor_profile, household=household, start_date=TODAY, message="想长期帮助", **MONEY
    )


@pytest.fixture
def active(requested, secretary_a):
    return pairings.accept_pairing(pairing_id=requested.pk, by=secretary_a, side=pairings.VILLAGE_SIDE)


@pytest.fixture
def other_pairing(areas, other_donor, secretary_b):
    """A pairing of another donor with village B."""
    pairing = pairings.request_pairing(
        donor=other_donor.donor_profile, village=areas.village_b, start_date=TODAY, **GOODS
    )
    return pairings.accept_pairing(pairing_id=pairing.pk, by=secretary_b, side=pairings.VILLAGE_SIDE)


# --- Asking, inviting, answering, ending ---------------------------------------------


def test_a_request_accepted_by_the_village_becomes_active(requested, household, areas, secretary_a):
    assert requested.status == Pairing.Status.REQUESTED
    assert requested.village == areas.village_a
    assert (requested.township, requested.county) == (areas.huangxi, areas.yanting)

    pairing = pairings.accept_pairing(pairing_id=requested.pk, by=secretary_a, side=pairings.VILLAGE_SIDE)

    assert pairing.status == Pairing.Status.ACTIVE
    assert (pairing.decided_by, pairing.secretary) == (secretary_a, secretary_a)
    assert pairing.decided_at is not None


def test_the_donor_cannot_accept_their_own_request(requested, donor):
    with pytest.raises(ActionRefused):
        pairings.accept_pairing(pairing_id=requested.pk, by=donor, side=pairings.DONOR_SIDE)


def test_an_invitation_by_username_or_e_mail_is_answered_by_the_donor(areas, secretary_a, donor, household):
    by_name = pairings.invite_donor(by=secretary_a, donor_login="DONOR", household=household, start_date=TODAY, **GOODS)
    assert (by_name.donor, by_name.status, by_name.secretary) == (
        donor.donor_profile,
        Pairing.Status.INVITED,
        secretary_a,
    )
    with pytest.raises(ActionRefused):  # the village cannot answer its own invitation
        pairings.accept_pairing(pairing_id=by_name.pk, by=secretary_a, side=pairings.VILLAGE_SIDE)
    pairings.decline_pairing(pairing_id=by_name.pk, by=donor, side=pairings.DONOR_SIDE, reason="明年再说")

    by_mail = pairings.invite_donor(
        by=secretary_a, donor_login=donor.email.upper(), village=areas.village_a, start_date=TODAY, **MONEY
    )
    accepted = pairings.accept_pairing(pairing_id=by_mail.pk, by=donor, side=pairings.DONOR_SIDE)

    by_name.refresh_from_db()
    assert (by_name.status, by_name.reason) == (Pairing.Status.DECLINED, "明年再说")
    assert accepted.status == Pairing.Status.ACTIVE and accepted.household is None
    assert accepted.secretary == secretary_a  # the installments are posted in the inviter's name


def test_an_unknown_donor_cannot_be_invited(areas, secretary_a):
    # Nothing is done, and the secretary is not told that nobody has this login (issue 14).
    invited = pairings.invite_donor(
        by=secretary_a, donor_login="nobody@example.org", village=areas.village_a, start_date=TODAY, **MONEY
    )
    assert invited is None
    assert not Pairing.objects.exists()


def test_a_duplicate_open_pairing_is_refused_with_a_message(requested, household, donor, secretary_a):
    with pytest.raises(ActionRefused):
        pairings.request_pairing(donor=donor.donor_profile, household=household, start_date=TODAY, **GOODS)
    with pytest.raises(ActionRefused):
        pairings.invite_donor(by=secretary_a, donor_login="donor", household=household, start_date=TODAY, **MONEY)
    pairings.accept_pairing(pairing_id=requested.pk, by=secretary_a, side=pairings.VILLAGE_SIDE)
    with pytest.raises(ActionRefused):
        pairings.request_pairing(donor=donor.donor_profile, household=household, start_date=TODAY, **MONEY)
    assert Pairing.objects.count() == 1

    # Once ended, the donor may ask again.
    pairings.end_pairing(pairing_id=requested.pk, by=donor, side=pairings.DONOR_SIDE)
    again = pairings.request_pairing(donor=donor.donor_profile, household=household, start_date=TODAY, **MONEY)
    assert again.status == Pairing.Status.REQUESTED


def test_the_database_refuses_a_second_open_pairing(requested, household, donor):
    duplicate = Pairing(
        donor=donor.donor_profile,
        household=household,
        village=requested.village,
        township=requested.township,
        county=requested.county,
        status=Pairing.Status.INVITED,
        start_date=TODAY,
        created_by=donor,
        **MONEY,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()


def test_a_pairing_of_a_household_and_one_of_its_village_are_different(requested, donor, areas):
    village_pairing = pairings.request_pairing(
        donor=donor.donor_profile, village=areas.village_a, start_date=TODAY, **MONEY
    )
    assert village_pairing.household is None


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"commitment": "money"}, "amount"),
        ({"commitment": "money", "amount": Decimal("0")}, "amount"),
        ({"commitment": "goods", "quantity": 2}, "item"),
        ({"commitment": "goods", "item": "大米"}, "quantity"),
        ({"commitment": "weekly", "amount": Decimal("5")}, "commitment"),
        ({**MONEY, "start_date": TODAY - datetime.timedelta(days=1)}, "start_date"),
        ({**MONEY, "end_date": TODAY - datetime.timedelta(days=1)}, "end_date"),
    ],
)
def test_bad_terms_are_refused_next_to_their_field(household, donor, terms, field):
    terms = {"start_date": TODAY, **terms}
    with pytest.raises(ActionRefused) as refused:
        pairings.request_pairing(donor=donor.donor_profile, household=household, **terms)
    assert refused.value.field == field
    assert not Pairing.objects.exists()


def test_a_household_of_another_village_is_refused(areas, secretary_b, household, donor):
    with pytest.raises(ActionRefused) as refused:
        pairings.invite_donor(
            by=secretary_b, donor_login="donor", village=areas.village_b, household=household, start_date=TODAY, **MONEY
        )
    assert refused.value.field == "household"


def test_either_side_ends_an_active_pairing(active, secretary_a):
    ended = pairings.end_pairing(pairing_id=active.pk, by=secretary_a, side=pairings.VILLAGE_SIDE, reason="搬迁")

    assert ended.status == Pairing.Status.ENDED
    assert (ended.ended_by, ended.reason, ended.end_date) == (secretary_a, "搬迁", TODAY)
    assert pairings.end_pairing(pairing_id=active.pk, by=secretary_a, side=pairings.VILLAGE_SIDE).status == "ended"


def test_a_request_is_withdrawn_by_the_donor_but_declined_by_the_village(requested, donor, secretary_a):
    with pytest.raises(ActionRefused):
        pairings.end_pairing(pairing_id=requested.pk, by=secretary_a, side=pairings.VILLAGE_SIDE)

    withdrawn = pairings.end_pairing(pairing_id=requested.pk, by=donor, side=pairings.DONOR_SIDE)

    assert withdrawn.status == Pairing.Status.ENDED
    with pytest.raises(ActionRefused):
        pairings.accept_pairing(pairing_id=requested.pk, by=secretary_a, side=pairings.VILLAGE_SIDE)


# --- Audit ---------------------------------------------------------------------------


def test_every_state_change_leaves_an_audit_entry(active, donor, secretary_a, household, areas):
    tasks.create_pairing_pledges(today=TODAY.isoformat())
    pairings.post_pairing_update(pairing_id=active.pk, by=secretary_a, text="买了化肥")
    pairings.end_pairing(pairing_id=active.pk, by=donor, side=pairings.DONOR_SIDE, reason="")

    invited = pairings.invite_donor(
        by=secretary_a, donor_login="donor", village=areas.village_a, start_date=TODAY, **MONEY
    )
    pairings.decline_pairing(pairing_id=invited.pk, by=donor, side=pairings.DONOR_SIDE)

    assert audit_actions(active) == [
        "pairing.requested",
        "pairing.accepted",
        "pairing.installment_created",
        "pairing.update_posted",
        "pairing.ended",
    ]
    assert audit_actions(invited) == ["pairing.invited", "pairing.declined"]
    entries = {e.action: e for e in AuditEntry.objects.filter(object_id=str(active.pk), action__startswith="pairing.")}
    assert entries["pairing.requested"].actor == donor
    assert entries["pairing.accepted"].actor == secretary_a
    assert entries["pairing.accepted"].changes["status"] == ["requested", "active"]
    assert entries["pairing.installment_created"].actor is None
    assert entries["pairing.ended"].changes["status"] == ["active", "ended"]
    assert HEAD_NAME not in str([e.changes for e in entries.values()])


def test_the_beat_ends_a_pairing_past_its_end_date(household, donor, secretary_a):
    pairing = pairings.request_pairing(
        donor=donor.donor_profile, household=household, start_date=TODAY, end_date=TODAY, **MONEY
    )
    pairings.accept_pairing(pairing_id=pairing.pk, by=secretary_a, side=pairings.VILLAGE_SIDE)
    tomorrow = TODAY + datetime.timedelta(days=1)

    tasks.create_pairing_pledges(today=tomorrow.isoformat())
    tasks.create_pairing_pledges(today=tomorrow.isoformat())

    pairing.refresh_from_db()
    assert pairing.status == Pairing.Status.ENDED
    assert pairing.ended_by is None
    assert audit_actions(pairing).count("pairing.ended") == 1


# --- Installments --------------------------------------------------------------------


def test_the_beat_makes_one_published_need_and_pledge_per_month(active, household, donor, secretary_a, areas):
    assert tasks.create_pairing_pledges(today=TODAY.isoformat()) == 1
    assert tasks.create_pairing_pledges(today=TODAY.isoformat()) == 0  # the beat ran twice

    installment = PairingInstallment.objects.get(pairing=active)
    need, gift = installment.need, installment.pledge
    assert installment.period == f"{TODAY.year}-{TODAY.month:02d}"
    assert need.household == household and need.village == areas.village_a
    assert (need.township, need.county) == (areas.huangxi, areas.yanting)
    assert need.kind == Need.Kind.MONEY and need.target_amount == Decimal("300.00")
    assert need.status == Need.Status.FULLY_PLEDGED and need.published_at is not None
    assert need.created_by == secretary_a and need.reviewed_by is None
    assert need.deadline == period_end(TODAY, "money") + datetime.timedelta(days=pairings.PAIRING_GRACE_DAYS)
    assert installment.period in need.title and "黄家" in need.title
    assert HEAD_NAME not in need.title + need.description
    assert "黄" in need.search_terms
    assert (gift.donor, gift.amount, gift.status) == (donor.donor_profile, Decimal("300.00"), Pledge.Status.PLEDGED)
    assert Need.objects.count() == Pledge.objects.count() == 1

    later = next_period(TODAY, "money")
    assert tasks.create_pairing_pledges(today=later.isoformat()) == 1
    assert tasks.create_pairing_pledges(today=later.isoformat()) == 0
    assert sorted(active.installments.values_list("period", flat=True)) == sorted(
        [period_of(TODAY, "money"), period_of(later, "money")]
    )


def test_a_goods_pairing_gives_once_a_season(household, donor, secretary_a):
    pairing = pairings.request_pairing(donor=donor.donor_profile, household=household, start_date=TODAY, **GOODS)
    pairings.accept_pairing(pairing_id=pairing.pk, by=secretary_a, side=pairings.VILLAGE_SIDE)
    season_end = period_end(TODAY, "goods")

    tasks.create_pairing_pledges(today=TODAY.isoformat())
    tasks.create_pairing_pledges(today=season_end.isoformat())  # still the same season
    tasks.create_pairing_pledges(today=(season_end + datetime.timedelta(days=1)).isoformat())

    needs = Need.objects.filter(pairing_installment__pairing=pairing).order_by("id")
    assert [n.pairing_installment.period for n in needs] == [
        period_of(TODAY, "goods"),
        period_of(season_end + datetime.timedelta(days=1), "goods"),
    ]
    assert all(
        n.kind == "goods" and n.item == "大米" and n.quantity == 2 and n.unit_price == Decimal("120.00") for n in needs
    )
    assert (
        list(Pledge.objects.filter(need__in=needs).values_list("quantity", "declared_value"))
        == [(2, Decimal("240.00"))] * 2
    )


def test_nothing_is_made_for_a_pairing_not_active_or_not_started(requested, household, donor, other_donor, secretary_a):
    later_start = TODAY + datetime.timedelta(days=70)
    future = pairings.request_pairing(
        donor=other_donor.donor_profile, household=household, start_date=later_start, **MONEY
    )
    pairings.accept_pairing(pairing_id=future.pk, by=secretary_a, side=pairings.VILLAGE_SIDE)

    assert tasks.create_pairing_pledges(today=TODAY.isoformat()) == 0
    assert not PairingInstallment.objects.exists()
    assert pairings.create_pairing_installment(pairing_id=requested.pk, today=TODAY) is None

    assert tasks.create_pairing_pledges(today=later_start.isoformat()) == 1
    assert PairingInstallment.objects.get().pairing == future


def test_an_installment_follows_the_normal_pledge_flow(active, county_reviewer, donor, client_of):
    tasks.create_pairing_pledges(today=TODAY.isoformat())
    gift = PairingInstallment.objects.get(pairing=active).pledge

    pledges.record_money_received(
        pledge_id=gift.pk, by=county_reviewer, amount=Decimal("300.00"), reference="BANK-PAIR-1"
    )

    gift.refresh_from_db()
    assert gift.status == Pledge.Status.RECEIVED
    assert gift.need.status == Need.Status.FULFILLED
    page = client_of(donor).get(reverse("donations:pairing-detail", args=[active.pk]))
    assert page.status_code == 200
    assert "¥300.00" in page.content.decode()
    assert page.context["page"].rows[0]["pledge"].status == Pledge.Status.RECEIVED


def test_an_installment_that_cannot_be_made_is_rolled_back_whole(active, household, areas, caplog):
    # The household moved to another village: the need is refused, nothing is kept, the next run retries.
    Household.objects.filter(pk=household.pk).update(village=areas.village_b)

    assert tasks.create_pairing_pledges(today=TODAY.isoformat()) == 0

    assert not PairingInstallment.objects.exists() and not Need.objects.exists()
    assert f"pairing {active.pk}" in caplog.text and HEAD_NAME not in caplog.text


# --- Updates, photos and the timeline -------------------------------------------------


def test_the_timeline_shows_updates_and_pledges_newest_first(active, secretary_a, donor, client_of):
    pairings.post_pairing_update(pairing_id=active.pk, by=secretary_a, text="第一次动态")
    tasks.create_pairing_pledges(today=TODAY.isoformat())
    pairings.post_pairing_update(pairing_id=active.pk, by=secretary_a, text="第二次动态")

    response = client_of(donor).get(reverse("donations:pairing-detail", args=[active.pk]))

    kinds = [event["kind"] for event in response.context["page"].rows]
    assert kinds == ["update", "pledge", "update"]
    body = response.content.decode()
    assert body.index("第二次动态") < body.index("第一次动态")


def test_the_timeline_pages_without_losing_or_repeating_events(active, secretary_a, donor, client_of, monkeypatch):
    from donations import pairing_views

    monkeypatch.setattr(pairing_views, "TIMELINE_SIZE", 2)
    for n in range(3):
        pairings.post_pairing_update(pairing_id=active.pk, by=secretary_a, text=f"动态{n}")
    tasks.create_pairing_pledges(today=TODAY.isoformat())
    client = client_of(donor)
    url = reverse("donations:pairing-detail", args=[active.pk])

    seen, cursor = [], None
    while True:
        page = client.get(url, {"after": cursor} if cursor else {}).context["page"]
        seen += [event["key"] for event in page.rows]
        cursor = page.next_cursor
        if not cursor:
            break

    assert len(seen) == len(set(seen)) == 4
    assert seen == sorted(seen, reverse=True)


def test_a_photo_reaches_the_donor_only_while_the_household_consents(active, household, secretary_a, donor, client_of):
    update = pairings.post_pairing_update(pairing_id=active.pk, by=secretary_a, text="新房子", photo=jpeg())
    photo_url = reverse("donations:pairing-update-photo", args=[update.pk])
    timeline_url = reverse("donations:pairing-detail", args=[active.pk])
    donor_client = client_of(donor)
    assert donor_client.get(photo_url).status_code == 200
    assert photo_url in donor_client.get(timeline_url).content.decode()

    household_services.record_consent(
        by=secretary_a, household_id=household.pk, subject="photo", granted=False, basis="户主口头撤回"
    )

    assert donor_client.get(photo_url).status_code == 404
    assert photo_url not in donor_client.get(timeline_url).content.decode()
    assert client_of(secretary_a).get(photo_url).status_code == 200  # the village keeps it
    with pytest.raises(ActionRefused) as refused:
        pairings.post_pairing_update(pairing_id=active.pk, by=secretary_a, text="又一张", photo=jpeg())
    assert refused.value.field == "photo"


def test_an_update_is_posted_through_the_form(active, secretary_a, client_of):
    upload = SimpleUploadedFile("phone.jpg", jpeg().read(), content_type="image/jpeg")
    response = client_of(secretary_a).post(
        reverse("donations:pairing-update-create", args=[active.pk]), {"text": "孩子上学了", "photo": upload}
    )

    assert response.status_code == 302
    update = PairingUpdate.objects.get(pairing=active)
    assert update.text == "孩子上学了" and update.photo.name.endswith(".jpg")


def test_an_update_without_text_changes_nothing(active, secretary_a, client_of):
    response = client_of(secretary_a).post(reverse("donations:pairing-update-create", args=[active.pk]), {"text": " "})

    assert response.status_code == 200
    assert "text" in response.context["form"].errors
    assert not PairingUpdate.objects.exists()


# --- Scope ---------------------------------------------------------------------------------


def _village_urls(pairing):
    return [
        ("get", reverse("donations:village-pairing-detail", args=[pairing.pk])),
        ("post", reverse("donations:village-pairing-accept", args=[pairing.pk])),
        ("post", reverse("donations:village-pairing-decline", args=[pairing.pk])),
        ("post", reverse("donations:village-pairing-end", args=[pairing.pk])),
        ("get", reverse("donations:pairing-update-create", args=[pairing.pk])),
        ("post", reverse("donations:pairing-update-create", args=[pairing.pk])),
    ]


def _donor_urls(pairing):
    return [
        ("get", reverse("donations:pairing-detail", args=[pairing.pk])),
        ("post", reverse("donations:pairing-accept", args=[pairing.pk])),
        ("post", reverse("donations:pairing-decline", args=[pairing.pk])),
        ("post", reverse("donations:pairing-end", args=[pairing.pk])),
    ]


def test_it_rejects_the_secretary_of_another_village(requested, secretary_a, secretary_b, client_of):
    outsider, insider = client_of(secretary_b), client_of(secretary_a)
    for method, url in _village_urls(requested):
        response = getattr(outsider, method)(url, {"text": "x"} if method == "post" else None)
        assert response.status_code == 404, url
    requested.refresh_from_db()
    assert requested.status == Pairing.Status.REQUESTED
    assert insider.get(_village_urls(requested)[0][1]).status_code == 200


def test_it_rejects_another_donor(active, donor, other_donor, client_of):
    outsider = client_of(other_donor)
    for method, url in _donor_urls(active):
        assert getattr(outsider, method)(url).status_code == 404, url
    active.refresh_from_db()
    assert active.status == Pairing.Status.ACTIVE
    assert client_of(donor).get(_donor_urls(active)[0][1]).status_code == 200


def test_an_update_photo_is_never_shown_to_outsiders(
    active, secretary_a, secretary_b, other_donor, client_of, anonymous
):
    update = pairings.post_pairing_update(pairing_id=active.pk, by=secretary_a, text="照片", photo=jpeg())
    url = reverse("donations:pairing-update-photo", args=[update.pk])

    assert client_of(secretary_b).get(url).status_code == 404
    assert client_of(other_donor).get(url).status_code == 404
    assert anonymous.get(url).status_code == 302  # to the login page


def test_each_side_lists_only_its_own_pairings(active, other_pairing, donor, other_donor, secretary_a, client_of):
    mine = client_of(donor).get(reverse("donations:my-pairings")).context["page"].rows
    village = client_of(secretary_a).get(reverse("donations:village-pairings")).context["page"].rows

    assert [p.pk for p in mine] == [active.pk]
    assert [p.pk for p in village] == [active.pk]


def test_role_pages_refuse_other_roles(donor, secretary_a, client_of):
    assert client_of(donor).get(reverse("donations:village-pairings")).status_code == 403
    assert client_of(donor).get(reverse("donations:pairing-invite")).status_code == 403
    assert client_of(secretary_a).get(reverse("donations:my-pairings")).status_code == 403


def test_a_secretary_invites_only_for_their_own_village_and_households(areas, secretary_a, donor, client_of):
    other_household = factories.HouseholdFactory(village=areas.village_b)
    client = client_of(secretary_a)

    assert client.get(reverse("donations:pairing-invite"), {"village": areas.village_b.pk}).status_code == 404
    response = client.post(
        reverse("donations:pairing-invite"),
        {"donor": "donor", "household": other_household.pk, "start_date": TODAY.isoformat(), **MONEY},
    )
    assert response.status_code == 200 and "household" in response.context["form"].errors
    assert not Pairing.objects.exists()


# --- Through the pages ------------------------------------------------------------------


def test_a_donor_asks_from_the_need_page_and_the_secretary_accepts(
    household, donor, secretary_a, county_reviewer, client_of, areas, django_capture_on_commit_callbacks
):
    need = factories.published_need(
        village=areas.village_a, by=secretary_a, reviewer=county_reviewer, household=household
    )
    donor_client = client_of(donor)
    need_page = donor_client.get(reverse("donations:need-detail", args=[need.pk])).content.decode()
    request_url = f"{reverse('donations:pairing-request')}?household={household.public_id}"
    assert request_url in need_page

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = donor_client.post(request_url, {"start_date": TODAY.isoformat(), "message": "你好", **MONEY})
    pairing = Pairing.objects.get()
    assert response.status_code == 302 and response.url == reverse("donations:pairing-detail", args=[pairing.pk])
    assert [m.to for m in mail.outbox] == [[secretary_a.email]]

    secretary_client = client_of(secretary_a)
    waiting = secretary_client.get(reverse("donations:village-pairings")).context["waiting"]
    assert [p.pk for p in waiting] == [pairing.pk]
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        secretary_client.post(reverse("donations:village-pairing-accept", args=[pairing.pk]))
    pairing.refresh_from_db()
    assert pairing.status == Pairing.Status.ACTIVE
    assert [m.to for m in mail.outbox] == [[donor.email]]


def test_bad_input_on_the_request_form_is_shown_next_to_the_field(household, donor, client_of):
    url = f"{reverse('donations:pairing-request')}?household={household.public_id}"

    response = client_of(donor).post(url, {"start_date": TODAY.isoformat(), "commitment": "goods", "quantity": "2"})

    assert response.status_code == 200
    assert "item" in response.context["form"].errors
    assert not Pairing.objects.exists()


def test_a_duplicate_request_through_the_form_gets_a_message(requested, household, donor, client_of):
    url = f"{reverse('donations:pairing-request')}?household={household.public_id}"

    response = client_of(donor).post(url, {"start_date": TODAY.isoformat(), **MONEY})

    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert Pairing.objects.count() == 1


def test_an_unknown_target_answers_404(donor, client_of):
    client = client_of(donor)
    assert client.get(reverse("donations:pairing-request"), {"household": "HNOTTHERE"}).status_code == 404
    assert client.get(reverse("donations:pairing-request")).status_code == 404


def test_the_secretary_invites_through_the_form(areas, household, secretary_a, donor, client_of):
    response = client_of(secretary_a).post(
        reverse("donations:pairing-invite"),
        {"donor": donor.email, "household": household.pk, "start_date": TODAY.isoformat(), **GOODS},
    )

    pairing = Pairing.objects.get()
    assert response.status_code == 302
    assert (pairing.status, pairing.donor, pairing.household) == (
        Pairing.Status.INVITED,
        donor.donor_profile,
        household,
    )
    client_of(donor).post(reverse("donations:pairing-accept", args=[pairing.pk]))
    pairing.refresh_from_db()
    assert pairing.status == Pairing.Status.ACTIVE


# --- Mail ------------------------------------------------------------------------------------


def test_mail_to_the_donor_names_the_household_only_publicly(
    household, secretary_a, donor, areas, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        pairing = pairings.invite_donor(
            by=secretary_a, donor_login="donor", household=household, start_date=TODAY, message=HEAD_NAME, **MONEY
        )
    with django_capture_on_commit_callbacks(execute=True):
        pairings.accept_pairing(pairing_id=pairing.pk, by=donor, side=pairings.DONOR_SIDE)
    with django_capture_on_commit_callbacks(execute=True):
        pairings.post_pairing_update(pairing_id=pairing.pk, by=secretary_a, text=f"{HEAD_NAME} 的近况")
    with django_capture_on_commit_callbacks(execute=True):
        pairings.end_pairing(pairing_id=pairing.pk, by=secretary_a, side=pairings.VILLAGE_SIDE, reason=HEAD_NAME)

    to_donor = [m for m in mail.outbox if m.to == [donor.email]]
    assert len(to_donor) == 3  # invited, update, ended
    for message in to_donor:
        assert HEAD_NAME not in message.subject + message.body
        assert "黄家" in message.subject + message.body
        assert areas.village_a.name_en in message.subject + message.body  # the donor reads English
    assert [m.to for m in mail.outbox if m.to != [donor.email]] == [[secretary_a.email]]  # accepted


# --- Statistics ----------------------------------------------------------------------------


def test_paired_households_are_counted_per_area(active, other_pairing, household, areas, secretary_a, anonymous):
    second = factories.HouseholdFactory(village=areas.village_a)
    third_donor = factories.make_donor(username="third_donor")
    for who in (third_donor,):
        p = pairings.request_pairing(donor=who.donor_profile, household=household, start_date=TODAY, **MONEY)
        pairings.accept_pairing(pairing_id=p.pk, by=secretary_a, side=pairings.VILLAGE_SIDE)
    pairings.request_pairing(donor=third_donor.donor_profile, household=second, start_date=TODAY, **MONEY)  # pending

    home = anonymous.get(reverse("home"))
    stats = anonymous.get(reverse("donations:pairing-stats"))

    assert home.context["stats"]["paired_households"] == 1  # two donors, one household; pending not counted
    counties = {c["area"].code: c for c in stats.context["counties"]}
    assert counties[areas.yanting.code]["households"] == 1
    assert counties[areas.yanting.code]["villages"] == 1  # village B, paired as a whole
    assert counties[areas.yanting.code]["pairings"] == 3
    townships = {t["area"].code: t for t in counties[areas.yanting.code]["townships"]}
    assert townships[areas.huangxi.code]["households"] == 1
    assert townships[areas.qianfeng.code]["villages"] == 1
    assert stats.context["totals"] == {"households": 1, "villages": 1, "pairings": 3}
    assert HEAD_NAME not in stats.content.decode()


def test_an_installment_mails_the_secretary_the_new_pledge_only(
    active, secretary_a, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        tasks.create_pairing_pledges(today=TODAY.isoformat())

    # No "the bureau published your need": the bureau did not; the pairing did.
    assert [m.to for m in mail.outbox] == [[secretary_a.email]]
    assert PairingInstallment.objects.get().need.title in mail.outbox[0].subject
