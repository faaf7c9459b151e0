"""What the database itself guarantees about the ledger, whoever writes to it:

- ledger transactions, their legs, published entries, batches and Merkle
  nodes are append-only (UPDATE and DELETE refused);
- at commit, the legs of every transaction add up to zero (a deferred
  constraint trigger, so the legs can be inserted one by one).
"""

from django.db import migrations

APPEND_ONLY = [
    "donations_ledgertransaction",
    "donations_ledgerleg",
    "donations_publishedentry",
    "donations_ledgerbatch",
    "donations_merklenode",
]

FORWARD = "".join(
    f"""
CREATE TRIGGER {table}_append_only
    BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION sun_commune_refuse_change();
"""
    for table in APPEND_ONLY
) + """
CREATE OR REPLACE FUNCTION donations_ledger_check_balanced() RETURNS trigger AS $$
DECLARE
    total numeric;
BEGIN
    SELECT COALESCE(SUM(amount), 0) INTO total
        FROM donations_ledgerleg WHERE transaction_id = NEW.transaction_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % does not balance: its legs add up to %',
            NEW.transaction_id, total USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER donations_ledgerleg_balanced
    AFTER INSERT ON donations_ledgerleg
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION donations_ledger_check_balanced();
"""

BACKWARD = "".join(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};\n" for table in APPEND_ONLY) + (
    "DROP TRIGGER IF EXISTS donations_ledgerleg_balanced ON donations_ledgerleg;\n"
    "DROP FUNCTION IF EXISTS donations_ledger_check_balanced();\n"
)


class Migration(migrations.Migration):
    dependencies = [
        ("donations", "0003_ledger"),
        ("sun_commune", "0002_audit_append_only"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
