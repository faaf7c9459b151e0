"""Rule 6 for pairings: however many beat runs race, a pairing's installment
is made once per period; however many requests race, a donor has one open
pairing with a household. Real threads, each with its own PostgreSQL
connection, released together by a barrier."""

from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from donations import tasks
from donations.models import Need, Pairing, PairingInstallment, Pledge
from donations.services import pairings as pairing_services
from sun_commune.errors import ActionRefused
from sun_commune.models import AuditEntry

from . import factories
from .test_concurrency import run_together

THREADS = 8


@pytest.fixture
def household(areas):
    return factories.HouseholdFactory(village=areas.village_a)


@pytest.fixture
def pairings(areas, household, secretary_a):
    """Three active pairings of three donors: monthly money, seasonal goods, a whole village."""
    today = timezone.localdate()
    made = []
    for i, (target, terms) in enumerate(
        [
            ({"household": household}, {"commitment": "money", "amount": Decimal("200.00")}),
            ({"household": household}, {"commitment": "goods", "item": "大米", "quantity": 3, "unit": "袋"}),
            ({"village": areas.village_a}, {"commitment": "money", "amount": Decimal("1000.00")}),
        ]
    ):
        donor = factories.make_donor(username=f"paired{i}")
        pairing = pairing_services.request_pairing(donor=donor.donor_profile, start_date=today, **target, **terms)
        made.append(
            pairing_services.accept_pairing(pairing_id=pairing.pk, by=secretary_a, side=pairing_services.VILLAGE_SIDE)
        )
    return made


@pytest.mark.django_db(transaction=True)
def test_beat_runs_racing_make_each_installment_once(pairings):
    today = timezone.localdate().isoformat()

    results = run_together(THREADS, lambda i: tasks.create_pairing_pledges(today=today))

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(results) == len(pairings)
    for pairing in pairings:
        installment = PairingInstallment.objects.get(pairing=pairing)
        assert Need.objects.filter(pairing_installment=installment).count() == 1
        assert Pledge.objects.filter(need=installment.need).count() == 1
    assert Need.objects.count() == Pledge.objects.count() == len(pairings)
    assert Pledge.objects.aggregate(total=Sum("amount"))["total"] == Decimal("1200.00")
    assert AuditEntry.objects.filter(action="pairing.installment_created").count() == len(pairings)


@pytest.mark.django_db(transaction=True)
def test_the_service_racing_itself_makes_one_installment(pairings):
    pairing = pairings[0]

    results = run_together(THREADS, lambda i: pairing_services.create_pairing_installment(pairing_id=pairing.pk))

    made = [r for r in results if isinstance(r, PairingInstallment)]
    assert len(made) == 1 and results.count(None) == THREADS - 1
    assert PairingInstallment.objects.filter(pairing=pairing).count() == 1


@pytest.mark.django_db(transaction=True)
def test_requests_racing_make_one_open_pairing(household, areas):
    donor = factories.make_donor(username="eager").donor_profile
    today = timezone.localdate()

    results = run_together(
        THREADS,
        lambda i: pairing_services.request_pairing(
            donor=donor, household=household, start_date=today, commitment="money", amount=Decimal("100")
        ),
    )

    made = [r for r in results if isinstance(r, Pairing)]
    refused = [r for r in results if isinstance(r, ActionRefused)]
    assert len(made) == 1 and len(refused) == THREADS - 1, results
    assert Pairing.objects.filter(donor=donor).count() == 1
