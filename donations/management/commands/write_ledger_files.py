from django.core.management.base import BaseCommand

from donations import downloads


class Command(BaseCommand):
    help = (
        "Write the ledger's download files (ledger.jsonl, ledger.csv, checkpoints, 360giving.csv and .json) "
        "up to the latest published batch, from the database; --rebuild writes them all again from the first entry."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rebuild", action="store_true", help="ignore the files there and write them anew")

    def handle(self, *args, rebuild=False, **options):
        files = downloads.write_files(rebuild=rebuild)
        self.stdout.write(
            f"{files.directory}: batch {files.batch}, {files.tree_size} entries (served from {downloads.root()}/current)"
        )
