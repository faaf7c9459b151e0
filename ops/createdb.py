"""Create the database named in DATABASE_URL (default: sun_commune on the
local socket) if it does not exist yet. Used by `make demo`."""

import os
import sys

import dj_database_url
import psycopg2
from psycopg2 import sql


def main() -> int:
    cfg = dj_database_url.parse(os.environ.get("DATABASE_URL", "postgres:///sun_commune"))
    params = {
        "dbname": "postgres",
        "user": cfg.get("USER"),
        "password": cfg.get("PASSWORD"),
        "host": cfg.get("HOST"),
        "port": cfg.get("PORT"),
    }
    conn = psycopg2.connect(**{k: v for k, v in params.items() if v})
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]])
        if cur.fetchone():
            print(f"database {cfg['NAME']} exists")
        else:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(cfg["NAME"])))
            print(f"database {cfg['NAME']} created")
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
