"""The donor's "My pledges", kept under the page version, shows the gifts
staff recorded in their name until the donor answers: that table advances
the version too (sun_commune/pagecache.py, migration
sun_commune/0003_page_version)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("donations", "0010_honoured_pledges"),
        ("sun_commune", "0003_page_version"),
    ]

    operations = [
        migrations.RunSQL(
            """
            CREATE TRIGGER sun_commune_page_version
                AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON donations_giftclaim
                FOR EACH STATEMENT EXECUTE FUNCTION sun_commune_page_changed();
            """,
            "DROP TRIGGER IF EXISTS sun_commune_page_version ON donations_giftclaim;",
        )
    ]
