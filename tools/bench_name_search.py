"""Benchmark the register's name search on a province-sized register (run by
hand, not a test).

    DEBUG=1 .venv/bin/python tools/bench_name_search.py [2000000] [--keep] [--reuse]

Creates a throw-away database (sun_commune_benchsearch, local socket),
migrates it, and builds a province in SQL: 10 cities, 180 counties, 1,800
townships, 10,800 villages; N households (default two million) with 2–3
character Chinese names drawn from weighted arrays of common surnames and
given-name characters, half of them with a member (a spouse) whose name is
in the name index too. ``name_terms`` is computed in SQL exactly as
``sun_commune.search.index_terms`` does for a name without spaces (every
character and every pair of neighbouring characters, deduplicated), and
``area_codes`` from the village's path as the trigger of migration 0009
does.

It then runs, for a county's staff, the very query the list view runs
(``HouseholdFilterForm.filter`` on ``access.households_for`` and
``keyset_page``): a two-character name, a three-character name, a
one-character name (a common surname and a rare character), a partial name
(the given name only), a member's name, the next page, and an exact ID
number; prints EXPLAIN ANALYZE of each and the median time of 7 runs. Then
the same for a province's staff. Drops the database afterwards unless
--keep; --reuse skips the build when the database is there from a --keep.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "sun_commune_benchsearch"

# Weighted by repetition: the commonest surnames of Sichuan first.
SURNAMES = (
    "王王王王王李李李李李张张张张刘刘刘刘陈陈陈陈杨杨杨黄黄黄赵赵周周吴吴徐孙马胡胡朱郭何何罗罗谢唐冯宋邓邓彭曾田范蒲苟敬母任袁文蒋杜岳向熊龚"
    "高林郑梁韩董萧程曹许傅沈吕卢丁魏薛叶阎余潘杜戴夏钟汪田任姜"
)
DOUBLE_SURNAMES = ["欧阳", "司马", "上官", "诸葛"]
GIVEN = (
    "国建明德文华志强勇军成忠富贵福全学正清洪金发顺元友春树光绍登泽仕朝绪祥崇银庆云昌"
    "秀英兰芳菊琼玉珍桂淑素凤翠梅莲群霞碧蓉琴惠容燕会萍丽红平海林永安"
)

AREAS_SQL = """
INSERT INTO households_area (code, name, name_en, level, parent_id, path, is_poor_village)
VALUES ('510000', '四川省', 'Sichuan', 1, NULL, '510000.', false);
INSERT INTO households_area (code, name, name_en, level, parent_id, path, is_poor_village)
SELECT '51' || lpad(c::text, 2, '0') || '00', '市' || c, 'City ' || c, 2, p.id, p.path || '51' || lpad(c::text, 2, '0') || '00.', false
FROM generate_series(1, 10) c, households_area p WHERE p.code = '510000';
INSERT INTO households_area (code, name, name_en, level, parent_id, path, is_poor_village)
SELECT left(p.code, 4) || lpad(k::text, 2, '0'), '县' || p.code || k, 'County ' || p.code || '-' || k, 3, p.id,
       p.path || left(p.code, 4) || lpad(k::text, 2, '0') || '.', false
FROM generate_series(1, 18) k, households_area p WHERE p.level = 2;
INSERT INTO households_area (code, name, name_en, level, parent_id, path, is_poor_village)
SELECT p.code || lpad(t::text, 3, '0'), '乡' || p.code || t, '', 4, p.id, p.path || p.code || lpad(t::text, 3, '0') || '.', false
FROM generate_series(1, 10) t, households_area p WHERE p.level = 3;
INSERT INTO households_area (code, name, name_en, level, parent_id, path, is_poor_village)
SELECT p.code || lpad(v::text, 3, '0'), '村' || p.code || v, '', 5, p.id, p.path || p.code || lpad(v::text, 3, '0') || '.', true
FROM generate_series(201, 206) v, households_area p WHERE p.level = 4;
"""

# A name: a surname (a double one once in 200) and one or two given
# characters (one in four names has one).
NAME = """
(CASE WHEN random() < 0.005 THEN (%(double)s::text[])[1 + floor(random() * %(nd)s)::int]
      ELSE substr(%(surnames)s, 1 + floor(random() * %(ns)s)::int, 1) END)
|| substr(%(given)s, 1 + floor(random() * %(ng)s)::int, 1)
|| CASE WHEN random() < 0.75 THEN substr(%(given)s, 1 + floor(random() * %(ng)s)::int, 1) ELSE '' END
"""

TERMS = """
ARRAY(SELECT DISTINCT t FROM (
    SELECT substr(n.name, g, 1) AS t FROM unnest(names) AS n(name), generate_series(1, char_length(n.name)) AS g
    UNION
    SELECT substr(n.name, g, 2) FROM unnest(names) AS n(name), generate_series(1, char_length(n.name) - 1) AS g
) AS terms ORDER BY t)
"""

HOUSEHOLDS_SQL = f"""
WITH v AS (
    SELECT array_agg(id ORDER BY id) AS ids, array_agg(path ORDER BY id) AS paths, count(*) AS n
    FROM households_area WHERE level = 5
),
base AS (
    SELECT i, 1 + ((i::bigint * 7919) %% v.n)::int AS k, {NAME} AS head, CASE WHEN i %% 2 = 0 THEN {NAME} END AS spouse
    FROM generate_series(%(start)s, %(stop)s) AS i, v
),
named AS (SELECT i, k, head, spouse, array_remove(ARRAY[head, spouse], NULL) AS names FROM base),
h AS (
    INSERT INTO households_household
        (village_id, public_id, alias, alias_consent, size, poverty_causes, story, story_consent, photo_consent,
         status, lifted_out_year, housing, name_terms, area_codes, head_name, id_number, id_hash, phone, address,
         health_notes, created_at, updated_at, created_by_id)
    SELECT v.ids[k], 'B' || lpad(i::text, 9, '0'), '', false,
           1 + i %% 5, ARRAY[(ARRAY['illness','disability','labour','skills','funds','land','water','disaster','schooling','other'])[1 + (i * 31 + i / 7) %% 10]],
           '', false, false,
           (ARRAY['poor','poor','poor','lifted','monitored'])[1 + (i / 3) %% 5],
           CASE WHEN (i / 3) %% 5 = 3 THEN 2019 + i %% 4 END, '',
           {TERMS}, string_to_array(rtrim(v.paths[k], '.'), '.'), head, '', encode(sha256(('id' || i)::bytea), 'hex'),
           '', '', '', now(), now(), NULL
    FROM named, v
    RETURNING id, public_id
)
INSERT INTO households_householdmember (household_id, name, relation, birth_year, health, ability)
SELECT h.id, named.spouse, '配偶', 1970, '', 'full'
FROM h JOIN named ON h.public_id = 'B' || lpad(named.i::text, 9, '0')
WHERE named.spouse IS NOT NULL
"""


def admin_connection():
    import psycopg2

    conn = psycopg2.connect(dbname="postgres")
    conn.autocommit = True
    return conn


def database_exists() -> bool:
    conn = admin_connection()
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME])
            return cursor.fetchone() is not None
    finally:
        conn.close()


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


def setup_django(migrate: bool):
    os.environ["DATABASE_URL"] = f"postgres:///{DB_NAME}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sun_commune.settings")
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
    os.environ.setdefault("EMAIL_URL", "locmem://")
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    from django.conf import settings

    settings.DEBUG = False


def build(n: int) -> None:
    from django.db import connection

    params = {
        "surnames": SURNAMES,
        "ns": len(SURNAMES),
        "given": GIVEN,
        "ng": len(GIVEN),
        "double": DOUBLE_SURNAMES,
        "nd": len(DOUBLE_SURNAMES),
    }
    with connection.cursor() as cursor:
        started = time.monotonic()
        cursor.execute(AREAS_SQL)
        cursor.execute("SELECT count(*) FROM households_area WHERE level = 5")
        print(f"areas: {cursor.fetchone()[0]:,} villages in {time.monotonic() - started:.1f}s")
        # Bulk loading: build the secondary indexes once at the end instead of row by row.
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('households_household', 'households_householdmember') "
            "AND indexname NOT LIKE '%%_pkey' AND indexdef NOT LIKE '%%UNIQUE%%'"
        )
        indexes = cursor.fetchall()
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        # The area codes are computed in the INSERT below, set-wise, instead of
        # by the row trigger that keeps them otherwise.
        cursor.execute("ALTER TABLE households_household DISABLE TRIGGER households_household_area_codes")
        cursor.execute("SELECT setseed(0.42)")
        started = time.monotonic()
        step = 250_000
        for start in range(1, n + 1, step):
            cursor.execute(HOUSEHOLDS_SQL, {**params, "start": start, "stop": min(n, start + step - 1)})
            print(f"  households {min(n, start + step - 1):,} ({time.monotonic() - started:.0f}s)", flush=True)
        print(f"inserted {n:,} households in {time.monotonic() - started:.1f}s")
        cursor.execute("ALTER TABLE households_household ENABLE TRIGGER households_household_area_codes")
        started = time.monotonic()
        for _name, definition in indexes:
            cursor.execute(definition)
        cursor.execute("ANALYZE households_area")
        cursor.execute("ANALYZE households_household")
        cursor.execute("ANALYZE households_householdmember")
        print(f"indexes rebuilt and analysed in {time.monotonic() - started:.1f}s")


def check_terms_match_python() -> None:
    """The SQL-built name index is what the application would have written."""
    from households.models import Household
    from sun_commune.search import index_terms

    for household in Household.objects.order_by("?")[:200].select_related("village").prefetch_related("members"):
        expected = index_terms(household.head_name, *(m.name for m in household.members.all()))
        assert sorted(household.name_terms) == expected, (household.pk, household.name_terms, expected)
        assert household.area_codes == household.village.ancestor_codes(), household.pk
    print("name_terms and area_codes built in SQL match what the application writes (200 households sampled)")


def staff_for(area):
    from sun_commune.models import RoleGrant, User

    user, _created = User.objects.get_or_create(username=f"staff-{area.code}")
    RoleGrant.objects.get_or_create(user=user, role=RoleGrant.Role.STAFF, area=area)
    user.forget_loaded()
    return user


def view_query(user, params: dict, cursor: str | None = None):
    """The queryset and page the list view builds for ``params``."""
    from households import access
    from households.forms import HouseholdFilterForm
    from sun_commune.pagination import keyset_page

    form = HouseholdFilterForm(params, areas=access.keeper_areas(user))
    assert form.is_valid(), form.errors
    households = form.filter(access.households_for(user, by_codes=form.searches_names()).select_related("village"))
    return households, lambda: keyset_page(households, order=("id",), descending=True, cursor=cursor, size=50)


def measure(label: str, user, params: dict, cursor: str | None = None, explain: bool = True):
    households, page = view_query(user, params, cursor)
    result = page()  # warm
    times = []
    for _ in range(7):
        started = time.perf_counter()
        result = page()
        times.append((time.perf_counter() - started) * 1000)
    print(
        f"\n== {label}: {len(result.rows)} rows on the page, median {statistics.median(times):.1f} ms (min {min(times):.1f}, max {max(times):.1f})"
    )
    if explain and cursor is None:
        plan = households.order_by("-id")[:51].explain(analyze=True, buffers=True)
        lines = plan.splitlines()
        print("\n".join(lines[:40]) + ("\n  …" if len(lines) > 40 else ""))
    return result, statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=2_000_000, help="households")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="reuse a database kept by --keep")
    args = parser.parse_args()

    reuse = args.reuse and database_exists()
    if not reuse:
        create_database()
    try:
        setup_django(migrate=not reuse)
        if not reuse:
            build(args.n)
        check_terms_match_python()

        from households.models import Area, Household

        county = Area.objects.get(code="510105")
        province = Area.objects.get(code="510000")
        county_staff, province_staff = staff_for(county), staff_for(province)
        sample = Household.objects.filter(village__path__startswith=county.path).order_by("id")[:1].first()
        print(
            f"\ncounty {county.code}: households under it: {Household.objects.within(county).count():,}; a sample head: {sample.head_name}"
        )

        figures = {}
        for user, scope in ((county_staff, "county"), (province_staff, "province")):
            cases = [
                ("two characters 王明", {"q": "王明"}),
                ("three characters 王建国", {"q": "王建国"}),
                ("one character 王 (commonest surname)", {"q": "王"}),
                ("one character 龚 (rare surname)", {"q": "龚"}),
                ("partial: given name 秀英", {"q": "秀英"}),
                ("double surname 欧阳", {"q": "欧阳"}),
                ("no match 鑫鑫", {"q": "鑫鑫"}),
                ("no filter", {}),
                ("status monitored + cause water", {"status": "monitored", "cause": "water"}),
            ]
            for label, params in cases:
                result, ms = measure(f"{scope} staff, {label}", user, params)
                figures[(scope, label)] = ms
                if label.startswith("one character 王") and result.next_cursor:
                    _r, ms = measure(f"{scope} staff, {label}, next page", user, params, cursor=result.next_cursor)
                    figures[(scope, label + ", next page")] = ms
            id_hash = (
                Household.objects.within(county if scope == "county" else province)
                .values_list("id_hash", flat=True)
                .first()
            )
            households, page = view_query(user, {})
            started = time.perf_counter()
            for _ in range(7):
                list(households.filter(id_hash=id_hash).order_by("-id")[:51])
            ms = (time.perf_counter() - started) / 7 * 1000
            print(f"\n== {scope} staff, exact ID number (id_hash): {ms:.2f} ms")
            figures[(scope, "exact ID number")] = ms

        print("\nSummary (median ms of the list view's page query):")
        for (scope, label), ms in figures.items():
            print(f"  {scope:8s} {label:45s} {ms:8.1f}")
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database()
            print(f"dropped database {DB_NAME}")


if __name__ == "__main__":
    main()
