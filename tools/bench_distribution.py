"""Benchmark a cooperative's year-end distribution (run by hand, not a test).

    DEBUG=1 .venv/bin/python tools/bench_distribution.py [MEMBERS] [--deliveries 12] [--pay] [--keep]

Creates a throw-away database (sun_commune_benchcoop, on the local PostgreSQL
socket), migrates it, and bulk-inserts one cooperative with MEMBERS members
(default 10,000; three in ten are registered poor households holding a
poverty-alleviation loan and subsidy shares, the rest farmers with own
capital, land and labour), a purchase contract each and a year of
deliveries (12 each by default). Then it times:

- the pure arithmetic, ``cooperatives.distribution.compute`` on those inputs;
- the whole service, ``distributions.compute_distribution``: reading the share
  register and the year's deliveries, computing, writing the distribution
  and its lines with the audit entry, in one transaction;
- computing it again (a preview is replaced);
- with ``--pay``: approving it and recording every payment (each line in its
  own transaction, with the households' income records and audit entries).

and drops the database again (unless --keep). Django's query log is off
(settings.DEBUG = False) so the figures are what a production worker sees.
"""

import argparse
import os
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "sun_commune_benchcoop"
YEAR = 2023


def admin_connection():
    import psycopg2

    conn = psycopg2.connect(dbname="postgres")
    conn.autocommit = True
    return conn


def create_database():
    conn = admin_connection()
    try:
        with conn.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{DB_NAME}"')
    finally:
        conn.close()


def drop_database():
    conn = admin_connection()
    try:
        with conn.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    finally:
        conn.close()


def setup_django():
    os.environ["DATABASE_URL"] = f"postgres:///{DB_NAME}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sun_commune.settings")
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
    os.environ.setdefault("EMAIL_URL", "locmem://")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.conf import settings

    settings.DEBUG = False


def seed(members: int, deliveries: int):
    """One cooperative, its members, their shares, contracts and deliveries,
    bulk-inserted (the set-up is not what is measured)."""
    import random

    from cooperatives.models import Delivery, Loan, Member, PurchaseContract, ShareEvent
    from cooperatives.services import coops, distributions
    from households.models import Area, Household
    from sun_commune.models import RoleGrant, User

    rng = random.Random(2017)
    city = Area.objects.create(code="510700", name="绵阳市", name_en="Mianyang", level=Area.Level.CITY)
    county = Area.objects.create(code="510725", name="梓潼县", name_en="Zitong", level=Area.Level.COUNTY, parent=city)
    town = Area.objects.create(
        code="510725104", name="许州镇", name_en="Xuzhou", level=Area.Level.TOWNSHIP, parent=county
    )
    village = Area.objects.create(
        code="510725104207", name="兰干村", name_en="Langan", level=Area.Level.VILLAGE, parent=town
    )
    staff = User.objects.create(username="staff", email="staff@example.com")
    RoleGrant.objects.create(user=staff, role=RoleGrant.Role.STAFF, area=county)
    coop = coops.create_cooperative(by=staff, name="兰干养殖专业合作社", kind="breeding", area=village)
    distributions.set_rules(
        by=staff,
        cooperative_id=coop.pk,
        volume_share_percent=Decimal("60"),
        loan_fixed_rate_percent=Decimal("6"),
        subsidy_fixed_rate_percent=Decimal("5"),
        land_value_per_mu=Decimal("2000"),
        labour_value_per_day=Decimal("100"),
    )
    poor_count = members * 3 // 10
    households = Household.objects.bulk_create(
        [Household(village=village, head_name=f"户主{i}", size=3) for i in range(poor_count)], batch_size=2000
    )
    joined = date(YEAR - 1, 3, 1)
    rows = []
    for i in range(members):
        if i < poor_count:
            rows.append(
                Member(cooperative=coop, number=i + 1, kind="household", household=households[i], joined_on=joined)
            )
        else:
            rows.append(Member(cooperative=coop, number=i + 1, kind="farmer", name=f"社员{i}", joined_on=joined))
    rows = Member.objects.bulk_create(rows, batch_size=2000)
    loans = Loan.objects.bulk_create(
        [
            Loan(
                cooperative=coop,
                member=m,
                lender="信用社",
                principal=Decimal("50000"),
                annual_rate_percent=Decimal("4.35"),
                term_months=36,
                period_months=12,
                started_on=joined,
            )
            for m in rows[:poor_count]
        ],
        batch_size=2000,
    )
    loan_of = {loan.member_id: loan for loan in loans}
    events = []

    def event(m, holding, quantity, **extra):
        events.append(
            ShareEvent(
                cooperative=coop,
                member=m,
                kind="join",
                holding=holding,
                quantity=Decimal(quantity),
                occurred_on=joined,
                **extra,
            )
        )

    for m in rows:
        if m.household_id:
            event(m, "loan", "50000", loan=loan_of[m.pk])
            event(m, "subsidy", rng.choice(["5000", "8000", "10000"]))
        else:
            event(m, "own", str(rng.randrange(1000, 200000, 100)))
            if rng.random() < 0.4:
                event(m, "land", f"{rng.randrange(50, 1000) / 100:.2f}", yearly_rent=Decimal("400"))
        if rng.random() < 0.5:
            event(m, "labour", str(rng.randrange(5, 120)), service_fees=Decimal("0"))
    ShareEvent.objects.bulk_create(events, batch_size=5000)
    contracts = PurchaseContract.objects.bulk_create(
        [
            PurchaseContract(
                cooperative=coop,
                member=m,
                product="生猪",
                unit="kg",
                agreed_price=Decimal("14.00"),
                guaranteed_price=Decimal("12.00"),
                quantity=Decimal("5000"),
                season=f"{YEAR}",
                year=YEAR,
                signed_on=date(YEAR, 1, 2),
            )
            for m in rows
        ],
        batch_size=2000,
    )
    batch = []
    count = 0
    for c in contracts:
        for month in range(1, deliveries + 1):
            kg = Decimal(rng.randrange(20, 400))
            market = Decimal(rng.randrange(1150, 1450)) / 100
            paid = max(Decimal("14.00"), market)
            batch.append(
                Delivery(
                    contract=c,
                    cooperative=coop,
                    member_id=c.member_id,
                    delivered_on=date(YEAR, (month - 1) % 12 + 1, 15),
                    year=YEAR,
                    product="生猪",
                    quantity=kg,
                    grade="1",
                    market_price=market,
                    price_paid=paid,
                    guaranteed_price=c.guaranteed_price,
                    amount=(kg * paid).quantize(Decimal("0.01")),
                    extra_above_market=((paid - market) * kg).quantize(Decimal("0.01")),
                )
            )
            if len(batch) >= 10000:
                Delivery.objects.bulk_create(batch)
                count += len(batch)
                batch = []
    Delivery.objects.bulk_create(batch)
    count += len(batch)
    return coop, staff, count, len(events)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("members", type=int, nargs="?", default=10_000)
    parser.add_argument("--deliveries", type=int, default=12, help="deliveries per member in the year")
    parser.add_argument("--pay", action="store_true", help="also approve and record every payment")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    create_database()
    try:
        setup_django()
        from cooperatives import distribution
        from cooperatives.models import Distribution
        from cooperatives.services import distributions

        started = time.perf_counter()
        coop, staff, n_deliveries, n_events = seed(args.members, args.deliveries)
        print(
            f"set-up: {args.members} members, {n_events} share events, {n_deliveries} deliveries "
            f"in {time.perf_counter() - started:.1f} s"
        )
        surplus = Decimal("40000000.00")

        t = time.perf_counter()
        inputs, _extras = distributions.distribution_inputs(coop, YEAR)
        read = time.perf_counter() - t
        t = time.perf_counter()
        result = distribution.compute(surplus=surplus, rules=distributions.rules_of(coop), members=inputs)
        pure = time.perf_counter() - t
        assert sum(line.total for line in result.lines) == result.surplus
        print(f"reading the register and the year's deliveries: {read:.3f} s")
        print(f"pure arithmetic (distribution.compute): {pure:.3f} s")

        timings = []
        for _ in range(3):
            t = time.perf_counter()
            dist = distributions.compute_distribution(by=None, cooperative_id=coop.pk, year=YEAR, surplus=surplus)
            timings.append(time.perf_counter() - t)
        print(
            f"distributions.compute_distribution (read, compute, write {dist.lines.count()} lines, audit): "
            f"first {timings[0]:.2f} s, then {min(timings[1:]):.2f} s (a preview computed again)"
        )
        print(
            f"  surplus {dist.surplus}: volume {dist.volume_total} ({dist.volume_percent}%), "
            f"fixed {dist.fixed_total}, capital {dist.capital_total}"
        )

        if args.pay:
            distributions.approve_distribution(by=staff, distribution_id=dist.pk)
            t = time.perf_counter()
            paid = distributions.record_all_payments(by=None, distribution_id=dist.pk)
            elapsed = time.perf_counter() - t
            dist = Distribution.objects.get(pk=dist.pk)
            print(
                f"recording {paid} payments (income records, audit): {elapsed:.1f} s, "
                f"{paid / elapsed:.0f} a second; status {dist.status}"
            )
    finally:
        if args.keep:
            print(f"kept database {DB_NAME}")
        else:
            from django.db import connections

            connections.close_all()
            drop_database()


if __name__ == "__main__":
    main()
