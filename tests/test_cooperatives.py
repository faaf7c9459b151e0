"""Cooperatives: scope (404 outside one's cooperatives and areas), approval
before payment, each payment once, the share register's history, loans and
their reminders, income records, public pages without personal data, bad
input refused next to its field, reports."""

import threading
from datetime import date, timedelta
from decimal import Decimal
from io import BytesIO
from types import SimpleNamespace

import pytest
from django.core import mail
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext
from openpyxl import load_workbook

from cooperatives import tasks
from cooperatives.models import (
    Delivery,
    Distribution,
    DistributionLine,
    DistributionRules,
    Loan,
    Member,
    ShareEvent,
)
from cooperatives.services import coops, distributions, loans, register
from households.models import IncomeRecord
from sun_commune.errors import ActionRefused
from sun_commune.models import AuditEntry

from . import factories
from .coop_factories import YEAR, add_farmer, deliver, make_cooperative, populated


@pytest.fixture
def world(areas, county_reviewer, other_county_reviewer, secretary_a, secretary_b):
    """A cooperative of village A (Yanting county) with a poor household and a
    farmer, and another cooperative in Zitong county with its own manager."""
    coop = make_cooperative(area=areas.village_a, staff=county_reviewer, manager_username="manager_a")
    household = factories.HouseholdFactory(village=areas.village_a, head_name="MARKER-NAME-5521")
    poor, farmer = populated(coop, household)
    other = make_cooperative(
        area=areas.village_c, staff=other_county_reviewer, manager_username="manager_c", name="兰干村合作社"
    )
    return SimpleNamespace(coop=coop, household=household, poor=poor, farmer=farmer, other=other)


@pytest.fixture
def preview(world):
    return distributions.compute_distribution(
        by=world.coop.manager, cooperative_id=world.coop.pk, year=YEAR, surplus=Decimal("5000.00")
    )


@pytest.fixture
def approved(preview, county_reviewer):
    return distributions.approve_distribution(by=county_reviewer, distribution_id=preview.pk)


# --- Scope ------------------------------------------------------------------------------------


def keeper_urls(world, dist, line=None):
    pk = world.coop.pk
    urls = [
        ("get", reverse("cooperatives:cooperative-manage", args=[pk])),
        ("get", reverse("cooperatives:member-list", args=[pk])),
        ("get", reverse("cooperatives:delivery-list", args=[pk])),
        ("get", reverse("cooperatives:cooperative-report", args=[pk])),
        ("get", reverse("cooperatives:distribution-detail", args=[pk, dist.pk])),
        ("get", reverse("cooperatives:member-statement", args=[world.poor.pk])),
        ("get", reverse("cooperatives:loan-detail", args=[pk, world.poor.loans.get().pk])),
        ("get", reverse("cooperatives:rules-edit", args=[pk])),
        ("post", reverse("cooperatives:rules-edit", args=[pk])),
        ("get", reverse("cooperatives:member-create", args=[pk])),
        ("post", reverse("cooperatives:shares-increase", args=[pk, world.poor.pk])),
        ("post", reverse("cooperatives:member-exit", args=[pk, world.poor.pk])),
        ("post", reverse("cooperatives:distribution-compute", args=[pk])),
        ("post", reverse("cooperatives:distribution-approve", args=[pk, dist.pk])),
        ("post", reverse("cooperatives:distribution-pay-all", args=[pk, dist.pk])),
        ("get", reverse("cooperatives:manager-grant", args=[pk])),
    ]
    if line is not None:
        urls.append(("post", reverse("cooperatives:line-pay", args=[pk, line.pk])))
    return urls


def snapshot():
    return (
        AuditEntry.objects.count(),
        ShareEvent.objects.count(),
        list(Distribution.objects.order_by("pk").values_list("status", "unpaid_count")),
        list(DistributionLine.objects.order_by("pk").values_list("paid_at", flat=True)),
        list(DistributionRules.objects.order_by("pk").values_list("volume_share_percent", flat=True)),
        list(Member.objects.order_by("pk").values_list("exited_on", flat=True)),
    )


@pytest.mark.parametrize("outsider", ["manager_c", "other_county_reviewer"])
def test_it_answers_404_to_a_manager_of_another_cooperative_and_staff_of_another_county(
    world, approved, outsider, other_county_reviewer, client_of
):
    user = world.other.manager if outsider == "manager_c" else other_county_reviewer
    client = client_of(user)
    line = approved.lines.filter(total__gt=0).first()
    before = snapshot()
    for method, url in keeper_urls(world, approved, line):
        response = getattr(client, method)(url, {"year": YEAR, "surplus": "1", "volume_share_percent": "70"})
        assert response.status_code == 404, (method, url, response.status_code)
    assert snapshot() == before


def test_it_answers_404_to_the_secretary_of_another_village(world, secretary_a, secretary_b, client_of):
    url = reverse("cooperatives:member-statement", args=[world.poor.pk])
    assert client_of(secretary_b).get(url).status_code == 404
    # The farmer is not a household of village A: its secretary does not see him either.
    assert (
        client_of(secretary_a).get(reverse("cooperatives:member-statement", args=[world.farmer.pk])).status_code == 404
    )
    page = client_of(secretary_a).get(url)
    assert page.status_code == 200 and "MARKER-NAME-5521" in page.content.decode()
    listing = client_of(secretary_a).get(reverse("cooperatives:statement-list")).content.decode()
    assert url in listing


def test_the_insiders_get_in(world, approved, county_reviewer, client_of):
    for user in (world.coop.manager, county_reviewer):
        client = client_of(user)
        for method, url in keeper_urls(world, approved):
            if method == "get" and "managers" not in url and "rules" not in url and "new" not in url:
                assert client.get(url).status_code == 200, url
    assert (
        client_of(world.coop.manager).get(reverse("cooperatives:rules-edit", args=[world.coop.pk])).status_code == 200
    )
    assert (
        client_of(county_reviewer).get(reverse("cooperatives:manager-grant", args=[world.coop.pk])).status_code == 200
    )


def test_role_pages_answer_403_and_the_anonymous_log_in(world, preview, donor, county_reviewer, client_of, anonymous):
    assert client_of(donor).get(reverse("cooperatives:my-cooperatives")).status_code == 403
    # Staff over the area read the books but do not keep them; the manager does not approve.
    assert client_of(county_reviewer).post(reverse("cooperatives:rules-edit", args=[world.coop.pk])).status_code == 403
    approve = reverse("cooperatives:distribution-approve", args=[world.coop.pk, preview.pk])
    assert client_of(world.coop.manager).post(approve).status_code == 403
    assert (
        client_of(world.coop.manager).get(reverse("cooperatives:manager-grant", args=[world.coop.pk])).status_code
        == 403
    )
    response = anonymous.get(reverse("cooperatives:member-statement", args=[world.poor.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_only_staff_over_the_area_appoint_managers(world, other_county_reviewer, county_reviewer, client_of):
    newcomer = factories.UserFactory(username="newcomer")
    with pytest.raises(ActionRefused):
        coops.grant_manager(by=other_county_reviewer, cooperative_id=world.coop.pk, user=newcomer)
    response = client_of(county_reviewer).post(
        reverse("cooperatives:manager-grant", args=[world.coop.pk]), {"username": "newcomer"}
    )
    assert response.status_code == 302
    assert AuditEntry.objects.filter(action="cooperative.manager_granted", changes__user=newcomer.pk).exists()
    assert client_of(newcomer).get(reverse("cooperatives:cooperative-manage", args=[world.coop.pk])).status_code == 200


# --- The distribution: preview, approval, payment ----------------------------------------------


def test_the_preview_adds_up_and_can_be_reproduced(world, preview):
    lines = list(preview.lines.all())
    assert sum(line.total for line in lines) == preview.surplus == Decimal("5000.00")
    assert preview.volume_total == Decimal("3000.00") and preview.fixed_total == Decimal(
        "700.00"
    )  # 6% of 10,000 + 5% of 2,000
    result = distributions.recompute(preview)
    assert {x.member_id: x.yuan("total") for x in result.lines} == {line.member_id: line.total for line in lines}
    poor = preview.lines.get(member=world.poor)
    assert poor.fixed_return == Decimal("700.00") and poor.is_poor
    # Capital weight: loan 10,000 + subsidy 2,000 + 2.5 mu × 1,000 + 20 days × 100.
    assert poor.capital_weight == Decimal("16500")
    # Computing again replaces the preview.
    again = distributions.compute_distribution(
        by=world.coop.manager, cooperative_id=world.coop.pk, year=YEAR, surplus=Decimal("6000")
    )
    assert again.pk == preview.pk and again.lines.count() == 2
    assert sum(line.total for line in again.lines.all()) == Decimal("6000.00")


def test_payment_requires_approval_by_staff_over_the_area(world, preview, county_reviewer, client_of):
    line = preview.lines.get(member=world.poor)
    with pytest.raises(ActionRefused):
        distributions.record_payment(by=world.coop.manager, line_id=line.pk)
    manager = client_of(world.coop.manager)
    before = snapshot()
    response = manager.post(reverse("cooperatives:line-pay", args=[world.coop.pk, line.pk]), follow=True)
    assert response.status_code == 200 and snapshot() == before
    manager.post(reverse("cooperatives:distribution-pay-all", args=[world.coop.pk, preview.pk]))
    assert snapshot() == before
    assert (
        not IncomeRecord.objects.filter(origin__startswith="coop-").exclude(origin__startswith="coop-delivery").exists()
    )

    client_of(county_reviewer).post(reverse("cooperatives:distribution-approve", args=[world.coop.pk, preview.pk]))
    preview.refresh_from_db()
    assert preview.status == Distribution.Status.APPROVED and preview.approved_by == county_reviewer
    with pytest.raises(ActionRefused):
        distributions.compute_distribution(
            by=world.coop.manager, cooperative_id=world.coop.pk, year=YEAR, surplus=Decimal("1")
        )
    with pytest.raises(ActionRefused):  # the year's deliveries and register are closed too
        deliver(world.coop, world.poor.contracts.get(), day=date(YEAR, 10, 1))
    with pytest.raises(ActionRefused) as refusal:
        register.increase_shares(
            by=world.coop.manager,
            member_id=world.farmer.pk,
            holding="own",
            quantity=Decimal("1"),
            occurred_on=date(YEAR, 10, 1),
        )
    assert refusal.value.field == "occurred_on"
    manager.post(reverse("cooperatives:line-pay", args=[world.coop.pk, line.pk]))
    line.refresh_from_db()
    assert line.paid_at is not None


def test_a_payment_is_recorded_once_even_if_recorded_twice(world, approved, client_of):
    line = approved.lines.get(member=world.poor)
    distributions.record_payment(by=world.coop.manager, line_id=line.pk, note="BANK-1")
    first = snapshot()
    distributions.record_payment(by=world.coop.manager, line_id=line.pk, note="BANK-2")
    client_of(world.coop.manager).post(reverse("cooperatives:line-pay", args=[world.coop.pk, line.pk]))
    assert snapshot() == first
    line.refresh_from_db()
    assert line.payment_note == "BANK-1"
    records = IncomeRecord.objects.filter(household=world.household, year=YEAR).exclude(
        origin__startswith="coop-delivery"
    )
    assert sorted(records.values_list("source", "amount")) == sorted(
        [("dividend", line.fixed_return + line.capital_return), ("rebate", line.volume_return)]
    )
    approved.refresh_from_db()
    assert approved.unpaid_count == 1 and approved.status == Distribution.Status.APPROVED
    # The rest, by the task; run twice, it pays nothing twice.
    tasks.pay_distribution(distribution_id=approved.pk, by_id=world.coop.manager.pk)
    tasks.pay_distribution(distribution_id=approved.pk, by_id=world.coop.manager.pk)
    approved.refresh_from_db()
    assert approved.status == Distribution.Status.PAID and approved.unpaid_count == 0
    assert AuditEntry.objects.filter(action="cooperative.dividend_paid").count() == 2
    # The farmer is not a registered household: no income record for him.
    assert IncomeRecord.objects.filter(year=YEAR).exclude(household=world.household).count() == 0


@pytest.mark.django_db(transaction=True)
def test_two_clerks_recording_the_same_payment_at_once_record_it_once(areas, county_reviewer, other_county_reviewer):
    coop = make_cooperative(area=areas.village_a, staff=county_reviewer, manager_username="manager_a")
    household = factories.HouseholdFactory(village=areas.village_a)
    populated(coop, household)
    dist = distributions.compute_distribution(
        by=coop.manager, cooperative_id=coop.pk, year=YEAR, surplus=Decimal("5000")
    )
    distributions.approve_distribution(by=county_reviewer, distribution_id=dist.pk)
    line = dist.lines.get(member__household=household)
    barrier = threading.Barrier(2)
    errors = []

    def pay():
        try:
            barrier.wait()
            distributions.record_payment(by=coop.manager, line_id=line.pk)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=pay) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert AuditEntry.objects.filter(action="cooperative.dividend_paid").count() == 1
    assert IncomeRecord.objects.filter(origin__startswith=line.payment_reference.lower()).count() == 2
    assert Distribution.objects.get(pk=dist.pk).unpaid_count == 1


def test_a_surplus_too_small_for_the_fixed_returns_is_refused_next_to_the_field(world, client_of):
    response = client_of(world.coop.manager).post(
        reverse("cooperatives:distribution-compute", args=[world.coop.pk]), {"year": YEAR, "surplus": "1000.00"}
    )
    assert response.status_code == 200 and response.context["form"].errors.get("surplus")
    assert not Distribution.objects.exists()


def test_the_public_sees_totals_and_no_personal_data(world, approved, anonymous):
    distributions.record_all_payments(by=world.coop.manager, distribution_id=approved.pk)
    for url in (
        reverse("cooperatives:cooperative-list"),
        reverse("cooperatives:cooperative-detail", args=[world.coop.pk]),
    ):
        html = anonymous.get(url).content.decode()
        for private in ("MARKER-NAME-5521", "王建国", world.household.public_id):
            assert private not in html, (url, private)
    detail = anonymous.get(reverse("cooperatives:cooperative-detail", args=[world.coop.pk])).content.decode()
    assert "5,000.00" in detail  # the surplus
    line = approved.lines.get(member=world.poor)
    assert line.total.to_eng_string() in detail.replace(",", "")  # one poor household: the average is its total
    # A preview is not public.
    other_dist = distributions.compute_distribution(
        by=world.coop.manager, cooperative_id=world.coop.pk, year=YEAR - 1, surplus=Decimal("0")
    )
    assert (
        f"<td>{other_dist.year}</td>"
        not in anonymous.get(reverse("cooperatives:cooperative-detail", args=[world.coop.pk])).content.decode()
    )


# --- The share register --------------------------------------------------------------------------


def test_the_share_register_keeps_every_change(world):
    farmer, poor = world.farmer, world.poor
    second = add_farmer(world.coop, "李正洪", own=Decimal("5000"))
    register.increase_shares(
        by=world.coop.manager,
        member_id=farmer.pk,
        holding="own",
        quantity=Decimal("1000"),
        occurred_on=date(YEAR, 3, 1),
    )
    register.increase_shares(
        by=world.coop.manager,
        member_id=farmer.pk,
        holding="land",
        quantity=Decimal("3"),
        occurred_on=date(YEAR, 3, 1),
        yearly_rent=Decimal("1200"),
    )
    with pytest.raises(ActionRefused):  # on 1 February the farmer held only 20,000
        register.transfer_shares(
            by=world.coop.manager,
            from_member_id=farmer.pk,
            to_member_id=second.pk,
            holding="own",
            quantity=Decimal("20500"),
            occurred_on=date(YEAR, 2, 1),
        )
    out, into = register.transfer_shares(
        by=world.coop.manager,
        from_member_id=farmer.pk,
        to_member_id=second.pk,
        holding="own",
        quantity=Decimal("6000"),
        occurred_on=date(YEAR, 4, 1),
    )
    assert out.transfer_key == into.transfer_key and (out.quantity, into.quantity) == (
        Decimal("-6000"),
        Decimal("6000"),
    )
    assert register.holdings(farmer.pk)["own"] == Decimal("15000")
    assert register.holdings(second.pk)["own"] == Decimal("11000")
    assert register.holdings(farmer.pk, as_of=date(YEAR, 3, 31))["own"] == Decimal("21000")
    with pytest.raises(ActionRefused) as refusal:
        register.transfer_shares(
            by=world.coop.manager,
            from_member_id=farmer.pk,
            to_member_id=second.pk,
            holding="own",
            quantity=Decimal("15000.01"),
            occurred_on=date(YEAR, 4, 2),
        )
    assert refusal.value.field == "quantity"
    with pytest.raises(ActionRefused):
        register.transfer_shares(
            by=world.coop.manager,
            from_member_id=poor.pk,
            to_member_id=second.pk,
            holding="loan",
            quantity=Decimal("1"),
            occurred_on=date(YEAR, 4, 2),
        )
    register.exit_member(by=world.coop.manager, member_id=poor.pk, occurred_on=date(YEAR, 11, 30))
    register.exit_member(by=world.coop.manager, member_id=poor.pk, occurred_on=date(YEAR, 12, 1))  # twice: nothing more
    assert all(v == 0 for v in register.holdings(poor.pk).values())
    kinds = list(poor.share_events.order_by("id").values_list("kind", "holding", "quantity"))
    assert kinds == [
        ("join", "subsidy", Decimal("2000.00")),
        ("join", "land", Decimal("2.50")),
        ("join", "labour", Decimal("20.00")),
        ("increase", "loan", Decimal("10000.00")),
        ("exit", "labour", Decimal("-20.00")),
        ("exit", "land", Decimal("-2.50")),
        ("exit", "loan", Decimal("-10000.00")),
        ("exit", "subsidy", Decimal("-2000.00")),
    ]
    # The year-end register counts the exit; the member's deliveries of the year still count.
    dist = distributions.compute_distribution(
        by=world.coop.manager, cooperative_id=world.coop.pk, year=YEAR, surplus=Decimal("5000")
    )
    line = dist.lines.get(member=poor)
    assert line.capital_return == 0 and line.fixed_return == 0 and line.volume_return > 0


def test_the_database_refuses_to_change_or_delete_a_share_event(world):
    event = world.poor.share_events.first()
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    for sql in (
        "UPDATE cooperatives_shareevent SET quantity = quantity * 2 WHERE id = %s",
        "DELETE FROM cooperatives_shareevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, [event.pk])
    event.refresh_from_db()
    assert event.quantity == Decimal("2000.00")


# --- Bad input --------------------------------------------------------------------------------


def assert_refused(response, field, message=None):
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors.get(field), f"no error on {field}: {errors.as_data()}"
    assert f'id="error_1_id_{field}"' in response.content.decode()
    if message is not None:
        with translation.override("zh-hans"):
            expected = gettext(message)
        assert expected in errors[field]


def test_rules_below_60_percent_by_volume_are_refused(world, client_of):
    before = snapshot()
    response = client_of(world.coop.manager).post(
        reverse("cooperatives:rules-edit", args=[world.coop.pk]),
        {
            "volume_share_percent": "59.99",
            "loan_fixed_rate_percent": "6",
            "subsidy_fixed_rate_percent": "5",
            "land_value_per_mu": "1000",
            "labour_value_per_day": "100",
        },
    )
    assert_refused(response, "volume_share_percent")
    with translation.override("zh-hans"):
        assert distributions.law_message() in response.context["form"].errors["volume_share_percent"]
    assert snapshot() == before
    with pytest.raises(IntegrityError), transaction.atomic():
        DistributionRules.objects.filter(cooperative=world.coop).update(volume_share_percent=Decimal("50"))


def test_a_delivery_below_the_guaranteed_price_is_refused(world, client_of):
    c = world.farmer.contracts.get()
    before = (snapshot(), Delivery.objects.count(), IncomeRecord.objects.count())
    response = client_of(world.coop.manager).post(
        reverse("cooperatives:delivery-create", args=[world.coop.pk, c.pk]),
        {
            "delivered_on": date(YEAR, 7, 1).isoformat(),
            "quantity": "50",
            "grade": "1",
            "market_price": "11.00",
            "price_paid": "11.99",
        },
    )
    assert_refused(response, "price_paid")
    with translation.override("zh-hans"):
        expected = gettext(
            "The price paid cannot be below the contract's guaranteed minimum price of %(price)s yuan."
        ) % {"price": Decimal("12.00")}
    assert expected in response.context["form"].errors["price_paid"]
    assert (snapshot(), Delivery.objects.count(), IncomeRecord.objects.count()) == before
    # The database refuses it too, whatever writes the row.
    with pytest.raises(IntegrityError), transaction.atomic():
        Delivery.objects.create(
            contract=c,
            cooperative=world.coop,
            member=world.farmer,
            delivered_on=date(YEAR, 7, 1),
            year=YEAR,
            product="生猪",
            quantity=Decimal("1"),
            market_price=Decimal("11"),
            price_paid=Decimal("11.99"),
            guaranteed_price=c.guaranteed_price,
            amount=Decimal("11.99"),
            extra_above_market=Decimal("0.99"),
        )


def test_a_member_form_with_an_unknown_household_is_refused(world, client_of):
    before = (snapshot(), Member.objects.count())
    response = client_of(world.coop.manager).post(
        reverse("cooperatives:member-create", args=[world.coop.pk]),
        {
            "kind": "household",
            "household": "HNOTEXIST1",
            "joined_on": date(YEAR, 2, 1).isoformat(),
            "own_capital": "100",
        },
    )
    assert_refused(response, "household")
    assert (snapshot(), Member.objects.count()) == before


def test_the_manager_enters_a_member_and_a_loan_through_the_pages(world, areas, client_of, secretary_b):
    household = factories.HouseholdFactory(village=areas.village_b)  # same county (Yanting)
    client = client_of(world.coop.manager)
    response = client.post(
        reverse("cooperatives:member-create", args=[world.coop.pk]),
        {
            "kind": "household",
            "household": household.public_id.lower(),
            "joined_on": date(YEAR, 2, 1).isoformat(),
            "subsidy_capital": "3000",
            "land_mu": "1.5",
            "yearly_rent": "600",
        },
    )
    assert response.status_code == 302, response.context["form"].errors
    member = Member.objects.get(household=household)
    # The household's side: village B's first secretary confirms.
    response = client_of(secretary_b).post(
        reverse("cooperatives:membership-confirm", args=[member.pk]), {"basis": "签了入社申请书"}
    )
    assert response.status_code == 302
    response = client.post(
        reverse("cooperatives:loan-create", args=[world.coop.pk, member.pk]),
        {
            "lender": "信用社",
            "principal": "50000",
            "annual_rate_percent": "4.35",
            "term_months": "36",
            "period_months": "12",
            "started_on": date(YEAR, 2, 1).isoformat(),
        },
    )
    assert response.status_code == 302
    assert register.holdings(member.pk)["loan"] == Decimal("50000")
    assert member.share_events.get(holding="land").yearly_rent == Decimal("600.00")


# --- Loans ----------------------------------------------------------------------------------------


def test_a_loan_schedule_repays_the_principal_to_the_fen():
    rows = loans.loan_schedule(
        principal=Decimal("10000.00"),
        annual_rate_percent=Decimal("4.35"),
        term_months=12,
        period_months=1,
        started_on=date(2017, 1, 31),
    )
    assert len(rows) == 12 and sum(r[2] for r in rows) == Decimal("10000.00")
    assert rows[0][2] == Decimal("833.34") and rows[-1][2] == Decimal("833.33")  # odd fen first
    assert rows[0][3] == Decimal("36.25")  # 10,000 × 4.35% / 12
    assert rows[0][1] == date(2017, 2, 28)  # month ends clamp
    bullet = loans.loan_schedule(
        principal=Decimal("50000"),
        annual_rate_percent=Decimal("4.35"),
        term_months=36,
        period_months=0,
        started_on=date(2017, 1, 10),
    )
    assert bullet == [(1, date(2020, 1, 10), Decimal("50000.00"), Decimal("6525.00"))]
    with pytest.raises(ActionRefused):
        loans.loan_schedule(
            principal=Decimal("1"),
            annual_rate_percent=Decimal("1"),
            term_months=10,
            period_months=3,
            started_on=date(2017, 1, 1),
        )


def test_the_beat_job_reminds_before_a_repayment_and_flags_it_once_overdue(
    world, settings, django_capture_on_commit_callbacks
):
    settings.COOP_LOAN_REMINDER_DAYS = 7
    today = timezone.localdate()
    member = add_farmer(world.coop, "何光明", joined=today - timedelta(days=400))
    loan = loans.create_loan(
        by=world.coop.manager,
        member_id=member.pk,
        lender="信用社",
        principal=Decimal("1200"),
        annual_rate_percent=Decimal("0"),
        term_months=12,
        period_months=1,
        started_on=loans.add_months(today, -3) + timedelta(days=5),
    )
    # Due about 8 and 4 weeks ago (overdue), in 5 days (reminded), then monthly (not yet).
    installments = list(loan.installments.order_by("number"))
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        first = tasks.check_loan_repayments()
    for i in installments:
        i.refresh_from_db()
    assert [bool(i.flagged_at) for i in installments[:4]] == [True, True, False, False]
    assert [bool(i.reminded_at) for i in installments[:4]] == [False, False, True, False]
    loan.refresh_from_db()
    assert loan.status == Loan.Status.OVERDUE
    sent = len(mail.outbox)
    assert sent == first["reminded"] + first["flagged"] >= 3  # one manager, one mail each
    assert all(m.to == ["manager_a@example.org"] for m in mail.outbox)
    assert not any(world.household.head_name in m.body or "何光明" in m.body for m in mail.outbox)
    with django_capture_on_commit_callbacks(execute=True):
        again = tasks.check_loan_repayments()
    assert again == {"reminded": 0, "flagged": 0} and len(mail.outbox) == sent
    # Repaid: the loan is being repaid again, not overdue.
    for installment in installments[:2]:
        loans.record_installment_paid(by=world.coop.manager, installment_id=installment.pk, paid_on=today)
    loan.refresh_from_db()
    assert loan.status == Loan.Status.ACTIVE


# --- Income ---------------------------------------------------------------------------------


def test_extra_above_market_price_is_a_poor_households_rebate_once(world):
    delivery = Delivery.objects.get(member=world.poor)
    assert delivery.extra_above_market == Decimal("100.00")  # (14.00 − 13.00) × 100 kg
    record = IncomeRecord.objects.get(origin=f"coop-delivery-{delivery.pk}-extra")
    assert (record.household, record.year, record.source, record.amount) == (
        world.household,
        YEAR,
        "rebate",
        Decimal("100.00"),
    )
    assert not IncomeRecord.objects.exclude(household=world.household).exists()


# --- Reports ----------------------------------------------------------------------------------


def test_reports_on_a_page_and_as_xlsx(world, approved, county_reviewer, areas, client_of):
    distributions.record_all_payments(by=world.coop.manager, distribution_id=approved.pk)
    manager = client_of(world.coop.manager)
    url = reverse("cooperatives:cooperative-report", args=[world.coop.pk])
    assert manager.get(url, {"year": YEAR}).status_code == 200
    response = manager.get(url, {"year": YEAR, "format": "xlsx"})
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    book = load_workbook(BytesIO(response.content))
    assert {"Summary", "Register", "Purchases", "Distribution"} <= set(book.sheetnames)
    assert book["Distribution"].max_row == 3  # header + two members

    staff = client_of(county_reviewer)
    page = staff.get(reverse("cooperatives:area-report"), {"area": areas.yanting.pk, "year": YEAR})
    assert page.status_code == 200
    total = page.context["report"]["total"]
    line = approved.lines.get(member=world.poor)
    assert total["cooperatives"] == 1 and total["poor_members"] == 1 and total["surplus"] == Decimal("5000.00")
    assert total["coop_income"] == line.total + Decimal("100.00")  # the dividend and rebates, plus the extra
    assert [row["area"] for row in page.context["report"]["rows"]] == [areas.huangxi, areas.qianfeng]
    xlsx = staff.get(reverse("cooperatives:area-report"), {"area": areas.yanting.pk, "year": YEAR, "format": "xlsx"})
    assert load_workbook(BytesIO(xlsx.content)).active.max_row == 4  # header, the county, its two townships
    # An area the staff does not hold is not offered.
    other = staff.get(reverse("cooperatives:area-report"), {"area": areas.zitong.pk, "year": YEAR})
    assert other.context["report"] is None and other.context["form"].errors.get("area")


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_every_refusal_of_the_arithmetic_has_a_message(language):
    from cooperatives.distribution import DistributionRefused

    cases = [
        ("volume_share_too_low", {}),
        ("volume_share_too_high", {}),
        ("negative_surplus", {}),
        ("not_fen", {"amount": "1.001"}),
        ("fixed_returns_exceed_surplus", {"fixed": Decimal("10.00"), "volume": Decimal("6.00")}),
        ("no_transactions", {}),
        ("no_capital", {"left": Decimal("4.00")}),
    ]
    with translation.override(language):
        messages = [distributions.refusal_message(DistributionRefused(code, **params)) for code, params in cases]
    assert all(messages) and len(set(messages)) == len(messages)
    assert "10.00" in messages[4] and "4.00" in messages[6] and "100%" in messages[6]
