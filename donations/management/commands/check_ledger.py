from django.core.management.base import BaseCommand, CommandError

from donations import publication


class Command(BaseCommand):
    help = (
        "Check the ledger: every transaction balances, no fund is negative, received pledges match the ledger, "
        "and the published tree recomputes to every signed checkpoint. Records the result."
    )

    def handle(self, *args, **options):
        check = publication.run_check()
        if check.ok:
            self.stdout.write(
                self.style.SUCCESS(f"OK: {check.tree_size} published entries checked in {check.seconds:.1f}s.")
            )
            return
        for problem in check.problems:
            self.stderr.write(problem)
        raise CommandError(f"{len(check.problems)} problem(s) found.")
