# A registered household joins a cooperative only with its village's
# confirmation. Members entered before that rule were entered with the
# household's agreement as things stood: they are confirmed (the data step),
# and every new household member starts as a request.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def existing_members_confirmed(apps, schema_editor):
    apps.get_model("cooperatives", "Member").objects.update(standing="confirmed")


class Migration(migrations.Migration):
    dependencies = [
        ("cooperatives", "0003_page_version"),
        ("households", "0010_household_area_depth_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="member",
            name="coop_member_household_unique",
        ),
        migrations.AddField(
            model_name="member",
            name="consent_basis",
            field=models.CharField(blank=True, max_length=200, verbose_name="how the household agreed"),
        ),
        migrations.AddField(
            model_name="member",
            name="decided_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="decided at"),
        ),
        migrations.AddField(
            model_name="member",
            name="decided_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="member",
            name="proposed",
            field=models.JSONField(blank=True, default=dict, editable=False),
        ),
        migrations.AddField(
            model_name="member",
            name="requested_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="member",
            name="standing",
            field=models.CharField(
                choices=[
                    ("requested", "Awaiting the village's confirmation"),
                    ("confirmed", "Confirmed"),
                    ("declined", "Declined by the village"),
                ],
                default="requested",
                max_length=16,
                verbose_name="membership",
            ),
        ),
        migrations.RunPython(existing_members_confirmed, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="member",
            index=models.Index(
                condition=models.Q(("standing", "requested")),
                fields=["household", "id"],
                name="coop_member_requested_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="member",
            constraint=models.UniqueConstraint(
                condition=models.Q(("household__isnull", False), models.Q(("standing", "declined"), _negated=True)),
                fields=("cooperative", "household"),
                name="coop_member_household_unique",
            ),
        ),
        migrations.AddConstraint(
            model_name="member",
            constraint=models.CheckConstraint(
                condition=models.Q(("kind", "household"), ("standing", "confirmed"), _connector="OR"),
                name="coop_member_only_households_wait",
            ),
        ),
    ]
