"""Generate the benchmark's dataset into its own database, with PostgreSQL's
bulk paths.

    .venv/bin/python bench/generate.py --scale city|province|tiny [--fresh]

Creates ``sun_commune_bench_<scale>``, runs the project's migrations on it,
then fills it with INSERT … SELECT over generate_series (areas, users, donors,
households, needs, pledges) and COPY (the ledger), with the secondary indexes
dropped during the load and built again afterwards, then VACUUM ANALYZE. A
database that is already complete for the same sizes is kept (``--fresh``
rebuilds it).

Every row satisfies the schema's CHECK constraints and what the triggers
check: each ledger transaction's legs balance, fund balances are the sums of
their legs and never negative, a need's counters are the sums of its
pledges. The load runs with ``session_replication_role = replica`` (foreign
keys and triggers off, as pg_restore does) because the rows are made valid
by construction; ``check()`` at the end verifies the invariants with SQL.

The published ledger is real: each entry is the canonical JSON line
``donations.publication.public_entry`` would write, chained through ``prev``,
hashed into the RFC 6962 tree, cut into signed batches of
``LEDGER_BATCH_MAX`` entries with their Merkle nodes — so the verifier and
``check_ledger`` work on it, and the publisher carries on from its last batch.

Encrypted ID and phone numbers come from a pool of 1,000 values encrypted
with the bench key (the benchmark only reads them); ``id_hash`` is unique
per household but not the keyed hash of the pooled number.
"""

import argparse
import io
import json
import os
import queue
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.env import SCALES, database_name, setup_django  # noqa: E402

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万严覃武戴莫孔向汤"
GIVEN = "秀英桂兰华明国强建军志红玉芳丽平德文春梅金海云成学福永清林荣富贵祥凤琴珍秋菊淑彬光辉新民友良宝山顺"
PLACE_1 = "金兰杨黄青石龙花桃柳松竹梅凤马白红新太双三五永平安高长东西南北大小上下"
PLACE_2 = "鹿干武沟山坪坝湾岭溪河桥林园庙池塘田堰寺岩垭口"
CAUSES = ["illness", "disability", "labour", "skills", "funds", "land", "water", "disaster", "schooling", "other"]

# (kind, category, item, unit, unit price, title): the supermarket's goods,
# money and service needs. 电视 (a two-character word) is in about 4% of them.
NEEDS = [
    ("goods", "daily", "电热毯", "床", "80.00", "过冬的电热毯"),
    ("goods", "daily", "电视机", "台", "1200.00", "给独居老人添一台电视机"),
    ("goods", "daily", "烤火炉", "个", "150.00", "冬天取暖的烤火炉"),
    ("goods", "daily", "棉被", "床", "120.00", "御寒的棉被"),
    ("goods", "daily", "洗衣机", "台", "1100.00", "残疾户的洗衣机"),
    ("goods", "education", "书包", "个", "60.00", "留守儿童的新书包"),
    ("goods", "education", "课桌椅", "套", "300.00", "村小学的课桌椅"),
    ("goods", "medical", "轮椅", "辆", "600.00", "行动不便老人的轮椅"),
    ("goods", "medical", "血压计", "台", "200.00", "村卫生室的血压计"),
    ("goods", "medical", "冰箱", "台", "1600.00", "存放胰岛素的冰箱"),
    ("goods", "industry", "茶树苗", "株", "3.00", "茶园扩种的茶树苗"),
    ("goods", "industry", "猪仔", "头", "800.00", "发展养殖的猪仔"),
    ("goods", "industry", "鸡苗", "只", "8.00", "林下养鸡的鸡苗"),
    ("goods", "technology", "化肥", "袋", "120.00", "春耕用的化肥"),
    ("goods", "technology", "果树苗", "株", "15.00", "脆红李果树苗"),
    ("goods", "infrastructure", "水泵", "台", "900.00", "抗旱用的水泵"),
    ("goods", "infrastructure", "水泥", "吨", "450.00", "入户路硬化的水泥"),
    ("goods", "infrastructure", "太阳能路灯", "盏", "1500.00", "村道的太阳能路灯"),
    ("money", "education", "", "", None, "孩子上大学的学费"),
    ("money", "medical", "", "", None, "大病住院的自付医疗费"),
    ("money", "infrastructure", "", "", None, "危房改造的材料费"),
    ("money", "industry", "", "", None, "合作社产业启动资金"),
    ("service", "technology", "", "小时", None, "果树修剪技术培训"),
    ("service", "other", "", "小时", None, "家电维修志愿服务"),
    ("service", "education", "", "小时", None, "留守儿童课业辅导"),
]
STORIES = [
    "家中老人常年患病，靠低保和子女打工维持生活。",
    "户主因病丧失劳动能力，两个孩子还在上学。",
    "房屋年久失修，冬天漏风，村里正在帮助改造。",
    "夫妻二人在家种植茶叶，缺少启动资金扩大规模。",
    "独居老人，行动不便，希望有人帮助添置生活用品。",
    "去年遭受洪灾，庄稼绝收，正在恢复生产。",
]
SPEND_PURPOSES = [
    ("purchase", "购买化肥和种子，用于春季播种", "绵阳农资有限公司"),
    ("works", "修缮村小学教室屋顶，防止雨季漏水", "盐亭县建筑队"),
    ("purchase", "为五保户老人购买冬季棉被和取暖用品", "梓潼县百货商店"),
    ("works", "村道硬化工程第二期材料款", "三台县建材公司"),
    ("transfer", "留守儿童暑期营养午餐补助", "乡镇中心学校"),
    ("service", "茶园产业合作社技术培训费用", "县农业技术推广站"),
    ("fees", "银行转账手续费", "农村信用社"),
]
CATEGORIES = ["purchase", "transfer", "works", "service", "refund", "fees", "other"]
ANONYMOUS = "anonymous donor"  # as donations.publication.ANONYMOUS
GIFT_PURPOSE = "捐赠到资金池"

STATUS_BUCKETS = [  # (upper bound of bucket 0..99, status)
    (62, "published"),
    (70, "fully_pledged"),
    (80, "fulfilled"),
    (88, "closed"),
    (92, "expired"),
    (96, "submitted"),
    (99, "draft"),
    (100, "rejected"),
]
PUBLIC = ("published", "fully_pledged", "fulfilled", "closed", "expired")
WITH_PLEDGES = PUBLIC

BIG_TABLES = [
    "households_household",
    "donations_need",
    "donations_pledge",
    "donations_ledgertransaction",
    "donations_ledgerleg",
    "donations_ledgeraccount",
    "donations_publishedentry",
    "donations_merklenode",
    "sun_commune_user",
    "donations_donor",
]
FIXED_ACCOUNTS = {"income:money": 1, "income:goods": 2, "goods:delivered": 3}
NEED_FUND_BASE = 1_000_000  # need fund account id = base + need id
POOL_BASE = 100_000  # pool account id = base + area id
HOT_QUANTITY = 2_000_000_000


def log(message: str) -> None:
    print(f"[generate {time.strftime('%H:%M:%S', time.gmtime())}] {message}", flush=True)


# --- The database -------------------------------------------------------------


def admin_connection():
    import psycopg2

    conn = psycopg2.connect(dbname="postgres")
    conn.autocommit = True
    return conn


def database_exists(name: str) -> bool:
    conn = admin_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            return cur.fetchone() is not None
    finally:
        conn.close()


def complete_meta(name: str) -> dict | None:
    """The bench_meta row of a finished generation, or None."""
    import psycopg2

    if not database_exists(name):
        return None
    conn = psycopg2.connect(dbname=name)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('bench_meta')")
            if cur.fetchone()[0] is None:
                return None
            cur.execute("SELECT meta FROM bench_meta WHERE complete")
            row = cur.fetchone()
            return row[0] if row else None
    finally:
        conn.close()


def recreate_database(name: str) -> None:
    conn = admin_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()


def connect(name: str):
    import psycopg2

    conn = psycopg2.connect(dbname=name)
    with conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        cur.execute("SET maintenance_work_mem = '1GB'")
        cur.execute("SET work_mem = '256MB'")
        cur.execute("SET max_parallel_maintenance_workers = 2")
        cur.execute("SET synchronous_commit = off")
    return conn


def run(conn, sql: str, params=None, label: str | None = None):
    started = time.monotonic()
    with conn.cursor() as cur:
        cur.execute(sql, params)
        count = cur.rowcount
    conn.commit()
    if label:
        log(f"{label}: {count:,} rows in {time.monotonic() - started:.1f}s")
    return count


def drop_secondary_indexes(conn) -> list[str]:
    """Drop the indexes that no constraint owns on the big tables; return
    their definitions to build them again after the load."""
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
            FROM pg_index i
            JOIN pg_class t ON t.oid = i.indrelid
            WHERE t.relname = ANY(%s)
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
            """,
            [BIG_TABLES],
        )
        rows = cur.fetchall()
        for name, _definition in rows:
            cur.execute(f"DROP INDEX {name}")
    conn.commit()
    return [definition for _name, definition in rows]


def build_indexes(conn, definitions: list[str]) -> None:
    started = time.monotonic()
    with conn.cursor() as cur:
        for definition in definitions:
            cur.execute(definition)
    conn.commit()
    log(f"built {len(definitions)} secondary indexes in {time.monotonic() - started:.1f}s")


# --- Pools computed in Python (exactly as the application computes them) -------------


def name_pool() -> list[tuple[str, list[str]]]:
    from sun_commune.search import index_terms

    names = []
    given = list(GIVEN)
    for k in range(len(SURNAMES) * len(given)):
        surname = SURNAMES[k % len(SURNAMES)]
        first = given[(k // len(SURNAMES)) % len(given)]
        second = given[(k * 7 + 3) % len(given)]
        name = surname + first + (second if k % 3 else "")
        names.append((name, index_terms(name)))
    return names


def need_templates() -> list[tuple]:
    """(t, kind, category, title, item, unit, unit_price, description, search_terms)."""
    from sun_commune.search import index_terms

    rows = []
    for k, (kind, category, item, unit, price, title) in enumerate(NEEDS):
        for s, story in enumerate(STORIES):
            description = f"{story}村里希望为这户人家解决{title}的问题。"
            rows.append(
                (
                    k * len(STORIES) + s,
                    kind,
                    category,
                    title,
                    item,
                    unit,
                    price,
                    description,
                    index_terms(title, item, description),
                )
            )
    return rows


def secret_pool(size: int = 1000) -> list[tuple[int, str, str]]:
    from households.crypto import encrypt, id_check_digit

    rows = []
    for k in range(size):
        first17 = f"510723{1950 + k % 60:04d}{1 + k % 12:02d}{1 + k % 28:02d}{k % 1000:03d}"
        rows.append((k, encrypt(first17 + id_check_digit(first17)), encrypt(f"139{k:08d}")))
    return rows


def copy_rows(conn, table: str, columns: list[str], rows) -> None:
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join(_copy_value(v) for v in row) + "\n")
    buf.seek(0)
    with conn.cursor() as cur:
        cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buf)
    conn.commit()


def _copy_value(value) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, list):
        return "{" + ",".join(json.dumps(v, ensure_ascii=False) for v in value) + "}"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


# --- The generation -----------------------------------------------------------------------


FUNCTIONS = """
CREATE OR REPLACE FUNCTION bench_h(i bigint, salt int) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT (((i + salt * 1000003) * 2654435761) % 4294967291) $$;

-- A public id that reveals nothing, unique because multiplying by an odd
-- number is a bijection modulo 2^45 (nine base-32 digits).
CREATE OR REPLACE FUNCTION bench_public_id(i bigint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT 'H' || string_agg(substr('23456789ABCDEFGHJKLMNPQRSTUVWXYZ',
        (((i * 1099511628211) & 35184372088831) >> (5 * k) & 31)::int + 1, 1), '' ORDER BY k)
   FROM generate_series(0, 8) AS k $$;
"""


def generate(scale: str, *, fresh: bool) -> dict:
    sizes = SCALES[scale]
    name = database_name(scale)
    meta = complete_meta(name)
    if meta and meta.get("sizes") == sizes and not fresh:
        log(f"{name} is complete (generated in {meta['seconds']:.0f}s); --fresh to rebuild")
        return meta
    started = time.monotonic()
    log(f"creating {name} for scale {scale}: {sizes}")
    recreate_database(name)
    setup_django(scale)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    log(f"migrated in {time.monotonic() - started:.1f}s")

    conn = connect(name)
    run(conn, FUNCTIONS)
    run(conn, "CREATE TABLE bench_meta (complete boolean NOT NULL, meta jsonb NOT NULL)")
    definitions = drop_secondary_indexes(conn)
    ids = load(conn, name, sizes)
    build_indexes(conn, definitions)
    conn.autocommit = True
    t = time.monotonic()
    with conn.cursor() as cur:
        cur.execute("VACUUM (ANALYZE)")
    log(f"VACUUM ANALYZE in {time.monotonic() - t:.1f}s")
    conn.autocommit = False
    problems = check(conn)
    if problems:
        raise SystemExit("the generated data breaks invariants: " + "; ".join(problems))
    seconds = time.monotonic() - started
    with conn.cursor() as cur:
        cur.execute("SELECT pg_database_size(current_database())")
        size = cur.fetchone()[0]
    meta = {
        "scale": scale,
        "sizes": sizes,
        "seconds": round(seconds, 1),
        "bytes": size,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **ids,
    }
    run(conn, "INSERT INTO bench_meta VALUES (true, %s)", [json.dumps(meta)])
    conn.close()
    log(f"{name} complete in {seconds:.0f}s ({size / 2**30:.1f} GiB)")
    return meta


def load(conn, name: str, s: dict) -> dict:
    cities, cpc, tpc, villages = s["cities"], s["counties_per_city"], s["townships_per_county"], s["villages"]
    counties = cities * cpc
    townships = counties * tpc
    households, donors = s["households"], s["donors"]

    # --- Areas: province → cities → counties → townships → villages -------------------
    run(
        conn,
        """
        INSERT INTO households_area (id, code, name, name_en, level, path, is_poor_village, parent_id)
        VALUES (1, '510000', '四川省', 'Sichuan', 1, '510000.', false, NULL)""",
    )
    run(
        conn,
        """
        INSERT INTO households_area (id, code, name, name_en, level, path, is_poor_village, parent_id)
        SELECT 1 + c, '51' || lpad(c::text, 2, '0') || '00',
               substr(%(p1)s, 1 + c %% length(%(p1)s), 1) || substr(%(p2)s, 1 + c %% length(%(p2)s), 1) || '市',
               '', 2, '510000.51' || lpad(c::text, 2, '0') || '00.', false, 1
        FROM generate_series(1, %(n)s) c""",
        {"n": cities, "p1": PLACE_1, "p2": PLACE_2},
        "cities",
    )
    run(
        conn,
        """
        INSERT INTO households_area (id, code, name, name_en, level, path, is_poor_village, parent_id)
        SELECT 1 + %(cities)s + k, p.code_prefix || lpad(((k - 1) %% %(cpc)s + 1)::text, 2, '0'),
               substr(%(p1)s, 1 + (k * 7) %% length(%(p1)s), 1) || substr(%(p2)s, 1 + k %% length(%(p2)s), 1) || '县',
               '', 3, p.path || p.code_prefix || lpad(((k - 1) %% %(cpc)s + 1)::text, 2, '0') || '.', false, p.id
        FROM generate_series(1, %(n)s) k
        JOIN (SELECT id, path, substr(code, 1, 4) AS code_prefix FROM households_area WHERE level = 2) p
          ON p.id = 2 + (k - 1) / %(cpc)s""",
        {"n": counties, "cities": cities, "cpc": cpc, "p1": PLACE_1, "p2": PLACE_2},
        "counties",
    )
    first_township = 2 + cities + counties
    run(
        conn,
        """
        INSERT INTO households_area (id, code, name, name_en, level, path, is_poor_village, parent_id)
        SELECT %(first)s + k - 1, p.code || lpad(((k - 1) %% %(tpc)s + 1)::text, 3, '0'),
               substr(%(p1)s, 1 + (k * 11) %% length(%(p1)s), 1) || substr(%(p2)s, 1 + (k * 3) %% length(%(p2)s), 1)
                   || CASE WHEN k %% 3 = 0 THEN '乡' ELSE '镇' END,
               '', 4, p.path || p.code || lpad(((k - 1) %% %(tpc)s + 1)::text, 3, '0') || '.', false, p.id
        FROM generate_series(1, %(n)s) k
        JOIN households_area p ON p.level = 3 AND p.id = %(first_county)s + (k - 1) / %(tpc)s""",
        {"n": townships, "tpc": tpc, "first": first_township, "first_county": 2 + cities, "p1": PLACE_1, "p2": PLACE_2},
        "townships",
    )
    first_village = first_township + townships
    run(
        conn,
        """
        INSERT INTO households_area (id, code, name, name_en, level, path, is_poor_village, parent_id)
        SELECT %(first)s + v, p.code || lpad((v / %(nt)s + 1)::text, 3, '0'),
               substr(%(p1)s, 1 + (v * 13) %% length(%(p1)s), 1) || substr(%(p2)s, 1 + (v * 5) %% length(%(p2)s), 1) || '村',
               '', 5, p.path || p.code || lpad((v / %(nt)s + 1)::text, 3, '0') || '.', v %% 5 <> 4, p.id
        FROM generate_series(0, %(n)s - 1) v
        JOIN households_area p ON p.id = %(first_township)s + v %% %(nt)s""",
        {
            "n": villages,
            "nt": townships,
            "first": first_village,
            "first_township": first_township,
            "p1": PLACE_1,
            "p2": PLACE_2,
        },
        "villages",
    )
    # Village index vi (0-based) → the village and its township and county.
    run(
        conn,
        """
        CREATE UNLOGGED TABLE bench_village AS
        SELECT v.id - %(first)s AS vi, v.id AS village_id, t.id AS township_id, t.parent_id AS county_id,
               v.code, v.name, v.path
        FROM households_area v JOIN households_area t ON t.id = v.parent_id
        WHERE v.level = 5""",
        {"first": first_village},
    )
    run(conn, "CREATE UNIQUE INDEX ON bench_village (vi)")

    # --- Users, grants, donors -------------------------------------------------------------
    # ids: donors' users 1..D, secretaries D+1..D+V (one per village), county
    # staff after them, then the bench's own logins.
    secretary0 = donors + 1
    staff0 = donors + villages + 1
    bench0 = staff0 + counties
    pledgers = 64
    run(
        conn,
        """
        INSERT INTO sun_commune_user (id, password, is_superuser, username, first_name, last_name, is_staff,
                                      is_active, date_joined, email, language)
        SELECT u, '!', false,
               CASE WHEN u <= %(d)s THEN 'donor' || u
                    WHEN u < %(staff0)s THEN 'secretary' || (u - %(d)s)
                    WHEN u < %(bench0)s THEN 'staff' || (u - %(staff0)s + 1)
                    WHEN u = %(bench0)s THEN 'bench_reviewer'
                    WHEN u = %(bench0)s + 1 THEN 'bench_donor'
                    ELSE 'bench_pledger' || (u - %(bench0)s - 1) END,
               '', '', false, true, now() - interval '3 years', 'user' || u || '@bench.example', 'zh-hans'
        FROM generate_series(1, %(bench0)s + 1 + %(pledgers)s) u""",
        {"d": donors, "staff0": staff0, "bench0": bench0, "pledgers": pledgers},
        "users",
    )
    run(
        conn,
        """
        INSERT INTO sun_commune_rolegrant (role, active, granted_at, area_id, user_id)
        SELECT 'secretary', true, now(), village_id, %(s0)s + vi FROM bench_village
        UNION ALL
        SELECT 'staff', true, now(), id, %(staff0)s + (id - %(c0)s) FROM households_area WHERE level = 3
        UNION ALL
        SELECT 'staff', true, now(), %(c0)s, %(bench0)s""",
        {"s0": secretary0, "staff0": staff0, "c0": 2 + cities, "bench0": bench0},
        "role grants",
    )
    # Donor 1 is the bench's donor (user bench0 + 1); pledgers are donors D+1…
    run(
        conn,
        """
        INSERT INTO donations_donor (id, kind, name, show_name, phone, created_at, user_id, verified_email, verified_at)
        SELECT d, CASE WHEN d %% 10 = 0 THEN 'enterprise' WHEN d %% 10 = 1 THEN 'organisation' ELSE 'person' END,
               CASE WHEN d %% 10 = 0 THEN substr(%(p1)s, 1 + d %% length(%(p1)s), 1) || '阳光实业有限公司'
                    ELSE substr(%(sn)s, 1 + d %% length(%(sn)s), 1) || substr(%(gv)s, 1 + (d / 7) %% length(%(gv)s), 1)
                         || substr(%(gv)s, 1 + (d / 3) %% length(%(gv)s), 1) END,
               d %% 2 = 0, '', now() - interval '3 years',
               CASE WHEN d = 1 THEN %(bench0)s + 1 WHEN d > %(d)s THEN %(bench0)s + 1 + (d - %(d)s) ELSE d END,
               -- every donor's e-mail verified (the user's address, below), as a site's long-standing donors are
               'user' || CASE WHEN d = 1 THEN %(bench0)s + 1 WHEN d > %(d)s THEN %(bench0)s + 1 + (d - %(d)s) ELSE d END
                      || '@bench.example',
               now() - interval '3 years'
        FROM generate_series(1, %(d)s + %(pledgers)s) d""",
        {"d": donors, "bench0": bench0, "pledgers": pledgers, "p1": PLACE_1, "sn": SURNAMES, "gv": GIVEN},
        "donors",
    )
    # The bench donor's user id was a generated donor's: give that user no donor.
    # (Donor 1 belongs to bench_donor; user 1 simply has no donor profile.)

    # --- Households -------------------------------------------------------------------------
    names = name_pool()
    run(conn, "CREATE UNLOGGED TABLE bench_name (k int PRIMARY KEY, name text, terms varchar(8)[])")
    copy_rows(conn, "bench_name", ["k", "name", "terms"], [(k, n, t) for k, (n, t) in enumerate(names)])
    run(conn, "CREATE UNLOGGED TABLE bench_secret (k int PRIMARY KEY, id_number text, phone text)")
    copy_rows(conn, "bench_secret", ["k", "id_number", "phone"], secret_pool())
    block = max(1, households // (villages * 4))
    # Columns that a trigger fills (the triggers are off during the load).
    derived = {"area_codes": "string_to_array(rtrim(v.path, '.'), '.')"}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'households_household'"
            " AND column_name = ANY(%s)",
            [list(derived)],
        )
        extra = [row[0] for row in cur.fetchall()]
    run(
        conn,
        """
        INSERT INTO households_household (
            id, public_id, alias, alias_consent, size, poverty_causes, story, story_consent, photo_consent,
            status, lifted_out_year, housing, name_terms, head_name, id_number, id_hash, phone, address,
            health_notes, created_at, updated_at, created_by_id, village_id EXTRA_COLUMNS)
        SELECT i, bench_public_id(i),
               CASE WHEN h %% 10 < 3 THEN substr(n.name, 1, 1) || '家' ELSE '' END, h %% 10 < 3,
               1 + h %% 6,
               (CASE WHEN h %% 3 = 0 THEN ARRAY[(%(causes)s)[1 + h %% 10], (%(causes)s)[1 + (h %% 10 + 1 + (h / 10) %% 9) %% 10]]
                     ELSE ARRAY[(%(causes)s)[1 + h %% 10]] END)::varchar(16)[],
               CASE WHEN h %% 5 = 0 THEN (%(stories)s)[1 + (h / 5) %% %(nstories)s] ELSE '' END, h %% 5 = 0, h %% 7 = 0,
               CASE WHEN h %% 10 < 6 THEN 'poor' WHEN h %% 10 < 9 THEN 'lifted' ELSE 'monitored' END,
               CASE WHEN h %% 10 BETWEEN 6 AND 8 THEN 2016 + (h / 10) %% 5 END,
               (ARRAY['safe', 'renovated', 'dilapidated', 'relocated', ''])[1 + (h / 100) %% 5],
               n.terms, n.name, s.id_number, encode(sha256(('bench-id-' || i)::bytea), 'hex'), s.phone,
               v.name || (1 + h %% 9) || '组', '',
               now() - interval '3 years' + (i * interval '1 second' * (86400 * 1000 / %(n)s)),
               now() - interval '1 day', %(s0)s + v.vi, v.village_id EXTRA_VALUES
        FROM generate_series(1, %(n)s) i
        CROSS JOIN LATERAL (SELECT bench_h(i, 1) AS h) x
        JOIN bench_village v ON v.vi = ((i - 1) / %(block)s) %% %(nv)s
        JOIN bench_name n ON n.k = (i * 7) %% %(nn)s
        JOIN bench_secret s ON s.k = i %% 1000""".replace("EXTRA_COLUMNS", "".join(f", {c}" for c in extra)).replace(
            "EXTRA_VALUES", "".join(f", {derived[c]}" for c in extra)
        ),
        {
            "n": households,
            "block": block,
            "nv": villages,
            "nn": len(names),
            "s0": secretary0,
            "causes": CAUSES,
            "stories": STORIES,
            "nstories": len(STORIES),
        },
        "households",
    )

    # --- Needs --------------------------------------------------------------------------------
    templates = need_templates()
    run(
        conn,
        """CREATE UNLOGGED TABLE bench_template (t int PRIMARY KEY, kind text, category text, title text,
                 item text, unit text, unit_price numeric(14,2), description text, terms varchar(8)[])""",
    )
    copy_rows(
        conn,
        "bench_template",
        ["t", "kind", "category", "title", "item", "unit", "unit_price", "description", "terms"],
        templates,
    )
    total_needs = round(s["open_needs"] / 0.62)
    avg = s["pledges"] / (total_needs * 0.92)
    spread = max(1, round(2 * avg)) + 1
    cases = " ".join(f"WHEN b < {upper} THEN '{status}'" for upper, status in STATUS_BUCKETS)
    run(
        conn,
        f"""
        CREATE UNLOGGED TABLE bench_need AS
        SELECT i AS id, v.vi, v.village_id, v.township_id, v.county_id, t.t, t.kind,
               CASE {cases} END AS status,
               CASE WHEN t.kind = 'money' THEN 100 * (1 + i % 5) ELSE 1 + i % 3 END AS q,
               bench_h(i, 3) % {spread} AS npl0,
               1 + i % 7 AS extra,
               CASE WHEN i % 10 < 7 THEN (((i % 4) * {villages} + v.vi) * {block} + i % {block}) + 1 END AS household_id
        FROM generate_series(1, {total_needs}) i
        CROSS JOIN LATERAL (SELECT bench_h(i, 2) % 100 AS b) x
        JOIN bench_village v ON v.vi = bench_h(i, 7) % {villages}
        JOIN bench_template t ON t.t = (i * 13) % {len(templates)}""",
        label="need plan",
    )
    run(
        conn,
        """
        ALTER TABLE bench_need ADD COLUMN npl int, ADD COLUMN nrec int;
        UPDATE bench_need SET
            npl = CASE WHEN status IN ('fully_pledged', 'fulfilled', 'closed') THEN greatest(1, npl0)
                       WHEN status IN ('published', 'expired') THEN npl0 ELSE 0 END;
        UPDATE bench_need SET nrec = CASE WHEN status IN ('fulfilled', 'closed') THEN npl
                                          WHEN status IN ('published', 'fully_pledged') THEN (npl + 3) / 4
                                          ELSE 0 END;
        CREATE UNIQUE INDEX ON bench_need (id);""",
    )
    # Published 3 years ago up to an hour ago, in id order (new needs get new ids).
    run(
        conn,
        f"""
        INSERT INTO donations_need (
            id, title, description, category, kind, item, unit, quantity, unit_price, pledged_quantity,
            received_quantity, target_amount, pledged_amount, received_amount, deadline, status,
            rejection_reason, search_terms, created_at, submitted_at, published_at, fulfilled_at,
            county_id, created_by_id, household_id, reviewed_by_id, township_id, village_id)
        SELECT p.id, t.title, t.description, t.category, t.kind, t.item, t.unit,
               CASE WHEN t.kind <> 'money' THEN p.npl * p.q + CASE WHEN p.status IN ('published', 'expired')
                    OR p.npl = 0 THEN p.extra ELSE 0 END END,
               CASE WHEN t.kind = 'goods' THEN t.unit_price END,
               CASE WHEN t.kind <> 'money' AND p.status <> 'expired' THEN p.npl * p.q ELSE 0 END,
               CASE WHEN t.kind <> 'money' THEN p.nrec * p.q ELSE 0 END,
               CASE WHEN t.kind = 'money' THEN p.npl * p.q + CASE WHEN p.status IN ('published', 'expired')
                    OR p.npl = 0 THEN 100 * p.extra ELSE 0 END END,
               CASE WHEN t.kind = 'money' AND p.status <> 'expired' THEN p.npl * p.q ELSE 0 END,
               CASE WHEN t.kind = 'money' THEN p.nrec * p.q ELSE 0 END,
               CASE WHEN p.status = 'expired' THEN current_date - 1 - p.id %% 30
                    ELSE current_date + 10 + p.id %% 120 END,
               p.status, CASE WHEN p.status = 'rejected' THEN '请补充照片和预算明细' ELSE '' END,
               t.terms, ts - interval '3 days', ts - interval '2 days',
               CASE WHEN p.status IN {PUBLIC} THEN ts END,
               CASE WHEN p.status IN ('fulfilled', 'closed') THEN ts + interval '20 days' END,
               p.county_id, %(s0)s + p.vi, p.household_id,
               CASE WHEN p.status IN {PUBLIC + ("rejected",)} THEN %(staff0)s + (p.county_id - %(c0)s) END,
               p.township_id, p.village_id
        FROM bench_need p
        JOIN bench_template t ON t.t = p.t
        CROSS JOIN LATERAL (SELECT now() - interval '3 years' + (p.id * (interval '3 years' - interval '1 hour')
                            / {total_needs}) AS ts) x""",
        {"s0": secretary0, "staff0": staff0, "c0": 2 + cities},
        "needs",
    )

    # --- Pledges ------------------------------------------------------------------------------
    bench_every = max(1, s["pledges"] // 300)  # the bench donor has about 300 pledges
    run(
        conn,
        f"""
        INSERT INTO donations_pledge (
            quantity, amount, declared_value, message, status, received_quantity, received_amount,
            transfer_reference, photo, receipt_note, thanks, created_at, sent_at, received_at, closed_at,
            donor_id, need_id, received_by_id)
        SELECT CASE WHEN n.kind <> 'money' THEN p.q END,
               CASE WHEN n.kind = 'money' THEN p.q END,
               CASE WHEN n.kind = 'money' THEN p.q WHEN n.kind = 'goods' THEN p.q * n.unit_price ELSE 0 END,
               CASE WHEN j % 3 = 0 THEN '一点心意，祝早日康复' ELSE '' END,
               st.status,
               CASE WHEN n.kind <> 'money' AND st.arrived THEN p.q END,
               CASE WHEN n.kind = 'money' AND st.arrived THEN p.q END,
               CASE WHEN n.kind = 'money' AND st.arrived THEN 'BENCH-' || n.id || '-' || j END,
               '', '', CASE WHEN st.status = 'thanked' THEN '谢谢您的帮助！' ELSE '' END,
               n.published_at + j * interval '1 minute',
               CASE WHEN st.status = 'sent' THEN n.published_at + interval '1 day' END,
               CASE WHEN st.arrived THEN n.published_at + interval '5 days' END,
               CASE WHEN st.status = 'expired' THEN n.published_at + interval '30 days' END,
               CASE WHEN bench_h(n.id * 16 + j, 5) % {bench_every} = 0 THEN 1
                    ELSE 1 + bench_h(n.id * 16 + j, 4) % {donors} END,
               n.id,
               CASE WHEN st.arrived THEN n.created_by_id END
        FROM bench_need p
        JOIN donations_need n ON n.id = p.id
        CROSS JOIN LATERAL generate_series(0, p.npl - 1) j
        CROSS JOIN LATERAL (SELECT s.status, s.status IN ('received', 'done', 'thanked') AS arrived FROM (SELECT
            CASE WHEN p.status = 'expired' THEN 'expired'
                 WHEN p.status IN ('fulfilled', 'closed') THEN CASE WHEN j % 3 = 0 THEN 'thanked'
                      WHEN n.kind = 'service' THEN 'done' ELSE 'received' END
                 WHEN j % 4 = 0 THEN CASE WHEN n.kind = 'service' THEN 'done' ELSE 'received' END
                 WHEN j % 4 = 1 AND n.kind = 'goods' THEN 'sent'
                 ELSE 'pledged' END AS status) s) st
        WHERE p.npl > 0""",
        label="pledges",
    )

    # --- The hot need and the many needs of the pledge benchmark (published long ago,
    # so they are not on the supermarket's first pages) ------------------------------------------
    hot_first = total_needs + 1
    many = 200
    run(
        conn,
        """
        INSERT INTO donations_need (
            id, title, description, category, kind, item, unit, quantity, unit_price, pledged_quantity,
            received_quantity, target_amount, pledged_amount, received_amount, deadline, status,
            rejection_reason, search_terms, created_at, submitted_at, published_at, fulfilled_at,
            county_id, created_by_id, household_id, reviewed_by_id, township_id, village_id)
        SELECT %(first)s + k, t.title, t.description, t.category, 'goods', t.item, t.unit,
               CASE WHEN k = 0 THEN %(hot)s ELSE 1000000 END, t.unit_price, 0, 0, NULL, 0, 0,
               current_date + 365, 'published', '', t.terms, now() - interval '4 years',
               now() - interval '4 years', now() - interval '4 years' + k * interval '1 second', NULL,
               v.county_id, %(s0)s + v.vi, NULL, %(staff0)s, v.township_id, v.village_id
        FROM generate_series(0, %(many)s) k
        JOIN bench_template t ON t.t = 0
        JOIN bench_village v ON v.vi = k %% %(nv)s""",
        {"first": hot_first, "hot": HOT_QUANTITY, "many": many, "nv": villages, "s0": secretary0, "staff0": staff0},
        "pledge-benchmark needs",
    )

    # --- The ledger -----------------------------------------------------------------------------
    load_ledger(conn, name, s)

    # Identity columns carry on after the explicit ids.
    with conn.cursor() as cur:
        for table in (
            "households_area",
            "sun_commune_user",
            "donations_donor",
            "households_household",
            "donations_need",
            "donations_ledgertransaction",
            "donations_ledgerleg",
            "donations_ledgeraccount",
            "donations_merklenode",
            "donations_pledge",
            "sun_commune_rolegrant",
        ):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
        for table in ("bench_village", "bench_name", "bench_secret", "bench_template", "bench_need"):
            cur.execute(f"DROP TABLE {table}")
    conn.commit()
    return {
        "reviewer_username": "bench_reviewer",
        "reviewer_county_id": 2 + cities,
        "donor_username": "bench_donor",
        "pledger_usernames": [f"bench_pledger{k}" for k in range(1, pledgers + 1)],
        "hot_need_id": hot_first,
        "many_need_ids": [hot_first + k for k in range(1, many + 1)],
        "first_village_id": first_village,
        "households": households,
        "needs": total_needs,
    }


# --- The ledger: COPY of transactions, legs, published entries and Merkle nodes -----------


def load_ledger(conn, name: str, s: dict) -> None:
    from django.conf import settings

    from donations import publication
    from donations.merkle import Frontier, canonical, checkpoint_message, leaf_hash

    started = time.monotonic()
    total = s["ledger"]
    batch_max = settings.LEDGER_BATCH_MAX
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT n.id, n.title, h.public_id, v.id, v.code, v.name, v.path, c.id, c.code, c.name, c.path
            FROM donations_need n
            JOIN households_area v ON v.id = n.village_id
            JOIN households_area c ON c.id = n.county_id
            LEFT JOIN households_household h ON h.id = n.household_id
            WHERE n.status IN ('published', 'fully_pledged', 'fulfilled', 'closed', 'expired')
              AND n.quantity IS DISTINCT FROM %s AND n.quantity IS DISTINCT FROM 1000000
            ORDER BY n.id""",
            [HOT_QUANTITY],
        )
        needs = cur.fetchall()
        cur.execute("SELECT id, name, show_name FROM donations_donor ORDER BY id")
        donors = cur.fetchall()
    # Accounts: income, delivery, expense, a pool per county, a fund per need.
    accounts = [
        (i, code, kind, "", None, None)
        for code, i, kind in (
            ("income:money", 1, "income_money"),
            ("income:goods", 2, "income_goods"),
            ("goods:delivered", 3, "goods_delivered"),
        )
    ]
    expense_ids = {}
    for k, category in enumerate(CATEGORIES):
        expense_ids[category] = 10 + k
        accounts.append((10 + k, f"expense:{category}", "expense", category, None, None))
    counties = sorted({(n[7], n[8]) for n in needs})
    for county_id, county_code in counties:
        accounts.append((POOL_BASE + county_id, f"pool:{county_code}", "pool", "", county_id, None))
    for n in needs:
        accounts.append((NEED_FUND_BASE + n[0], f"need:{n[0]}", "need_fund", "", None, n[0]))
    copy_rows(
        conn,
        "donations_ledgeraccount",
        ["id", "code", "kind", "category", "area_id", "need_id", "balance"],
        [(*a, "0.00") for a in accounts],
    )
    log(f"ledger accounts: {len(accounts):,}")

    key = publication._private_key()
    public_key = publication.public_key_hex()
    start_day = date.today() - timedelta(days=3 * 365)
    start_ts = datetime.now(UTC) - timedelta(days=3 * 365)
    span = (datetime.now(UTC) - timedelta(hours=2) - start_ts).total_seconds()
    frontier = Frontier()
    prev = "0" * 64
    number_needs, number_donors = len(needs), len(donors)

    # Writers: one connection and thread per table, fed chunks of COPY text.
    tables = {
        "txn": (
            "donations_ledgertransaction",
            "id, kind, amount, occurred_on, recorded_at, reference, purpose, "
            "category, payee, voucher_sha256, area_id, donor_id, need_id",
        ),
        "leg": ("donations_ledgerleg", "id, amount, account_id, transaction_id"),
        "entry": (
            "donations_publishedentry",
            "index, line, leaf_hash, kind, amount, occurred_on, area_path, need_id, transaction_id",
        ),
        "node": ("donations_merklenode", 'height, "position", hash'),
    }
    queues = {k: queue.Queue(maxsize=2) for k in tables}
    errors = []

    def writer(kind):
        wconn = connect(name)
        table, columns = tables[kind]
        try:
            while (chunk := queues[kind].get()) is not None:
                with wconn.cursor() as cur:
                    cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN", io.BytesIO(chunk))
                wconn.commit()
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            while queues[kind].get() is not None:
                pass
        finally:
            wconn.close()

    threads = [threading.Thread(target=writer, args=(k,), daemon=True) for k in tables]
    for t in threads:
        t.start()
    buffers = {k: [] for k in tables}
    batches = []

    def flush():
        for k, parts in buffers.items():
            if parts:
                if errors:
                    raise errors[0]
                queues[k].put("".join(parts).encode())
                parts.clear()

    checked = 0
    for i in range(total):
        r = i % 10
        g = i // 10
        kind = (
            "goods_in",
            "goods_in",
            "goods_in",
            "gift_in",
            "money_in",
            "money_in",
            "money_in",
            "spend",
            "spend",
            "spend",
        )[r]
        need = needs[(g * 7919 + (r if r < 7 else r - 3) * 31) % number_needs]
        h = (i * 2654435761) % 4294967291
        txn_id = i + 1
        day = start_day + timedelta(days=i * (3 * 365 - 1) // total)
        recorded = start_ts + timedelta(seconds=i * span / total)
        recorded_text = recorded.strftime("%Y-%m-%dT%H:%M:%SZ")
        donor = reference = category = payee = voucher = None
        if kind == "goods_in":
            amount = Decimal(5000 + h % 200000) / 100
            legs = ((3, amount), (2, -amount))
        elif kind == "money_in":
            amount = Decimal(50000 + h % 100000) / 100
            legs = ((NEED_FUND_BASE + need[0], amount), (1, -amount))
        elif kind == "gift_in":
            amount = Decimal(100000 + h % 1000000) / 100
            legs = ((POOL_BASE + need[7], amount), (1, -amount))
        else:
            amount = Decimal(100 + h % 9900) / 100
            category, purpose, payee = SPEND_PURPOSES[h % len(SPEND_PURPOSES)]
            legs = ((NEED_FUND_BASE + need[0], -amount), (expense_ids[category], amount))
            if h % 2:
                voucher = format(h * 2654435761 % (1 << 256), "064x")
        if kind in ("goods_in", "money_in"):
            donor = donors[h % number_donors]
            purpose = need[1]
        if kind in ("money_in", "gift_in"):
            reference = f"LT{txn_id}"
        if kind == "gift_in":
            purpose, area_id, area_code, area_name, area_path, need_id = (
                GIFT_PURPOSE,
                need[7],
                need[8],
                need[9],
                need[10],
                None,
            )
        else:
            area_id, area_code, area_name, area_path, need_id = need[3], need[4], need[5], need[6], need[0]
        entry = {
            "index": i,
            "prev": prev,
            "id": txn_id,
            "kind": kind,
            "date": day.isoformat(),
            "recorded_at": recorded_text,
            "amount": str(amount),
            "currency": "CNY",
            "legs": [{"account": _code(a, need, expense_ids), "amount": str(x)} for a, x in legs],
            "need": need_id,
            "need_title": need[1] if need_id else None,
            "household": need[2] if need_id else None,
            "area": area_code,
            "area_name": area_name,
            "donor": (donor[1] if donor[2] else ANONYMOUS) if donor else None,
            "purpose": purpose,
            "category": category,
            "payee": payee,
            "voucher_sha256": voucher,
            "reverses": None,
        }
        line = canonical(entry)
        if checked < 50:
            _check_against_publication(
                entry, line, legs, need, donor, area_code, area_name, day, recorded, _code, expense_ids
            )
            checked += 1
        leaf = leaf_hash(line)
        for height, position, digest in frontier.append(leaf):
            if height >= publication.STORED_HEIGHT:
                buffers["node"].append(f"{height}\t{position}\t{digest.hex()}\n")
        number = i // batch_max + 1
        text = line.decode()
        buffers["txn"].append(
            f"{txn_id}\t{kind}\t{amount}\t{day}\t{recorded.isoformat()}\t{_n(reference)}\t{purpose}\t"
            f"{category or ''}\t{payee or ''}\t{voucher or ''}\t{area_id}\t{_n(donor and donor[0])}\t{_n(need_id)}\n"
        )
        for k, (account, x) in enumerate(legs):
            buffers["leg"].append(f"{2 * i + k + 1}\t{x}\t{account}\t{txn_id}\n")
        buffers["entry"].append(
            f"{i}\t{text.replace(chr(92), chr(92) * 2)}\t{leaf.hex()}\t{kind}\t{amount}\t{day}\t{area_path}\t"
            f"{_n(need_id)}\t{txn_id}\n"
        )
        prev = leaf.hex()
        if (i + 1) % batch_max == 0 or i + 1 == total:
            root = frontier.root().hex()
            timestamp = recorded.strftime("%Y-%m-%dT%H:%M:%SZ")
            signature = key.sign(
                checkpoint_message(batch=number, tree_size=i + 1, root_hash=root, timestamp=timestamp)
            ).hex()
            batches.append(
                (
                    number,
                    number * batch_max - batch_max,
                    i + 1,
                    root,
                    timestamp,
                    public_key,
                    signature,
                    json.dumps(frontier.to_json()),
                    recorded.isoformat(),
                )
            )
        if (i + 1) % 100_000 == 0:
            flush()
        if (i + 1) % 1_000_000 == 0:
            log(f"ledger: {i + 1:,} entries ({(i + 1) / (time.monotonic() - started):,.0f}/s)")
    flush()
    for q in queues.values():
        q.put(None)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    copy_rows(
        conn,
        "donations_ledgerbatch",
        [
            "number",
            "first_index",
            "tree_size",
            "root_hash",
            "timestamp",
            "public_key",
            "signature",
            "frontier",
            "published_at",
        ],
        batches,
    )
    # Fund balances are the sums of their legs; the published totals per area
    # are the sums of the entries in the area and every area under it.
    run(
        conn,
        f"""
        UPDATE donations_ledgeraccount a SET balance = s.total
        FROM (SELECT account_id, sum(amount) AS total FROM donations_ledgerleg
              WHERE account_id >= {POOL_BASE} GROUP BY account_id) s
        WHERE a.id = s.account_id""",
        label="fund balances",
    )
    run(
        conn,
        """
        INSERT INTO donations_arealedgertotal (area_id, money_in, goods_in, money_out, entries)
        SELECT a.id, sum(t.money_in), sum(t.goods_in), sum(t.money_out), sum(t.entries)
        FROM (SELECT area_id,
                     sum(amount) FILTER (WHERE kind IN ('money_in', 'gift_in')) AS money_in,
                     sum(amount) FILTER (WHERE kind = 'goods_in') AS goods_in,
                     sum(amount) FILTER (WHERE kind = 'spend') AS money_out,
                     count(*) AS entries
              FROM donations_ledgertransaction GROUP BY area_id) t
        JOIN households_area x ON x.id = t.area_id
        CROSS JOIN LATERAL unnest(string_to_array(rtrim(x.path, '.'), '.')) AS up(code)
        JOIN households_area a ON a.code = up.code
        GROUP BY a.id""",
        label="area ledger totals",
    )
    run(
        conn,
        "UPDATE donations_arealedgertotal SET money_in = coalesce(money_in, 0), "
        "goods_in = coalesce(goods_in, 0), money_out = coalesce(money_out, 0)",
    )
    log(f"ledger: {total:,} entries, {len(batches)} batches in {time.monotonic() - started:.1f}s")


def _n(value) -> str:
    return "\\N" if value is None else str(value)


def _code(account: int, need, expense_ids) -> str:
    if account == 1:
        return "income:money"
    if account == 2:
        return "income:goods"
    if account == 3:
        return "goods:delivered"
    if account >= NEED_FUND_BASE:
        return f"need:{account - NEED_FUND_BASE}"
    if account >= POOL_BASE:
        return f"pool:{need[8]}"
    return f"expense:{next(c for c, i in expense_ids.items() if i == account)}"


def _check_against_publication(entry, line, legs, need, donor, area_code, area_name, day, recorded, code, expense_ids):
    """The first entries must be byte for byte what the publisher writes."""
    from types import SimpleNamespace

    from donations import publication
    from donations.merkle import canonical

    codes = [(code(a, need, expense_ids), x) for a, x in legs]
    if hasattr(publication, "Pending"):  # the publisher reads rows, not model instances
        values = {
            "id": entry["id"],
            "kind": entry["kind"],
            "occurred_on": entry["date"],
            "recorded_at": entry["recorded_at"],
            "amount": entry["amount"],
            "need_id": entry["need"],
            "need_title": entry["need_title"],
            "household": entry["household"],
            "area_code": area_code,
            "area_name": area_name,
            "area_path": "",
            "donor_name": donor[1] if donor else None,
            "donor_named": donor[2] if donor else None,
            "purpose": entry["purpose"],
            "category": entry["category"] or "",
            "payee": entry["payee"] or "",
            "voucher_sha256": entry["voucher_sha256"] or "",
            "reverses_id": None,
            "reverses_kind": None,
            "legs": [f"{c} {x}" for c, x in codes],
        }
        txn = publication.Pending(**{k: values[k] for k in publication.Pending._fields})
    else:
        household = SimpleNamespace(public_id=need[2]) if need[2] else None
        need_obj = SimpleNamespace(
            pk=need[0], title=need[1], household_id=1 if household else None, household=household
        )
        txn = SimpleNamespace(
            pk=entry["id"],
            kind=entry["kind"],
            occurred_on=day,
            recorded_at=recorded,
            amount=Decimal(entry["amount"]),
            need=need_obj if entry["need"] else None,
            donor_id=donor[0] if donor else None,
            donor=SimpleNamespace(name=donor[1], show_name=donor[2]) if donor else None,
            legs=SimpleNamespace(
                all=lambda: [SimpleNamespace(account=SimpleNamespace(code=c), amount=x) for c, x in codes]
            ),
            area=SimpleNamespace(code=area_code, name=area_name),
            purpose=entry["purpose"],
            category=entry["category"] or "",
            payee=entry["payee"] or "",
            voucher_sha256=entry["voucher_sha256"] or "",
            reverses_id=None,
        )
    expected = canonical(publication.public_entry(txn, index=entry["index"], prev=entry["prev"]))
    if expected != line:
        raise AssertionError(f"generated ledger line differs from the publisher's:\n{line!r}\n{expected!r}")


# --- The check ----------------------------------------------------------------------------------


def check(conn) -> list[str]:
    """The invariants the triggers and the run_check would verify, in SQL."""
    queries = {
        "unbalanced transactions": """SELECT count(*) FROM (SELECT transaction_id FROM donations_ledgerleg
                                      GROUP BY transaction_id HAVING sum(amount) <> 0) x""",
        "negative funds": "SELECT count(*) FROM donations_ledgeraccount WHERE kind IN ('pool', 'need_fund') AND balance < 0",
        "needs whose counters differ from their pledges": """
            SELECT count(*) FROM donations_need n LEFT JOIN (
                SELECT need_id,
                       sum(CASE WHEN status IN ('pledged', 'sent') THEN coalesce(quantity, 0)
                                WHEN status IN ('received', 'done', 'thanked') THEN coalesce(received_quantity, 0)
                                ELSE 0 END) AS q,
                       sum(CASE WHEN status IN ('pledged', 'sent') THEN coalesce(amount, 0)
                                WHEN status IN ('received', 'done', 'thanked') THEN coalesce(received_amount, 0)
                                ELSE 0 END) AS a
                FROM donations_pledge GROUP BY need_id) p ON p.need_id = n.id
            WHERE coalesce(p.q, 0) <> n.pledged_quantity OR coalesce(p.a, 0) <> n.pledged_amount""",
        "published entries out of sequence": """SELECT count(*) - coalesce(max(index) + 1, 0)
                                                FROM donations_publishedentry""",
    }
    problems = []
    with conn.cursor() as cur:
        for label, sql in queries.items():
            cur.execute(sql)
            n = cur.fetchone()[0]
            if n:
                problems.append(f"{label}: {n}")
    conn.rollback()
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default=os.environ.get("SCALE", "city"))
    parser.add_argument("--fresh", action="store_true", help="rebuild even if the database is complete")
    args = parser.parse_args(argv)
    meta = generate(args.scale, fresh=args.fresh)
    print(json.dumps({k: v for k, v in meta.items() if k not in ("pledger_usernames", "many_need_ids")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
