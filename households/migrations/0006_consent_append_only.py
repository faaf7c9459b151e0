"""Consent records are append-only at the database; rows registered before
the register existed get their name index and a consent record for each
consent they already had."""

from django.db import migrations

FORWARD = """
CREATE TRIGGER households_consentrecord_append_only
    BEFORE UPDATE OR DELETE ON households_consentrecord
    FOR EACH ROW EXECUTE FUNCTION sun_commune_refuse_change();
"""
BACKWARD = "DROP TRIGGER IF EXISTS households_consentrecord_append_only ON households_consentrecord;"


def backfill(apps, schema_editor):
    from sun_commune.search import index_terms

    Household = apps.get_model("households", "Household")
    ConsentRecord = apps.get_model("households", "ConsentRecord")
    for household in Household.objects.only("id", "head_name", "alias_consent", "story_consent").iterator():
        Household.objects.filter(pk=household.pk).update(name_terms=index_terms(household.head_name))
        for subject in ("alias", "story"):
            if getattr(household, f"{subject}_consent"):
                ConsentRecord.objects.create(
                    household_id=household.pk, subject=subject, granted=True,
                    basis="recorded before consent records existed",
                )


class Migration(migrations.Migration):
    dependencies = [
        ("households", "0005_register"),
        ("sun_commune", "0002_audit_append_only"),
    ]

    operations = [
        migrations.RunSQL(FORWARD, BACKWARD),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
