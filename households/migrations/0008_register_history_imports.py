"""The import job's language, and the household history append-only at the
database (as the audit log and consent records are)."""

from django.db import migrations, models

FORWARD = """
CREATE TRIGGER households_householdchange_append_only
    BEFORE UPDATE OR DELETE ON households_householdchange
    FOR EACH ROW EXECUTE FUNCTION sun_commune_refuse_change();
"""
BACKWARD = "DROP TRIGGER IF EXISTS households_householdchange_append_only ON households_householdchange;"


class Migration(migrations.Migration):

    dependencies = [
        ('households', '0007_villagefigures_importjob_householdchange'),
        ('sun_commune', '0002_audit_append_only'),
    ]

    operations = [
        migrations.AddField(
            model_name='importjob',
            name='language',
            field=models.CharField(blank=True, max_length=8),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
