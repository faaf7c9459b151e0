from django.core.management.base import BaseCommand

from donations import publication


class Command(BaseCommand):
    help = "Publish every committed, unpublished ledger transaction (what the beat job does)."

    def handle(self, *args, **options):
        batches = publication.publish_all()
        if not batches:
            self.stdout.write("Nothing to publish.")
            return
        for batch in batches:
            self.stdout.write(
                f"Batch {batch.number}: entries {batch.first_index}..{batch.tree_size - 1}, root {batch.root_hash}"
            )
