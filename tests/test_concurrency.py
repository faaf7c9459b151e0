"""Rule 1 under load: however many donors pledge at the same moment, a need
is never over-pledged. Real threads, each with its own PostgreSQL connection,
released together by a barrier."""

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from donations.models import Need, Pledge
from donations.services import pledges
from sun_commune.errors import ActionRefused

from . import factories

THREADS = 20


def run_together(n: int, action) -> list:
    """Call ``action(i)`` in ``n`` threads at once; return each result or exception."""
    barrier = threading.Barrier(n, timeout=30)
    results: list = [None] * n

    def work(i):
        try:
            connection.ensure_connection()  # connect first, so the race is on the pledge itself
            barrier.wait()
            results[i] = action(i)
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread got
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


@pytest.fixture
def donors(db):
    return [factories.make_donor(username=f"racer{i}").donor_profile for i in range(4)]


def split(results):
    made = [r for r in results if isinstance(r, Pledge)]
    refused = [r for r in results if isinstance(r, ActionRefused)]
    assert len(made) + len(refused) == len(results), [r for r in results if not isinstance(r, Pledge | ActionRefused)]
    return made, refused


@pytest.mark.django_db(transaction=True)
def test_twenty_donors_at_once_never_over_pledge_goods(need_a, donors):
    results = run_together(THREADS, lambda i: pledges.make_pledge(need_id=need_a.pk, donor=donors[i % 4], quantity=1))

    made, refused = split(results)
    need_a.refresh_from_db()
    total = Pledge.objects.filter(need=need_a).aggregate(total=Sum("quantity"))["total"]
    assert len(made) == 10
    assert len(refused) == THREADS - 10
    assert total == need_a.pledged_quantity == 10
    assert need_a.status == Need.Status.FULLY_PLEDGED


@pytest.mark.django_db(transaction=True)
def test_a_mix_of_sizes_at_once_never_over_pledges(need_a, donors):
    sizes = [1 + i % 3 for i in range(THREADS)]

    results = run_together(
        THREADS, lambda i: pledges.make_pledge(need_id=need_a.pk, donor=donors[i % 4], quantity=sizes[i])
    )

    made, refused = split(results)
    need_a.refresh_from_db()
    total = Pledge.objects.filter(need=need_a).aggregate(total=Sum("quantity"))["total"]
    assert total == sum(p.quantity for p in made) == need_a.pledged_quantity <= 10
    assert Pledge.objects.filter(need=need_a).count() == len(made)
    assert all(r.field in ("quantity", None) for r in refused)
    expected = Need.Status.FULLY_PLEDGED if need_a.pledged_quantity == 10 else Need.Status.PUBLISHED
    assert need_a.status == expected


@pytest.mark.django_db(transaction=True)
def test_twenty_donors_at_once_never_over_pledge_money(money_need_a, donors):
    # 1,000.00 yuan needed; twenty donors each offer 125.50: seven fit (878.50),
    # the eighth would go over. Then the rest of what is needed, 121.50, at once.
    results = run_together(
        THREADS, lambda i: pledges.make_pledge(need_id=money_need_a.pk, donor=donors[i % 4], amount=Decimal("125.50"))
    )

    made, refused = split(results)
    money_need_a.refresh_from_db()
    assert len(made) == 7
    assert len(refused) == THREADS - 7
    assert money_need_a.pledged_amount == Decimal("878.50")
    assert money_need_a.status == Need.Status.PUBLISHED

    results = run_together(
        THREADS, lambda i: pledges.make_pledge(need_id=money_need_a.pk, donor=donors[i % 4], amount=Decimal("121.50"))
    )

    made, refused = split(results)
    money_need_a.refresh_from_db()
    total = Pledge.objects.filter(need=money_need_a).aggregate(total=Sum("amount"))["total"]
    assert len(made) == 1
    assert len(refused) == THREADS - 1
    assert total == money_need_a.pledged_amount == money_need_a.target_amount == Decimal("1000.00")
    assert money_need_a.status == Need.Status.FULLY_PLEDGED
