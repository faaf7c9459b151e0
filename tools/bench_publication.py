"""Benchmark the ledger publisher and the ledger check (run by hand, not a test).

    DEBUG=1 .venv/bin/python tools/bench_publication.py 100000 [--published M] [--profile] [--keep] [--files]

Creates a throw-away database (sun_commune_benchpub, on the local PostgreSQL
socket), migrates it, bulk-inserts N balanced ledger transactions with their
legs and outbox rows in one raw SQL statement (generate_series), then times
``publication.publish_all()`` (entries per second), ``run_check()`` and an
inclusion proof, and drops the database again (unless --keep). --published M
first inserts and publishes M transactions (not timed), so that the N are
published on top of a tree and a table that already hold some. --profile
prints the top 30 of a cProfile of the publisher (sorted by cumulative time,
or by BENCH_SORT=tottime). --files times the download files instead
(donations/downloads.py): M published and written, then two batches of N
published and written one after the other (untimed, so that the sets are in
their steady state), then the write of one more batch of N is timed.
BENCH_DB names another throw-away database.

Django's debug cursor (which keeps every query when DEBUG=1) is switched off
after set-up, so the figures are what a production worker would see.
"""

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = os.environ.get("BENCH_DB", "sun_commune_benchpub")
VILLAGES = 20


def admin_connection():
    import psycopg2

    conn = psycopg2.connect(dbname="postgres")
    conn.autocommit = True
    return conn


def create_database():
    conn = admin_connection()  # not `with conn`: psycopg2 would open a transaction
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

    settings.DEBUG = False  # no query log: measure what production does


def seed_places() -> dict:
    """Areas and a need for the transactions to be about."""
    import datetime

    from django.utils import timezone

    from donations.models import Need
    from donations.services import needs
    from households.models import Area
    from sun_commune.models import RoleGrant, User

    city = Area.objects.create(code="510700", name="绵阳市", name_en="Mianyang", level=Area.Level.CITY)
    county = Area.objects.create(code="510723", name="盐亭县", level=Area.Level.COUNTY, parent=city)
    townships = [
        Area.objects.create(code=f"51072310{t}", name=f"乡{t}", level=Area.Level.TOWNSHIP, parent=county)
        for t in range(1, 5)
    ]
    villages = [
        Area.objects.create(
            code=f"{townships[v % 4].code}2{v:02d}", name=f"村{v}", level=Area.Level.VILLAGE, parent=townships[v % 4]
        )
        for v in range(VILLAGES)
    ]
    user = User.objects.create(username="bench", email="bench@example.org")
    RoleGrant.objects.create(user=user, role=RoleGrant.Role.SECRETARY, area=villages[0])
    need = needs.create_need(
        by=user,
        village=villages[0],
        submit=False,
        title="过冬的电热毯",
        description="Electric blankets for the winter.",
        category=Need.Category.DAILY,
        kind=Need.Kind.GOODS,
        item="电热毯",
        quantity=10,
        unit="床",
        unit_price="80.00",
        deadline=timezone.localdate() + datetime.timedelta(days=30),
    )
    return {"villages": villages, "need": need}


def seed(n: int, places: dict) -> None:
    """N balanced GOODS_IN transactions (legs + outbox)."""
    from django.db import connection, transaction

    from donations import ledger

    villages, need = places["villages"], places["need"]
    delivered, income = ledger.goods_delivered(), ledger.income_goods()
    village_ids = [v.pk for v in villages]
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            WITH t AS (
                INSERT INTO donations_ledgertransaction
                    (kind, amount, occurred_on, recorded_at, purpose, category, payee, voucher_sha256, area_id, need_id)
                SELECT 'goods_in', (1 + i %% 5000) + (i %% 100) / 100.0, CURRENT_DATE - (i %% 365), now(),
                       '购买化肥和种子 #' || i, '', '', '',
                       (%(villages)s::bigint[])[1 + i %% %(nv)s],
                       CASE WHEN i %% 10 = 0 THEN %(need)s::bigint END
                FROM generate_series(1, %(n)s) AS i
                RETURNING id, amount
            ),
            legs AS (
                INSERT INTO donations_ledgerleg (transaction_id, account_id, amount)
                SELECT id, %(delivered)s, amount FROM t
                UNION ALL
                SELECT id, %(income)s, -amount FROM t
            ),
            outbox AS (INSERT INTO donations_ledgeroutbox (transaction_id) SELECT id FROM t)
            SELECT count(*) FROM t
            """,
            {
                "villages": village_ids,
                "nv": len(village_ids),
                "need": need.pk,
                "n": n,
                "delivered": delivered.pk,
                "income": income.pk,
            },
        )
        inserted = cursor.fetchone()[0]
    print(f"inserted {inserted:,} transactions ({2 * inserted:,} legs, outbox) in {time.monotonic() - started:.1f}s")


def bench_files(args, places) -> None:
    import shutil
    import tempfile

    from django.conf import settings

    from donations import downloads, publication

    settings.LEDGER_FILES_ROOT = Path(tempfile.mkdtemp(prefix="bench-ledger-files-"))
    try:
        seed(args.published, places)
        publication.publish_all()
        for _ in range(2):
            started = time.monotonic()
            downloads.write_files()
            print(f"write_files (untimed set-up): {time.monotonic() - started:.2f}s")
            seed(args.n, places)
            publication.publish_all()
        started = time.monotonic()
        files = downloads.write_files()
        seconds = time.monotonic() - started
        size = sum((files.directory / name).stat().st_size for name in downloads.FILES)
        print(
            f"write_files: one batch of {args.n:,} on top of {files.tree_size - args.n:,} published entries "
            f"in {seconds:.2f}s ({size / 1e6:,.0f} MB in the set)"
        )
    finally:
        shutil.rmtree(settings.LEDGER_FILES_ROOT, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=100_000, help="ledger transactions to publish")
    parser.add_argument("--published", type=int, default=0, metavar="M", help="publish M transactions first, untimed")
    parser.add_argument("--profile", action="store_true", help="cProfile the publisher and print the top 30")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--files", action="store_true", help="time writing the download files for one batch of N")
    args = parser.parse_args()

    create_database()
    try:
        setup_django()
        from django.conf import settings
        from django.db import connection

        from donations import publication
        from donations.models import PublishedEntry

        places = seed_places()
        if args.files:
            bench_files(args, places)
            return
        if args.published:
            seed(args.published, places)
            publication.publish_all()
        seed(args.n, places)

        profiler = cProfile.Profile() if args.profile else None
        started = time.monotonic()
        if profiler:
            profiler.enable()
        batches = publication.publish_all()
        if profiler:
            profiler.disable()
        seconds = time.monotonic() - started
        published = PublishedEntry.objects.count() - args.published
        print(
            f"publish_all: {published:,} entries on top of {args.published:,}, {len(batches)} batch(es) of at most "
            f"{settings.LEDGER_BATCH_MAX:,}, "
            f"in {seconds:.2f}s = {published / seconds:,.0f} entries/s"
        )
        if profiler:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(30)
            print(out.getvalue())

        started = time.monotonic()
        check = publication.run_check()
        seconds = time.monotonic() - started
        print(
            f"run_check: ok={check.ok}, {check.tree_size:,} published entries in {seconds:.2f}s "
            f"= {check.tree_size / seconds:,.0f} entries/s" + ("" if check.ok else f"; problems: {check.problems[:5]}")
        )

        entry = PublishedEntry.objects.order_by("-index")[(published + args.published) // 3]
        started = time.monotonic()
        for _ in range(20):
            publication.inclusion_proof(entry)
        print(f"inclusion_proof: {(time.monotonic() - started) / 20 * 1000:.1f} ms per proof")
        connection.close()
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            drop_database()
            print(f"dropped database {DB_NAME}")


if __name__ == "__main__":
    main()
