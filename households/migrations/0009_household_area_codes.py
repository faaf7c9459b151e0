"""Each household keeps the codes of its village and the areas above it
(``area_codes``), written by a trigger on insert and on a change of village,
whoever writes the row; the name index becomes a two-column GIN index over
the names and the area codes, so that a name searched within a county or a
township is one index scan on a register of millions.

The backfill rewrites every household once: on a province-sized register
(two million rows) count a few minutes."""

import django.contrib.postgres.fields
import django.contrib.postgres.indexes
from django.db import migrations, models

FUNCTION = """
CREATE OR REPLACE FUNCTION households_household_area_codes() RETURNS trigger AS $$
BEGIN
    NEW.area_codes := COALESCE(
        (SELECT string_to_array(rtrim(path, '.'), '.') FROM households_area WHERE id = NEW.village_id),
        '{}'
    );
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""
BACKFILL = """
UPDATE households_household h
SET area_codes = string_to_array(rtrim(a.path, '.'), '.')
FROM households_area a
WHERE a.id = h.village_id;
"""
TRIGGER = """
CREATE TRIGGER households_household_area_codes
    BEFORE INSERT OR UPDATE OF village_id ON households_household
    FOR EACH ROW EXECUTE FUNCTION households_household_area_codes();
"""
DROP = """
DROP TRIGGER IF EXISTS households_household_area_codes ON households_household;
DROP FUNCTION IF EXISTS households_household_area_codes();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('households', '0008_register_history_imports'),
    ]

    operations = [
        migrations.AddField(
            model_name='household',
            name='area_codes',
            field=django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=20), default=list, editable=False, size=None),
        ),
        migrations.RunSQL(FUNCTION + BACKFILL + TRIGGER, DROP),
        migrations.RemoveIndex(
            model_name='household',
            name='household_name_idx',
        ),
        migrations.AddIndex(
            model_name='household',
            index=django.contrib.postgres.indexes.GinIndex(fields=['name_terms', 'area_codes'], name='household_name_area_idx'),
        ),
    ]
