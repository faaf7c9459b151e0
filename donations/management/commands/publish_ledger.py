from django.core.management.base import BaseCommand

from donations import downloads, publication


class Command(BaseCommand):
    help = (
        "Publish every committed, unpublished ledger transaction and write the download files (what the beat job does)."
    )

    def handle(self, *args, **options):
        batches = publication.publish_all()
        files = downloads.write_files()
        if not batches:
            self.stdout.write(f"Nothing to publish; the download files hold batch {files.batch}.")
            return
        for batch in batches:
            self.stdout.write(
                f"Batch {batch.number}: entries {batch.first_index}..{batch.tree_size - 1}, root {batch.root_hash}"
            )
