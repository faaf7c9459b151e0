"""The database itself refuses to change or delete an audit entry, whoever
asks (the application, an admin with psql, a buggy migration)."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION sun_commune_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER sun_commune_auditentry_append_only
    BEFORE UPDATE OR DELETE ON sun_commune_auditentry
    FOR EACH ROW EXECUTE FUNCTION sun_commune_refuse_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS sun_commune_auditentry_append_only ON sun_commune_auditentry;
"""


class Migration(migrations.Migration):
    dependencies = [("sun_commune", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
