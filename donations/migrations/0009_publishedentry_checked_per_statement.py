"""Published entries are checked against their ledger transactions once per
statement, not by two foreign keys.

Each foreign key looked up and locked (FOR KEY SHARE) the row it referenced,
one entry at a time: a third of the publisher's writing at province scale,
to guard rows that cannot go away (ledger transactions are append-only, and
a need with a ledger transaction is held by that transaction's own key).
The statement trigger checks, for all the rows a statement wrote at once,
more than the keys did: that each entry's transaction exists, and that the
entry's need, kind, amount, date and area path are the transaction's.
"""

import django.db.models.deletion
from django.db import migrations, models

FORWARD = """
CREATE FUNCTION donations_publishedentry_check() RETURNS trigger AS $$
DECLARE
    bad record;
BEGIN
    SELECT e.index, e.transaction_id INTO bad
      FROM donations_publishedentry_written e
      LEFT JOIN donations_ledgertransaction t ON t.id = e.transaction_id
      LEFT JOIN households_area a ON a.id = t.area_id
     WHERE t.id IS NULL
        OR e.need_id IS DISTINCT FROM t.need_id
        OR e.kind <> t.kind
        OR e.amount <> t.amount
        OR e.occurred_on <> t.occurred_on
        OR e.area_path <> a.path
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'published entry % does not say what ledger transaction % says', bad.index, bad.transaction_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER donations_publishedentry_checked
    AFTER INSERT ON donations_publishedentry
    REFERENCING NEW TABLE AS donations_publishedentry_written
    FOR EACH STATEMENT EXECUTE FUNCTION donations_publishedentry_check();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS donations_publishedentry_checked ON donations_publishedentry;
DROP FUNCTION IF EXISTS donations_publishedentry_check();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("donations", "0008_publishedentry_batch_by_range"),
    ]

    operations = [
        migrations.AlterField(
            model_name="publishedentry",
            name="need",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="donations.need",
            ),
        ),
        migrations.AlterField(
            model_name="publishedentry",
            name="transaction",
            field=models.OneToOneField(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="published",
                to="donations.ledgertransaction",
            ),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
