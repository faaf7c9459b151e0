"""Pledges that must be honoured (issue 14, finding 1: hoarding): a donor's
e-mail is verified before their first pledge, a new donor holds only so
much open at once, and a pledge that is not honoured can be released — by
the village, by staff, and on a schedule for unpaid money."""

import datetime
import re
from decimal import Decimal

import pytest
from django.conf import settings
from django.core import mail, signing
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone, translation

from donations import tasks
from donations.models import Donor, Need, Pledge
from donations.services import donors, pledges
from sun_commune.errors import ActionRefused
from sun_commune.models import AuditEntry

from . import factories
from .factories import pledge
from .test_concurrency import run_together, split

pytestmark = pytest.mark.usefixtures("english")  # messages read in English


@pytest.fixture
def shipped_limits(settings):
    """The limits as shipped (the suite's settings lift them elsewhere)."""
    for name, value in settings.SHIPPED_PLEDGE_LIMITS.items():
        setattr(settings, name, value)
    return settings


def open_needs(areas, secretary_a, county_reviewer, n, **overrides):
    return [
        factories.published_need(
            village=areas.village_a, by=secretary_a, reviewer=county_reviewer, title=f"需要{i}", **overrides
        )
        for i in range(n)
    ]


def refusals(action):
    return AuditEntry.objects.filter(action=action)


# --- The e-mail is verified before the first pledge --------------------------------


def test_an_unverified_donor_cannot_pledge(need_a):
    newcomer = factories.make_donor(username="newcomer", verified=False)

    with pytest.raises(ActionRefused) as refused:
        pledge(need_a, newcomer, 1)

    assert "Verify your e-mail" in str(refused.value.message)
    need_a.refresh_from_db()
    assert need_a.pledged_quantity == 0 and not Pledge.objects.exists()


def test_the_need_page_says_verify_first_with_a_link(need_a, en_client_of):
    newcomer = factories.make_donor(username="newcomer", verified=False)
    client = en_client_of(newcomer)

    page = client.get(reverse("donations:need-detail", args=[need_a.pk])).content.decode()
    assert 'id="verify-first"' in page and reverse("donations:donor-verify-status") in page

    response = client.post(reverse("donations:pledge-create", args=[need_a.pk]), {"quantity": 1, "message": ""})
    assert response.status_code == 400
    assert "Verify your e-mail address before your first pledge." in response.content.decode()
    assert not Pledge.objects.exists()


def test_the_need_page_of_a_verified_donor_has_no_warning(need_a, donor, en_client_of):
    page = en_client_of(donor).get(reverse("donations:need-detail", args=[need_a.pk])).content.decode()
    assert 'id="verify-first"' not in page


def test_the_registration_link_verifies_the_address_and_then_pledging_works(
    need_a, en_anonymous, django_capture_on_commit_callbacks
):
    """The link that opens a new account reached its address: opening the
    account verifies the donor's e-mail, once, and no second mail is sent."""
    with django_capture_on_commit_callbacks(execute=True):
        response = en_anonymous.post(
            reverse("donations:donor-register"),
            {
                "username": "fresh",
                "email": "Fresh@Example.org",
                "password1": "a-long-pass-phrase-7731",
                "password2": "a-long-pass-phrase-7731",
                "kind": "person",
                "name": "新人",
                "phone": "",
            },
        )
    assert response.status_code == 200
    donor = Donor.objects.get(user__username="fresh")
    assert not donor.email_verified
    [message] = [m for m in mail.outbox if m.to == ["Fresh@Example.org"] or m.to == ["fresh@example.org"]]
    link = re.search(r"https?://[^/\s]+(/donors/register/confirm/\S+/)", message.body)
    assert link, message.body

    response = en_anonymous.post(link.group(1))
    assert response.status_code == 302
    donor.refresh_from_db()
    assert donor.email_verified and donor.verified_at is not None
    assert AuditEntry.objects.filter(action="donor.email_verified", object_id=str(donor.pk)).count() == 1
    # Following it again changes nothing.
    en_anonymous.post(link.group(1))
    assert AuditEntry.objects.filter(action="donor.email_verified", object_id=str(donor.pk)).count() == 1

    pledges.make_pledge(need_id=need_a.pk, donor=donor, quantity=1)


def test_a_logged_in_user_becoming_a_donor_is_mailed_the_link(
    secretary_a, en_client_of, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = en_client_of(secretary_a).post(
            reverse("donations:donor-register"), {"kind": "person", "name": "书记本人", "phone": ""}, follow=True
        )
    assert "open it to verify your e-mail" in response.content.decode()
    assert [m for m in mail.outbox if m.to == [secretary_a.email] and "/donors/verify/" in m.body]
    assert not Donor.objects.get(user=secretary_a).email_verified


def test_an_expired_or_forged_link_verifies_nothing(db, en_anonymous, settings):
    user = factories.make_donor(username="newcomer", verified=False)
    donor = user.donor_profile
    token = donors.verification_token(donor)

    settings.DONOR_VERIFY_MAX_AGE_SECONDS = -1  # every link is older than that
    with pytest.raises(ActionRefused) as expired:
        donors.verify_email(token=token)
    assert "expired" in str(expired.value.message)

    settings.DONOR_VERIFY_MAX_AGE_SECONDS = 3600
    forged = signing.TimestampSigner(salt="another-salt").sign_object({"d": donor.pk, "e": user.email})
    with pytest.raises(ActionRefused):
        donors.verify_email(token=forged)
    response = en_anonymous.get(reverse("donations:donor-verify", args=[token[:-3] + "abc"]), follow=True)
    assert "This link is not valid" in response.content.decode()
    donor.refresh_from_db()
    assert not donor.email_verified


def test_a_changed_email_needs_verifying_again(db):
    user = factories.make_donor(username="mover")
    donor = Donor.objects.select_related("user").get(user=user)
    old_token = donors.verification_token(donor)
    assert donor.email_verified

    user.email = "new.address@example.org"
    user.save(update_fields=["email"])
    donor = Donor.objects.select_related("user").get(user=user)
    assert not donor.email_verified
    with pytest.raises(ActionRefused):
        donors.verify_email(token=old_token)  # made for the old address
    donors.verify_email(token=donors.verification_token(donor))
    donor.refresh_from_db()
    assert donor.email_verified


def test_the_link_is_mailed_again_at_most_once_a_minute(db, en_client_of, django_capture_on_commit_callbacks):
    user = factories.make_donor(username="newcomer", verified=False)
    Donor.objects.filter(user=user).update(verification_sent_at=timezone.now() - datetime.timedelta(minutes=5))
    client = en_client_of(user)
    assert "Mail me a new link" in client.get(reverse("donations:donor-verify-status")).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("donations:donor-verify-status"))
    assert len([m for m in mail.outbox if m.to == [user.email]]) == 1
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("donations:donor-verify-status"), follow=True)
    assert "less than a minute ago" in response.content.decode()
    assert len([m for m in mail.outbox if m.to == [user.email]]) == 1


# --- Limits on what a donor holds open (finding 1) -------------------------------------


def test_a_new_donor_cannot_take_the_whole_remainder_of_ten_needs(areas, secretary_a, county_reviewer, shipped_limits):
    """The issue's attack: a newly registered donor pledged the whole
    remainder of 10 open needs, ¥5,000 on one. Now they are stopped at the
    new donor's limits, each refusal audited, and the needs stay open."""
    needs = open_needs(areas, secretary_a, county_reviewer, 9)  # 10 blankets at 80 yuan: 800 yuan each
    needs.insert(
        0,
        factories.published_need(
            village=areas.village_a,
            by=secretary_a,
            reviewer=county_reviewer,
            kind="money",
            title="五千元",
            target_amount=Decimal("5000.00"),
        ),
    )
    hoarder = factories.make_donor(username="hoarder")

    made, refused = [], []
    for need in needs:
        try:
            made.append(pledge(need, hoarder))
        except ActionRefused as refusal:
            refused.append(refusal)

    held = Pledge.objects.open().filter(donor=hoarder.donor_profile)
    assert len(made) <= shipped_limits.PLEDGE_OPEN_LIMIT_NEW
    assert held.aggregate(v=Sum("declared_value"))["v"] <= shipped_limits.PLEDGE_OPEN_YUAN_LIMIT_NEW
    assert len(made) + len(refused) == 10 and len(refused) >= 7
    assert Need.objects.filter(pk__in=[n.pk for n in needs], status=Need.Status.PUBLISHED).count() == len(refused)
    assert needs[0].pledges.count() == 0  # the 5,000 yuan were refused whole
    assert refusals("pledge.refused_limit").count() == len(refused)
    assert all("at once" in str(r.message) for r in refused)


def test_the_count_limit_refuses_the_next_open_pledge_and_changes_nothing(
    areas, secretary_a, county_reviewer, shipped_limits
):
    shipped_limits.PLEDGE_OPEN_LIMIT_NEW = 3
    needs = open_needs(areas, secretary_a, county_reviewer, 4)
    newcomer = factories.make_donor(username="newcomer")
    for need in needs[:3]:
        pledge(need, newcomer, 1)

    with pytest.raises(ActionRefused) as refused:
        pledge(needs[3], newcomer, 1)

    assert "3 open pledges" in str(refused.value.message)
    needs[3].refresh_from_db()
    assert needs[3].pledged_quantity == 0 and Pledge.objects.count() == 3
    [entry] = refusals("pledge.refused_limit")
    assert entry.actor == newcomer and entry.changes["open"] == 3 and entry.changes["limit"] == 3

    # Cancelling one makes room again.
    pledges.cancel_pledge(pledge_id=Pledge.objects.first().pk, by=newcomer)
    pledge(needs[3], newcomer, 1)


def test_an_established_donor_has_the_looser_limits(areas, secretary_a, county_reviewer, shipped_limits):
    regular = factories.make_donor(username="regular")
    donor = regular.donor_profile
    honoured = open_needs(areas, secretary_a, county_reviewer, 2)
    for need in honoured:
        pledges.confirm_receipt(pledge_id=pledge(need, regular, 1).pk, by=secretary_a, quantity=1)
    assert pledges.open_limits(donor)[2] is True  # two gifts arrived, but the account is new
    Donor.objects.filter(pk=donor.pk).update(created_at=timezone.now() - datetime.timedelta(days=31))
    donor.refresh_from_db()

    most, most_yuan, new = pledges.open_limits(donor)
    assert (most, most_yuan, new) == (
        shipped_limits.PLEDGE_OPEN_LIMIT,
        shipped_limits.PLEDGE_OPEN_YUAN_LIMIT,
        False,
    )
    for need in open_needs(areas, secretary_a, county_reviewer, shipped_limits.PLEDGE_OPEN_LIMIT_NEW + 2):
        pledges.make_pledge(need_id=need.pk, donor=donor, quantity=need.remaining)
    assert Pledge.objects.open().filter(donor=donor).count() == shipped_limits.PLEDGE_OPEN_LIMIT_NEW + 2


def test_the_limit_refusal_is_shown_on_the_need_page(need_a, en_client_of, shipped_limits):
    shipped_limits.PLEDGE_OPEN_YUAN_LIMIT_NEW = Decimal("100")
    newcomer = factories.make_donor(username="newcomer")

    response = en_client_of(newcomer).post(
        reverse("donations:pledge-create", args=[need_a.pk]), {"quantity": 2, "message": ""}
    )

    assert response.status_code == 400
    assert "at most 100.00 yuan open at once" in response.content.decode()
    need_a.refresh_from_db()
    assert need_a.pledged_quantity == 0


@pytest.mark.django_db(transaction=True)
def test_pledges_made_at_once_do_not_pass_the_limit_together(areas, secretary_a, county_reviewer, shipped_limits):
    shipped_limits.PLEDGE_OPEN_LIMIT_NEW = 3
    shipped_limits.PLEDGE_OPEN_YUAN_LIMIT_NEW = Decimal("100000")  # the count is what is raced here
    needs = open_needs(areas, secretary_a, county_reviewer, 8)
    newcomer = factories.make_donor(username="racer").donor_profile

    def take(i):
        with translation.override("en"):  # each thread has its own language
            return pledges.make_pledge(need_id=needs[i].pk, donor=newcomer, quantity=10)

    results = run_together(8, take)

    made, refused = split(results)
    assert len(made) == 3 and len(refused) == 5
    assert Pledge.objects.open().filter(donor=newcomer).count() == 3
    assert Need.objects.filter(status=Need.Status.FULLY_PLEDGED).count() == 3
    assert refusals("pledge.refused_limit").count() == 5
    assert all("3 open pledges" in str(r.message) for r in refused)


@pytest.mark.django_db(transaction=True)
def test_pledges_made_at_once_do_not_pass_the_yuan_limit_together(areas, secretary_a, county_reviewer, shipped_limits):
    # 800 yuan each against 2,000 yuan: two fit, whichever come first.
    needs = open_needs(areas, secretary_a, county_reviewer, 6)
    newcomer = factories.make_donor(username="racer").donor_profile

    results = run_together(6, lambda i: pledges.make_pledge(need_id=needs[i].pk, donor=newcomer, quantity=10))

    made, refused = split(results)
    assert len(made) == 2 and len(refused) == 4
    held = Pledge.objects.open().filter(donor=newcomer).aggregate(v=Sum("declared_value"))["v"]
    assert held == Decimal("1600.00") <= shipped_limits.PLEDGE_OPEN_YUAN_LIMIT_NEW


def test_a_pairing_installment_is_not_held_to_the_limits(need_a, shipped_limits):
    shipped_limits.PLEDGE_OPEN_YUAN_LIMIT_NEW = Decimal("1")
    newcomer = factories.make_donor(username="newcomer", verified=False)

    made = pledges.make_pledge(need_id=need_a.pk, donor=newcomer.donor_profile, quantity=2, exempt="pairing")

    entry = AuditEntry.objects.get(action="pledge.created", object_id=str(made.pk))
    assert entry.changes["exempt"] == "pairing"


# --- Releasing a pledge that is not honoured ---------------------------------------------


def test_the_secretary_releases_a_pledge_and_the_donor_is_told_why(
    need_a, donor, secretary_a, en_client_of, django_capture_on_commit_callbacks
):
    p = pledge(need_a, donor, 6)
    client = en_client_of(secretary_a)
    page = client.get(reverse("donations:village-needs")).content.decode()
    url = reverse("donations:pledge-release-village", args=[p.pk])
    assert url in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"reason": "三个月没有消息，电话也打不通。"})

    assert response.status_code == 302
    p.refresh_from_db()
    need_a.refresh_from_db()
    assert (p.status, p.released_by, p.release_reason) == (
        Pledge.Status.RELEASED,
        secretary_a,
        "三个月没有消息，电话也打不通。",
    )
    assert (need_a.status, need_a.pledged_quantity) == (Need.Status.PUBLISHED, 0)
    entry = AuditEntry.objects.get(action="pledge.released")
    assert entry.actor == secretary_a and entry.changes["reason"] == p.release_reason
    [message] = [m for m in mail.outbox if m.to == [donor.email]]
    assert "三个月没有消息" in message.body and need_a.title in message.subject
    assert "三个月没有消息" in en_client_of(donor).get(reverse("donations:my-pledges")).content.decode()
    # The public need page no longer lists it.
    public = en_client_of(donor).get(reverse("donations:need-detail", args=[need_a.pk]))
    assert list(public.context["pledges"]) == []


def test_releasing_needs_a_reason_and_an_open_pledge(need_a, donor, secretary_a, en_client_of):
    p = pledge(need_a, donor, 6)

    response = en_client_of(secretary_a).post(reverse("donations:pledge-release-village", args=[p.pk]), {"reason": " "})

    assert response.status_code == 200
    p.refresh_from_db()
    assert p.status == Pledge.Status.PLEDGED
    with pytest.raises(ActionRefused) as refused:
        pledges.release_pledge(pledge_id=p.pk, by=secretary_a, reason="")
    assert refused.value.field == "reason"
    pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=6)
    with pytest.raises(ActionRefused):
        pledges.release_pledge(pledge_id=p.pk, by=secretary_a, reason="late")


def test_staff_over_the_area_release_and_others_get_404(
    money_need_a, donor, county_reviewer, other_county_reviewer, secretary_b, en_client_of
):
    p = pledge(money_need_a, donor, Decimal("300"))
    url = reverse("donations:pledge-release-staff", args=[p.pk])
    assert url in en_client_of(county_reviewer).get(reverse("donations:money-list")).content.decode()

    assert en_client_of(other_county_reviewer).post(url, {"reason": "x"}).status_code == 404
    village_url = reverse("donations:pledge-release-village", args=[p.pk])
    assert en_client_of(secretary_b).post(village_url, {"reason": "x"}).status_code == 404
    p.refresh_from_db()
    assert p.status == Pledge.Status.PLEDGED

    assert en_client_of(county_reviewer).post(url, {"reason": "No transfer after two reminders."}).status_code == 302
    p.refresh_from_db()
    money_need_a.refresh_from_db()
    assert p.status == Pledge.Status.RELEASED and money_need_a.pledged_amount == 0


def test_unpaid_money_pledges_are_released_on_schedule_once(
    money_need_a, need_a, donor, other_donor, county_reviewer, settings, django_capture_on_commit_callbacks
):
    settings.MONEY_PLEDGE_RELEASE_DAYS = 14
    stale = pledge(money_need_a, donor, Decimal("300"))
    paid = pledge(money_need_a, other_donor, Decimal("200"))
    pledges.record_money_received(pledge_id=paid.pk, by=county_reviewer, amount="200", reference="ICBC-9")
    fresh = pledge(money_need_a, other_donor, Decimal("100"))
    goods = pledge(need_a, donor, 2)
    long_ago = timezone.now() - datetime.timedelta(days=15)
    Pledge.objects.filter(pk__in=[stale.pk, paid.pk, goods.pk]).update(created_at=long_ago)

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.release_unpaid_money_pledges.delay().get() == 1
    assert tasks.release_unpaid_money_pledges() == 0  # twice: nothing more

    statuses = dict(Pledge.objects.values_list("pk", "status"))
    assert statuses[stale.pk] == Pledge.Status.RELEASED
    assert statuses[paid.pk] == Pledge.Status.RECEIVED
    assert statuses[fresh.pk] == Pledge.Status.PLEDGED
    assert statuses[goods.pk] == Pledge.Status.PLEDGED
    money_need_a.refresh_from_db()
    assert money_need_a.pledged_amount == Decimal("300.00")  # the paid 200 and the fresh 100
    assert AuditEntry.objects.filter(action="pledge.released").count() == 1
    assert "14" in Pledge.objects.get(pk=stale.pk).release_reason
    assert [m for m in mail.outbox if m.to == [donor.email] and "14" in m.body]


def test_the_release_runs_in_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["release-unpaid-pledges"]
    assert entry["task"] == "donations.tasks.release_unpaid_money_pledges"
