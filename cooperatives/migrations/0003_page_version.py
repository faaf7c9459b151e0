"""The layout's navigation, kept under the page version, says whether a person
manages a cooperative: that table advances the version too
(sun_commune/pagecache.py, migration sun_commune/0003_page_version)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("cooperatives", "0002_share_register_guards"),
        ("sun_commune", "0003_page_version"),
    ]

    operations = [
        migrations.RunSQL(
            """
            CREATE TRIGGER sun_commune_page_version
                AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cooperatives_cooperativemanager
                FOR EACH STATEMENT EXECUTE FUNCTION sun_commune_page_changed();
            """,
            "DROP TRIGGER IF EXISTS sun_commune_page_version ON cooperatives_cooperativemanager;",
        )
    ]
