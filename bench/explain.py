"""EXPLAIN ANALYZE every SQL query of every benchmarked page.

    .venv/bin/python bench/explain.py --scale province [--pages supermarket ...] [--slower-than 1]

Asks each page once through Django's test client on the bench database,
then runs each of its queries again under EXPLAIN (ANALYZE, BUFFERS) and
prints the plans of those slower than --slower-than milliseconds: the
evidence for an index or a rewrite.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.env import setup_django  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="city")
    parser.add_argument("--pages", nargs="*")
    parser.add_argument("--slower-than", type=float, default=1.0, help="milliseconds")
    args = parser.parse_args(argv)

    from bench import generate, run

    meta = generate.complete_meta(generate.database_name(args.scale))
    if meta is None:
        raise SystemExit(f"no complete bench database for {args.scale}: run bench/generate.py first")
    setup_django(args.scale)
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    settings.DEBUG = False
    keys = run.sessions([meta["reviewer_username"], meta["donor_username"]])
    plan = run.page_plan({**meta, "pledger_usernames": []}, keys)
    for name, (paths, key) in plan.items():
        if args.pages and name not in args.pages:
            continue
        client = Client()
        if key:
            client.cookies[settings.SESSION_COOKIE_NAME] = key
        client.get(paths[0])
        with CaptureQueriesContext(connection) as ctx:
            client.get(paths[0])
        print(f"=== {name} {paths[0]}: {len(ctx.captured_queries)} queries")
        for query in ctx.captured_queries:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                lines = [row[0] for row in cursor.fetchall()]
            total = float(lines[-1].split(":")[1].split()[0])
            if total >= args.slower_than:
                print(f"--- {total:.1f} ms: {sql[:300]}")
                print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
