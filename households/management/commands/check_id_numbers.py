"""manage.py check_id_numbers: list the register's rows whose ID number the
strict rules (sun_commune.ids) refuse, so that staff can correct them on the
household's page. It changes nothing, and never prints a number: each line
names the household by its public id, its village and the problem."""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import translation
from django.utils.translation import gettext as _

from households.models import Household
from sun_commune import ids


def findings():
    """(public id, village code, problem) of each row to correct, in the
    order of the register."""
    rows = (
        Household.objects.exclude(id_number="")
        .order_by("pk")
        .values_list("public_id", "village__code", "id_number", "id_hash")
    )
    for public_id, village, number, stored_hash in rows.iterator(chunk_size=2000):
        problem = ids.problem(number)
        if problem is not None:
            yield public_id, village, problem.message
        digest = ids.id_hash(number)
        if digest != stored_hash:
            # Kept under a look-alike form before the strict rules: a search
            # by the number misses it, and the same person may be registered
            # again under the real one.
            twin = Household.objects.filter(id_hash=digest).values_list("public_id", flat=True).first()
            if twin:
                yield public_id, village, _("The same ID number as household %(id)s.") % {"id": twin}
            else:
                yield public_id, village, _("Found by a search only once this ID number is typed again.")


class Command(BaseCommand):
    help = "List the households whose ID number the strict rules refuse (never the numbers). Changes nothing."

    def handle(self, *args, **options):
        with translation.override(settings.LANGUAGE_CODE):
            households = set()
            for public_id, village, message in findings():
                households.add(public_id)
                self.stdout.write(f"{public_id}\t{village}\t{message}")
            self.stdout.write(
                _("%(count)s households to correct on their page (nothing was changed).") % {"count": len(households)}
            )
