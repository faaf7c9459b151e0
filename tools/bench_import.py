"""Benchmark the household import (run by hand, not a test).

    DEBUG=1 .venv/bin/python tools/bench_import.py [50000] [--members 1.5] [--keep] [--profile]

Creates a throw-away database (sun_commune_benchimport, local socket),
migrates it, makes a county of 20 townships and 200 villages with a staff
member, and writes an .xlsx of N valid households (GB 11643 check digits,
2–3 character names, every column filled) with a members sheet (on average
--members members each). Then it runs the import the way the site does —
``services.start_import`` and the Celery task, eagerly — and prints the time
of each step (reading the file, checking every row, writing), the progress a
second connection saw meanwhile, and the time of importing the same file
again (every row "already registered"). Drops the database afterwards
unless --keep. --profile prints the top 25 of a cProfile of the first import.
"""

import argparse
import cProfile
import io
import os
import pstats
import random
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "sun_commune_benchimport"
SURNAMES = "王李张刘陈杨黄赵周吴徐孙马胡朱郭何罗谢唐冯宋邓彭曾田范蒲苟敬母任袁文蒋杜岳向熊龚"
GIVEN = "国建明德文华志强勇军成忠富贵福全学正清洪金发顺元友春树光绍登泽仕朝绪祥崇银庆云昌秀英兰芳菊琼玉珍桂淑素凤翠梅莲群霞碧蓉琴惠容燕"
CAUSES = ["因病", "因残", "缺劳力", "缺技术", "缺资金", "缺土地", "缺水", "因灾", "因学"]
STATUSES = ["贫困户", "贫困户", "贫困户", "已脱贫", "监测户"]
HOUSING = ["安全", "已改造", "危房", "易地搬迁", ""]
ABILITY = ["有劳动能力", "弱劳动力", "无劳动能力"]
RELATIONS = ["配偶", "子", "女", "父亲", "母亲", "孙子"]


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
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"
    os.environ.setdefault("EMAIL_URL", "locmem://")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.conf import settings

    settings.DEBUG = False  # no query log: measure what production does


def seed():
    from households.models import Area
    from sun_commune.models import RoleGrant, User

    city = Area.objects.create(code="510700", name="绵阳市", name_en="Mianyang", level=Area.Level.CITY)
    county = Area.objects.create(code="510723", name="盐亭县", name_en="Yanting", level=Area.Level.COUNTY, parent=city)
    villages = []
    for t in range(1, 21):
        township = Area.objects.create(code=f"510723{t:03d}", name=f"乡{t}", level=Area.Level.TOWNSHIP, parent=county)
        for v in range(201, 211):
            villages.append(
                Area.objects.create(
                    code=f"{township.code}{v}", name=f"村{t}-{v}", level=Area.Level.VILLAGE, parent=township
                )
            )
    staff = User.objects.create(username="bench-staff", email="bench@example.org", language="zh-hans")
    RoleGrant.objects.create(user=staff, role=RoleGrant.Role.STAFF, area=county)
    return county, villages, staff


def id_number(i: int) -> str:
    from households.crypto import id_check_digit

    born = date(1940, 1, 1) + timedelta(days=i // 500)
    first17 = f"510723{born:%Y%m%d}{(i % 500) * 2 + 1:03d}"
    return first17 + id_check_digit(first17)


def make_file(n: int, villages, members_per_household: float) -> bytes:
    from openpyxl import Workbook

    rng = random.Random(42)

    def name():
        return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(1 if rng.random() < 0.25 else 2))

    book = Workbook(write_only=True)
    households = book.create_sheet("户信息")
    households.append(
        [
            "村代码",
            "户主姓名",
            "身份证号",
            "家庭人口",
            "联系电话",
            "住址",
            "状态",
            "脱贫年度",
            "致贫原因",
            "住房",
            "健康状况",
        ]
    )
    members = book.create_sheet("家庭成员")
    members.append(["户主身份证号", "姓名", "与户主关系", "出生年份", "劳动能力", "健康状况"])
    member_count = 0
    for i in range(n):
        village = villages[i % len(villages)]
        status = rng.choice(STATUSES)
        k = int(members_per_household) + (1 if rng.random() < members_per_household % 1 else 0)
        number = id_number(i)
        households.append(
            [
                village.code,
                name(),
                number,
                1 + k,
                f"1{rng.choice(['38', '39', '58', '87'])}{rng.randint(0, 99_999_999):08d}",
                f"四川省盐亭县{village.name}{rng.randint(1, 8)}组{rng.randint(1, 60)}号",
                status,
                rng.randint(2016, 2020) if status == "已脱贫" else None,
                "、".join(rng.sample(CAUSES, rng.choice([1, 1, 2]))),
                rng.choice(HOUSING),
                rng.choice(["", "高血压", "糖尿病，长期服药", "腿脚不便"]),
            ]
        )
        for _ in range(k):
            members.append(
                [
                    number,
                    name(),
                    rng.choice(RELATIONS),
                    rng.randint(1940, 2015),
                    rng.choice(ABILITY),
                    rng.choice(["", "", "哮喘"]),
                ]
            )
            member_count += 1
    stream = io.BytesIO()
    book.save(stream)
    print(f"file: {n:,} households, {member_count:,} members, {len(stream.getvalue()) / 1e6:.1f} MB")
    return stream.getvalue()


class Timers:
    """Wraps the import's steps to time them."""

    def __init__(self):
        self.seconds = {}
        self.originals = []

    def restore(self):
        for owner, name, original in self.originals:
            setattr(owner, name, original)

    def wrap(self, owner, name, label):
        original = getattr(owner, name)
        self.originals.append((owner, name, original))

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0) + time.perf_counter() - started

        setattr(owner, name, timed)


def watch(job_id: int, stop: threading.Event, seen: list):
    """What the progress bar would show: the job row read over another
    connection every second, while the import's transaction is open."""
    import psycopg2

    conn = psycopg2.connect(dbname=DB_NAME)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            while not stop.is_set():
                cursor.execute(
                    "SELECT status, phase, processed_rows, total_rows FROM households_importjob WHERE id = %s", [job_id]
                )
                row = cursor.fetchone()
                if row and (not seen or seen[-1][1:] != row):
                    seen.append((time.monotonic(), *row))
                stop.wait(1.0)
    finally:
        conn.close()


def run_import(staff, county, data: bytes, label: str, profile: bool = False):
    from django.db.models import Max

    from households import importing, services
    from households.models import ImportJob

    timers = Timers()
    timers.wrap(importing, "read_sheets", "read the file")
    timers.wrap(importing.Checker, "check", "check every row")
    timers.wrap(importing, "_write", "write (bulk insert)")
    next_id = (ImportJob.objects.aggregate(m=Max("id"))["m"] or 0) + 1
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=watch, args=(next_id, stop, seen), daemon=True)
    watcher.start()
    profiler = cProfile.Profile() if profile else None
    started = time.monotonic()
    if profiler:
        profiler.enable()
    job = services.start_import(by=staff, area=county, filename="bench.xlsx", data=data, language="zh-hans")
    if profiler:
        profiler.disable()
    total = time.monotonic() - started
    stop.set()
    watcher.join()
    job.refresh_from_db()
    print(
        f"\n{label}: status={job.status} created={job.created_count:,} members={job.member_count:,} "
        f"already registered={job.skipped_count:,} errors={job.error_count} in {total:.1f}s"
    )
    for step, seconds in timers.seconds.items():
        print(f"  {step:22s} {seconds:6.1f}s")
    if seen:
        print("  progress seen by another connection meanwhile:")
        for at, status, phase, done, of in seen:
            print(f"    +{at - started:5.1f}s {status:8s} {phase:10s} {done:>7,} / {of:,}")
    if job.errors:
        print("  first errors:", job.errors[:3])
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(25)
        print(out.getvalue())
    timers.restore()
    return job, total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=50_000, help="households in the file")
    parser.add_argument("--members", type=float, default=1.5, help="members per household, on average")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--profile", action="store_true", help="cProfile the first import")
    args = parser.parse_args()

    create_database()
    try:
        setup_django()
        county, villages, staff = seed()
        started = time.monotonic()
        data = make_file(args.n, villages, args.members)
        print(f"  written in {time.monotonic() - started:.1f}s")

        from households.models import Household

        job, first = run_import(staff, county, data, "first import", profile=args.profile)
        assert job.status == "done" and job.created_count == args.n, job.errors[:5]
        assert Household.objects.count() == args.n
        job, again = run_import(staff, county, data, "the same file again")
        assert job.status == "done" and job.created_count == 0 and job.skipped_count == args.n
        print(
            f"\nSummary: {args.n:,} households: import {first:.1f}s ({args.n / first:,.0f} rows/s); re-import {again:.1f}s"
        )
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database()
            print(f"dropped database {DB_NAME}")


if __name__ == "__main__":
    main()
