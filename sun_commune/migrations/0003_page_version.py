"""A version number for everything the public pages show.

Every INSERT, UPDATE, DELETE or TRUNCATE on a table a public page reads
takes the next value of ``sun_commune_page_version`` (one statement-level
trigger per table), whoever makes the change: a service, a Celery task, the
publisher's COPY, an administrator in psql. ``sun_commune.pagecache`` keys
the pages it keeps under this number, so a change makes new keys. A sequence,
not a row: taking its next value never waits for another transaction, so
pledges on different needs do not queue behind one counter.

The sequence starts at the time it was made (in microseconds), so that a
rebuilt database never reuses a number a cache may still hold.
"""

from django.db import migrations

# Every table a public page (home, supermarket, need, village, ledger) reads.
# tests/test_pagecache.py checks that every table a cached page queries is here.
TABLES = [
    "sun_commune_user",
    "sun_commune_rolegrant",
    "households_area",
    "households_household",
    "households_householdmember",
    "households_villageprofile",
    "households_consentrecord",
    "donations_donor",
    "donations_need",
    "donations_pledge",
    "donations_ledgertransaction",
    "donations_publishedentry",
    "donations_ledgerbatch",
    "donations_arealedgertotal",
    "donations_pairing",
]

FUNCTION = """
DO $$
BEGIN
    EXECUTE format(
        'CREATE SEQUENCE IF NOT EXISTS sun_commune_page_version START WITH %s',
        (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
    );
END $$;

CREATE OR REPLACE FUNCTION sun_commune_page_changed() RETURNS trigger AS $$
BEGIN
    PERFORM nextval('sun_commune_page_version');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""

TRIGGER = """
CREATE TRIGGER sun_commune_page_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION sun_commune_page_changed();
"""


def forward_sql(tables):
    return FUNCTION + "".join(TRIGGER.format(table=t) for t in tables)


def backward_sql(tables):
    return (
        "".join(f"DROP TRIGGER IF EXISTS sun_commune_page_version ON {t};\n" for t in tables)
        + "DROP FUNCTION IF EXISTS sun_commune_page_changed();\nDROP SEQUENCE IF EXISTS sun_commune_page_version;\n"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("sun_commune", "0002_audit_append_only"),
        ("households", "0009_household_area_codes"),
        ("donations", "0006_need_fulfilled_index"),
        ("cooperatives", "0002_share_register_guards"),
    ]

    operations = [migrations.RunSQL(forward_sql(TABLES), backward_sql(TABLES))]
