"""A registered household joins a cooperative only with its side's consent
(issue 14, finding 4): a manager who enters a household by the public id a
need page shows gets a request, never the head's name, and nothing goes in
the share register until the household's village confirms."""

import importlib
from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

from cooperatives.models import Member, ShareEvent
from cooperatives.services import loans, purchases, register
from sun_commune.errors import ActionRefused
from sun_commune.models import AuditEntry

from . import factories
from .coop_factories import YEAR, add_farmer, make_cooperative

NAME = "MARKER-HEAD-7731"


@pytest.fixture
def asked(areas, county_reviewer, secretary_a, secretary_b, client_of, django_capture_on_commit_callbacks):
    """A cooperative of village A whose manager enters, by its public id, a
    household of village B (same county) that never agreed to anything."""
    coop = make_cooperative(area=areas.village_a, staff=county_reviewer, manager_username="manager_a")
    secretary_b.email = "secretary_b@example.com"
    secretary_b.save(update_fields=["email"])
    coop.manager.email = "manager_a@example.com"
    coop.manager.save(update_fields=["email"])
    household = factories.HouseholdFactory(village=areas.village_b, head_name=NAME)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_of(coop.manager).post(
            reverse("cooperatives:member-create", args=[coop.pk]),
            {
                "kind": "household",
                "household": household.public_id,
                "joined_on": date(YEAR, 2, 1).isoformat(),
                "subsidy_capital": "3000",
                "land_mu": "1.5",
                "yearly_rent": "600",
            },
        )
    assert response.status_code == 302
    member = Member.objects.get(household=household)
    return SimpleNamespace(coop=coop, household=household, member=member)


def zh(message):
    with translation.override("zh-hans"):
        return gettext(message)


def test_entering_a_household_is_only_a_request_that_shows_no_name(asked, client_of):
    member, manager = asked.member, asked.coop.manager
    assert member.standing == Member.Standing.REQUESTED
    assert not member.share_events.exists()
    for url in (
        reverse("cooperatives:member-list", args=[asked.coop.pk]),
        reverse("cooperatives:member-statement", args=[member.pk]),
    ):
        page = client_of(manager).get(url).content.decode()
        assert asked.household.public_id in page
        assert NAME not in page


def test_the_register_takes_nothing_of_a_household_not_confirmed(asked, client_of):
    member, manager = asked.member, asked.coop.manager
    farmer = add_farmer(asked.coop)
    day = date(YEAR, 3, 1)
    actions = [
        lambda: register.increase_shares(by=manager, member_id=member.pk, holding="own", quantity=1, occurred_on=day),
        lambda: register.transfer_shares(
            by=manager, from_member_id=farmer.pk, to_member_id=member.pk, holding="own", quantity=1, occurred_on=day
        ),
        lambda: register.exit_member(by=manager, member_id=member.pk, occurred_on=day),
        lambda: loans.create_loan(
            by=manager,
            member_id=member.pk,
            lender="信用社",
            principal=Decimal("1000"),
            annual_rate_percent=Decimal("4"),
            term_months=12,
            period_months=12,
            started_on=day,
        ),
        lambda: purchases.create_contract(
            by=manager,
            member_id=member.pk,
            product="生猪",
            unit="kg",
            agreed_price=Decimal("14"),
            guaranteed_price=Decimal("12"),
            quantity=Decimal("10"),
            season="2023年",
            year=YEAR,
            signed_on=day,
        ),
    ]
    before = (ShareEvent.objects.count(), AuditEntry.objects.count())
    for act in actions:
        with pytest.raises(ActionRefused):
            act()
    assert (ShareEvent.objects.count(), AuditEntry.objects.count()) == before
    # Through the page: the refusal is said, translated.
    client = client_of(manager)
    client.cookies["django_language"] = "zh-hans"
    response = client.post(
        reverse("cooperatives:shares-increase", args=[asked.coop.pk, member.pk]),
        {"holding": "own", "quantity": "100", "occurred_on": day.isoformat()},
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert response.status_code == 200
    english = (
        "The household's village has not confirmed this membership yet: nothing can be entered for the member until it "
        "does."
    )
    assert zh(english) != english and zh(english) in response.content.decode()
    assert ShareEvent.objects.count() == before[0]


def test_the_village_secretary_is_mailed_and_confirms_on_their_page(
    asked, client_of, secretary_b, django_capture_on_commit_callbacks
):
    assert [m.to for m in mail.outbox] == [["secretary_b@example.com"]]
    assert NAME not in mail.outbox[0].body and asked.household.public_id in mail.outbox[0].body
    page = client_of(secretary_b).get(reverse("cooperatives:membership-requests")).content.decode()
    assert NAME in page and asked.coop.name in page
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_of(secretary_b).post(
            reverse("cooperatives:membership-confirm", args=[asked.member.pk]), {"basis": "户主签了入社申请书"}
        )
    assert response.status_code == 302
    member = Member.objects.get(pk=asked.member.pk)
    assert member.standing == Member.Standing.CONFIRMED and member.decided_by == secretary_b
    assert member.consent_basis == "户主签了入社申请书"
    held = register.holdings(member.pk)
    assert (held["subsidy"], held["land"]) == (Decimal("3000.00"), Decimal("1.50"))
    assert member.share_events.get(holding="land").yearly_rent == Decimal("600.00")
    assert member.share_events.filter(recorded_by=asked.coop.manager).count() == 2
    assert AuditEntry.objects.filter(action="cooperative.member_confirmed", object_id=str(member.pk)).exists()
    assert [m.to for m in mail.outbox] == [["manager_a@example.com"]]
    members = client_of(asked.coop.manager).get(reverse("cooperatives:member-list", args=[asked.coop.pk]))
    assert NAME in members.content.decode()
    # Confirming again changes nothing; the request is gone from the page.
    assert client_of(secretary_b).get(reverse("cooperatives:membership-requests")).content.decode().count(NAME) == 0


def test_a_confirmation_without_a_basis_is_refused(asked, client_of, secretary_b):
    response = client_of(secretary_b).post(
        reverse("cooperatives:membership-confirm", args=[asked.member.pk]), {"basis": "  "}
    )
    assert response.status_code == 302
    assert Member.objects.get(pk=asked.member.pk).standing == Member.Standing.REQUESTED
    assert not ShareEvent.objects.filter(member=asked.member).exists()
    with pytest.raises(ActionRefused):
        register.confirm_membership(by=secretary_b, member_id=asked.member.pk, basis="")


def test_only_the_households_village_answers(asked, client_of, secretary_a, county_reviewer):
    for outsider in (secretary_a, asked.coop.manager):
        for name in ("membership-confirm", "membership-decline"):
            response = client_of(outsider).post(reverse(f"cooperatives:{name}", args=[asked.member.pk]), {"basis": "x"})
            assert response.status_code in (403, 404)
    for outsider in (secretary_a, asked.coop.manager, county_reviewer):
        with pytest.raises(ActionRefused):
            register.confirm_membership(by=outsider, member_id=asked.member.pk, basis="冒充")
    assert Member.objects.get(pk=asked.member.pk).standing == Member.Standing.REQUESTED


def test_a_declined_request_enters_nothing_and_may_be_asked_again(
    asked, client_of, secretary_b, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        client_of(secretary_b).post(reverse("cooperatives:membership-decline", args=[asked.member.pk]))
    member = Member.objects.get(pk=asked.member.pk)
    assert member.standing == Member.Standing.DECLINED and not member.share_events.exists()
    assert [m.to for m in mail.outbox] == [["manager_a@example.com"]] and NAME not in mail.outbox[0].body
    with pytest.raises(ActionRefused):
        register.confirm_membership(by=secretary_b, member_id=member.pk, basis="后来又同意")
    again = register.add_member(
        by=asked.coop.manager,
        cooperative_id=asked.coop.pk,
        kind=Member.Kind.HOUSEHOLD,
        household=asked.household,
        joined_on=date(YEAR, 4, 1),
    )
    assert again.standing == Member.Standing.REQUESTED and again.number == member.number + 1


def test_a_request_is_not_counted_nor_shared_in_a_distribution(asked, client_of):
    from cooperatives.services import distributions  # noqa: PLC0415 -- leaf

    inputs, _extras = distributions.distribution_inputs(asked.coop, YEAR)
    assert asked.member.pk not in {i.member_id for i in inputs}
    page = client_of(asked.coop.manager).get(reverse("cooperatives:cooperative-detail", args=[asked.coop.pk]))
    assert page.context["counts"] == {"members": 0, "poor": 0}


def test_members_entered_before_the_rule_are_confirmed_by_the_migration(asked):
    """The data step of cooperatives/0004: every row that existed is confirmed."""
    from django.apps import apps  # noqa: PLC0415 -- leaf

    migration = importlib.import_module("cooperatives.migrations.0004_member_standing")
    Member.objects.filter(pk=asked.member.pk).update(standing=Member.Standing.REQUESTED)
    migration.existing_members_confirmed(apps, None)
    assert Member.objects.get(pk=asked.member.pk).standing == Member.Standing.CONFIRMED
