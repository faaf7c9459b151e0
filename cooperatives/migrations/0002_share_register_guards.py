"""What the database itself guarantees about the share register, whoever
writes to it: share events are append-only (UPDATE and DELETE refused), so
a member's history of joining, increases, transfers and exit is never
rewritten. Holdings are the sum of the events."""

from django.db import migrations

FORWARD = """
CREATE TRIGGER cooperatives_shareevent_append_only
    BEFORE UPDATE OR DELETE ON cooperatives_shareevent
    FOR EACH ROW EXECUTE FUNCTION sun_commune_refuse_change();
"""

BACKWARD = "DROP TRIGGER IF EXISTS cooperatives_shareevent_append_only ON cooperatives_shareevent;\n"


class Migration(migrations.Migration):
    dependencies = [
        ("cooperatives", "0001_initial"),
        ("sun_commune", "0002_audit_append_only"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
